# Copyright (c) bevt contributors. All rights reserved.
from bevt.utils.checkpoint_convert import rename_official_keys
from .bevt_swin import BEVTSwinTransformer3D
from .fusion_decoder import FusionDecoder
from .patch_embed_2d import PatchEmbed2D

__all__ = [
    'BEVTSwinTransformer3D', 'FusionDecoder', 'PatchEmbed2D',
    'rename_official_keys'
]
