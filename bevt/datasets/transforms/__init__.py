# Copyright (c) bevt contributors. All rights reserved.
"""BEVT's data transforms (registered in :data:`bevt.registry.TRANSFORMS`)."""
from .clip_randaugment import BEVTClipRandAugment
from .formatting import PackBEVTInputs
from .loading import BEVTLoadImage
from .masking import (BEVTBlockMaskGenerator, BEVTTubeMaskGenerator,
                      generate_block_mask, tube_mask)
from .tokenizer_view import BEVTTokenizerView

__all__ = [
    'BEVTBlockMaskGenerator', 'BEVTClipRandAugment', 'BEVTLoadImage',
    'BEVTTokenizerView', 'BEVTTubeMaskGenerator', 'PackBEVTInputs',
    'generate_block_mask', 'tube_mask'
]
