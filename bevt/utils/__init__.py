# Copyright (c) bevt contributors. All rights reserved.
"""Helpers shared by bevt's tools."""
from .collect_env import collect_env
from .setup_env import setup_cpu_distributed, shutdown_distributed

__all__ = ['collect_env', 'setup_cpu_distributed', 'shutdown_distributed']
