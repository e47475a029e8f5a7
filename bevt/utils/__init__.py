# Copyright (c) bevt contributors. All rights reserved.
"""Helpers shared by bevt's tools."""
from .collect_env import collect_env
from .config_file import check_tokenizer_weights, load_config
from .setup_env import setup_cpu_distributed, shutdown_distributed

__all__ = [
    'check_tokenizer_weights', 'collect_env', 'load_config',
    'setup_cpu_distributed', 'shutdown_distributed'
]
