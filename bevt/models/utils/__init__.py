# Copyright (c) bevt contributors. All rights reserved.
"""Helpers shared by bevt's model parts."""
from .autocast_norm import layer_norm_params, norm_in_autocast_dtype
from .cast_together import cast_together
from .positions import masked_positions

__all__ = [
    'cast_together', 'layer_norm_params', 'masked_positions',
    'norm_in_autocast_dtype'
]
