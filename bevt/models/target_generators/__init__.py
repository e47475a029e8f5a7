# Copyright (c) bevt contributors. All rights reserved.
"""Frozen target generators (visual tokenizers, HOG) for BEVT."""
from .base import BEVTTokenizer
from .dalle import BEVTDALLETokenizer
from .hog import BEVTHOGTargets
from .vqkd import BEVTVQKDTokenizer

__all__ = [
    'BEVTTokenizer', 'BEVTDALLETokenizer', 'BEVTVQKDTokenizer',
    'BEVTHOGTargets'
]
