# Copyright (c) bevt contributors. All rights reserved.
"""bevt engine parts (loops, hooks, optimiser constructors) that mmaction2
and mmengine lack.

Importing this package registers them in :mod:`bevt.registry`.
"""
from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
from .runner import *  # noqa: F401,F403
