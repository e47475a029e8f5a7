# Copyright (c) bevt contributors. All rights reserved.
"""Helpers shared by bevt's model parts."""
from .positions import masked_positions

__all__ = ['masked_positions']
