# Copyright (c) bevt contributors. All rights reserved.
"""Helpers shared by bevt's tools."""
from .collect_env import collect_env
from .config_file import load_config
from .preflight import (PreflightError, PreflightProblem, format_preflight,
                        is_launch_rank0, preflight_problems, run_preflight)
from .setup_env import setup_cpu_distributed, shutdown_distributed

__all__ = [
    'collect_env', 'load_config', 'PreflightError', 'PreflightProblem',
    'format_preflight', 'preflight_problems', 'is_launch_rank0',
    'run_preflight', 'setup_cpu_distributed', 'shutdown_distributed'
]
