# Copyright (c) bevt contributors. All rights reserved.
from .bevt_swin import BEVTSwinTransformer3D, FusionDecoder, PatchEmbed2D
from .bevt_swin_weights import rename_official_keys

__all__ = [
    'BEVTSwinTransformer3D', 'FusionDecoder', 'PatchEmbed2D',
    'rename_official_keys'
]
