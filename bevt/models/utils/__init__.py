# Copyright (c) bevt contributors. All rights reserved.
"""Helpers shared by bevt's model parts."""
from .cast_together import cast_together
from .positions import masked_positions

__all__ = ['cast_together', 'masked_positions']
