# Copyright (c) bevt contributors. All rights reserved.
from .two_stream import BEVTDataPreprocessor

__all__ = ['BEVTDataPreprocessor']
