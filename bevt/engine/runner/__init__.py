# Copyright (c) bevt contributors. All rights reserved.
from .multi_source_loop import (BEVTMultiSourceEpochLoop,
                                BEVTMultiSourceIterLoop)

__all__ = ['BEVTMultiSourceEpochLoop', 'BEVTMultiSourceIterLoop']
