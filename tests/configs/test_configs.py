# Copyright (c) bevt contributors. All rights reserved.
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from bevt.registry import MODELS
from bevt.testing import REPO_ROOT, config_path

CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'), recursive=True))
STAGE2 = config_path('bevt/bevt_swin-base-p244-w877_bevt-img-pre_32xb8-amp-'
                     'coslr-150e_in1k-kinetics400.py')


def inheritance_depth(path: str) -> int:
    """The most `_base_` levels above ``path``."""
    bases = Config._get_base_files(path)
    return max((1 + inheritance_depth(osp.join(osp.dirname(path), base))
                for base in bases),
               default=0)


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


def test_inheritance_depth_is_at_most_3():
    depths = {osp.relpath(p, REPO_ROOT): inheritance_depth(p) for p in CONFIGS}
    assert max(depths.values()) <= 3, depths
    # every recipe inherits (from a `_base_` part or another recipe)
    assert all(d > 0 for p, d in depths.items() if '_base_' not in p), depths


def test_image_loader_merges_key_by_key(tmp_path):
    """A child config changes one key of the stage-2 image loader and keeps
    the rest; the loop names it."""
    child = tmp_path / 'child.py'
    child.write_text(f'_base_ = [{STAGE2!r}]\n'
                     'img_dataloader = dict(batch_size=16, num_workers=2)\n')
    base, cfg = Config.fromfile(STAGE2), Config.fromfile(str(child))
    assert cfg.train_cfg.other_loaders == ['img_dataloader']
    assert (cfg.img_dataloader.batch_size,
            cfg.img_dataloader.num_workers) == (16, 2)
    assert cfg.img_dataloader.dataset == base.img_dataloader.dataset
    cfg.merge_from_dict({'img_dataloader.dataset.dataset.times': 2})
    assert cfg.img_dataloader.dataset.dataset.times == 2


def test_nano_backbones_match():
    """The BEVT nano model and the nano recognizer share one backbone shape
    (a smoke pretraining checkpoint fine-tunes the recognizer)."""
    bevt = Config.fromfile(config_path('_base_/models/bevt_swin_nano.py'))
    recognizer = Config.fromfile(config_path('_base_/models/swin_nano.py'))
    for key in ('arch', 'patch_size', 'window_size', 'drop_path_rate'):
        assert bevt.model.backbone[key] == recognizer.model.backbone[key], key
