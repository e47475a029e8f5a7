# Copyright (c) bevt contributors. All rights reserved.
"""bevt hooks; importing this package registers them in
:data:`bevt.registry.HOOKS`."""
from .knn_hook import BEVTKNNHook
from .params_digest_hook import BEVTParamsDigestHook, weights_digest
from .skipped_files_hook import BEVTSkippedFilesHook

__all__ = [
    'BEVTSkippedFilesHook', 'BEVTParamsDigestHook', 'weights_digest',
    'BEVTKNNHook'
]
