# Copyright (c) bevt contributors. All rights reserved.
"""bevt data: transforms and datasets, plus the generated demo dataset.

Importing this package registers bevt's transforms and datasets in
:mod:`bevt.registry`.
"""
from .per_sample_seed import seed_per_sample
from .synthetic_motion import MOTIONS, SHAPES, make_synthetic_dataset
from .tolerant_dataset import BEVTTolerantDataset
from .transforms import *  # noqa: F401,F403

__all__ = [
    'MOTIONS', 'SHAPES', 'make_synthetic_dataset', 'BEVTTolerantDataset',
    'seed_per_sample'
]
