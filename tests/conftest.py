# Copyright (c) bevt contributors. All rights reserved.
import pytest

from bevt.datasets import make_synthetic_dataset


@pytest.fixture(scope='session')
def motion_data(tmp_path_factory) -> str:
    """A tiny generated motion dataset (real mp4 files), shared by tests."""
    root = str(tmp_path_factory.mktemp('motion'))
    make_synthetic_dataset(
        root,
        videos_per_class=dict(train=2, val=1),
        images_per_class=dict(train=1, val=1),
        seed=0)
    return root
