# Copyright (c) bevt contributors. All rights reserved.
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from bevt.registry import MODELS
from bevt.testing import REPO_ROOT

CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'), recursive=True))


def test_configs_exist():
    assert any('smoke' in path for path in CONFIGS)


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, REPO_ROOT) for p in CONFIGS])
def test_config_parses_and_model_builds(path):
    cfg = Config.fromfile(path)
    if 'model' not in cfg:
        return
    if '_base_' not in osp.relpath(path, REPO_ROOT):  # a complete config
        assert cfg.default_scope == 'bevt'
    target_generator = cfg.model.get('target_generator')
    if target_generator is not None:  # no tokenizer weights in tests
        target_generator.init_cfg = None
    if cfg.model.get('backbone', {}).get('pretrained'):  # nor backbone's
        cfg.model.backbone.pretrained = None
    init_cfg = cfg.model.get('backbone', {}).get('init_cfg')
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        cfg.model.backbone.init_cfg = None  # no fine-tune weights in tests
    with DefaultScope.overwrite_default_scope('bevt'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    assert sum(p.numel() for p in model.parameters()) > 0
