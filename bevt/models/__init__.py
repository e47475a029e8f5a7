# Copyright (c) bevt contributors. All rights reserved.
"""bevt models: backbones, target generators, heads, preprocessors, algorithms.

Importing this package registers them in :data:`bevt.registry.MODELS`.
"""
from .algorithms import *  # noqa: F401,F403
from .backbones import *  # noqa: F401,F403
from .data_preprocessors import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .target_generators import *  # noqa: F401,F403
