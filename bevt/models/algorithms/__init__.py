# Copyright (c) bevt contributors. All rights reserved.
from .bevt import BEVT

__all__ = ['BEVT']
