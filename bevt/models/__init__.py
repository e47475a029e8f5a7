# Copyright (c) bevt contributors. All rights reserved.
"""bevt models: backbones, tokenizers, MIM heads, preprocessors, algorithms.

Importing this package registers them in :data:`bevt.registry.MODELS`.
"""
__all__ = []
