# Copyright (c) bevt contributors. All rights reserved.
from .mim_head import BEVTMIMHead
from .regression_head import BEVTRegressionHead

__all__ = ['BEVTMIMHead', 'BEVTRegressionHead']
