# Copyright (c) bevt contributors. All rights reserved.
"""Loading a config file for bevt's tools, with errors that name it."""
import os.path as osp
from typing import Any, Iterator, Tuple

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


def _pretrained_files(init_cfg: Any, key: str) -> Iterator[Tuple[str, str]]:
    """``(config key, checkpoint)`` of every ``Pretrained`` entry of an
    ``init_cfg`` (a dict or a list of dicts)."""
    if isinstance(init_cfg, (list, tuple)):
        entries = [(f'{key}.{idx}', entry)
                   for idx, entry in enumerate(init_cfg)]
    else:
        entries = [(key, init_cfg)]
    for where, entry in entries:
        if isinstance(entry, dict) and entry.get('type') == 'Pretrained':
            yield f'{where}.checkpoint', entry.get('checkpoint')


def check_tokenizer_weights(cfg: Any) -> None:
    """Stop early when the tokenizer's weights file is missing.

    The targets of a BEVT config come from ``model.target_generator``; with
    ``init_cfg=dict(type='Pretrained', checkpoint=...)`` its weights are
    loaded from that file when the model is initialised, i.e. after the
    datasets and the model are built. This names the file and the config
    key before any of that. Remote checkpoints (``scheme://...``) are not
    checked.

    Args:
        cfg (mmengine.config.Config): The config (after ``--cfg-options``).

    Raises:
        FileNotFoundError: A local tokenizer checkpoint does not exist.
    """
    model = cfg.get('model') or {}
    tokenizer = model.get('target_generator') if isinstance(model,
                                                            dict) else None
    if not isinstance(tokenizer, dict):
        return
    key = 'model.target_generator.init_cfg'
    for where, checkpoint in _pretrained_files(tokenizer.get('init_cfg'), key):
        if not checkpoint or '://' in str(checkpoint):
            continue
        if not osp.isfile(osp.expanduser(str(checkpoint))):
            raise FileNotFoundError(
                f'The tokenizer weights {checkpoint} ({where}) do not exist: '
                'its targets would be meaningless. Put the file there (see '
                f'configs/bevt/README.md) or pass --cfg-options {where}=PATH')
