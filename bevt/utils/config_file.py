# Copyright (c) bevt contributors. All rights reserved.
"""Loading a config file for bevt's tools, with errors that name it."""
import os.path as osp
from typing import Any

#: The file types mmengine's ``Config.fromfile`` reads
CONFIG_EXTENSIONS = ('.py', '.json', '.yml', '.yaml')


def load_config(path: str) -> Any:
    """``mmengine.config.Config.fromfile(path)`` with ``bevt::`` configs
    resolvable, and clear errors for a path that is not a config file.

    mmengine raises a bare ``OSError('Only py/yml/yaml/json type are
    supported now!')`` for any other file, without its name.

    Args:
        path (str): The config file.

    Returns:
        mmengine.config.Config: The config.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: ``path`` is not a .py, .json, .yml or .yaml file.
    """
    from mmengine.config import Config

    import bevt.registry  # noqa: F401  (makes `bevt::` resolve)

    if not osp.isfile(path):
        raise FileNotFoundError(f'Config not found: {path}')
    if osp.splitext(path)[1].lower() not in CONFIG_EXTENSIONS:
        raise ValueError(f'{path} is not a config file (expected one of '
                         f'{", ".join(CONFIG_EXTENSIONS)})')
    return Config.fromfile(path)
