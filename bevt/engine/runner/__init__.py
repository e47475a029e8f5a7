# Copyright (c) bevt contributors. All rights reserved.
from .checkpoints import (AtomicLocalBackend, checkpoint_problem,
                          find_resumable_checkpoint)
from .multi_source_loop import (BEVTEpochBasedTrainLoop,
                                BEVTMultiSourceEpochLoop,
                                BEVTMultiSourceIterLoop)

__all__ = [
    'AtomicLocalBackend', 'checkpoint_problem', 'find_resumable_checkpoint',
    'BEVTEpochBasedTrainLoop', 'BEVTMultiSourceEpochLoop',
    'BEVTMultiSourceIterLoop'
]
