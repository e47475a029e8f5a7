# Copyright (c) bevt contributors. All rights reserved.
"""bevt optimiser constructors; importing this package registers them in
:data:`bevt.registry.OPTIM_WRAPPER_CONSTRUCTORS`."""
from .merged_groups import BEVTOptimWrapperConstructor, merge_param_groups
from .swin3d_layer_decay import (BEVTSwin3DLayerDecayConstructor,
                                 swin3d_layer_depths)

__all__ = [
    'BEVTOptimWrapperConstructor', 'BEVTSwin3DLayerDecayConstructor',
    'merge_param_groups', 'swin3d_layer_depths'
]
