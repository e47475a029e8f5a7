# Copyright (c) bevt contributors. All rights reserved.
"""Helpers for bevt's tests (tiny configs, paths, fresh interpreters)."""
from ._precision import (DEVICES, assert_grads_close, deterministic,
                         exact_float32, relative_error)
from ._utils import (PRETRAIN_SMOKE_CONFIG, REPO_ROOT, SMOKE_CONFIG,
                     config_path, fresh_env, run_gloo_ranks, run_python)

__all__ = [
    'REPO_ROOT', 'SMOKE_CONFIG', 'PRETRAIN_SMOKE_CONFIG', 'config_path',
    'fresh_env', 'run_gloo_ranks', 'run_python', 'DEVICES',
    'assert_grads_close', 'deterministic', 'exact_float32', 'relative_error'
]
