# Copyright (c) bevt contributors. All rights reserved.
import pytest
from mmengine.registry import DefaultScope


@pytest.fixture(autouse=True)
def bevt_scope():
    """Build models in the bevt scope, as a runner with default_scope='bevt'
    does, whatever scope an earlier test left behind."""
    with DefaultScope.overwrite_default_scope('bevt'):
        yield
