# Copyright (c) bevt contributors. All rights reserved.
"""Find the BEVT streams (video / image pipelines) of a training config.

A BEVT config has the primary loader in ``train_dataloader`` and the other
streams in ``train_cfg.other_loaders`` (``BEVTMultiSourceEpochLoop``: names
of top-level keys such as ``img_dataloader``, or loader dicts); each
dataset may be wrapped (e.g. by ``BEVTTolerantDataset``). The analysis tools
(benchmark, FLOPs, mask pictures) read the pipelines from there.
"""
from typing import Any, List, Optional, Tuple


def transform_type(transform: dict) -> str:
    """The class name of a transform config, any scope prefix dropped."""
    return str(transform.get('type', '')).split('.')[-1]


def find_pipeline(dataset: Any) -> Optional[list]:
    """The ``pipeline`` list of a (possibly wrapped) dataset config."""
    while isinstance(dataset, dict):
        if 'pipeline' in dataset:
            return dataset['pipeline']
        dataset = dataset.get('dataset')
    return None


def loader_pipelines(cfg: Any) -> List[Tuple[dict, list]]:
    """``(loader, pipeline)`` of ``train_dataloader`` and of every loader
    of ``train_cfg.other_loaders`` (in place: edits change the config)."""
    loaders = []
    if cfg.get('train_dataloader'):
        loaders.append(cfg.train_dataloader)
    train_cfg = cfg.get('train_cfg') or {}
    for loader in train_cfg.get('other_loaders') or []:
        # a name (e.g. 'img_dataloader') is a top-level key of the config
        loaders.append(cfg.get(loader) if isinstance(loader, str) else loader)
    found = []
    for loader in loaders:
        if not isinstance(loader, dict):
            continue
        pipeline = find_pipeline(loader.get('dataset'))
        if pipeline:
            found.append((loader, pipeline))
    return found


def pipeline_stream(pipeline: list) -> Optional[str]:
    """'video' (a tube mask), 'img' (a block mask) or None (no BEVT
    mask)."""
    kinds = {transform_type(t) for t in pipeline}
    if 'BEVTTubeMaskGenerator' in kinds:
        return 'video'
    if 'BEVTBlockMaskGenerator' in kinds:
        return 'img'
    return None
