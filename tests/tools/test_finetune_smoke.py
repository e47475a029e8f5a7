# Copyright (c) bevt contributors. All rights reserved.
"""Fine-tuning through tools/train.py and multi-view testing through
tools/test.py on generated mp4 files (the smoke fine-tune config)."""
import os
import os.path as osp
import pickle
import subprocess
import sys

import pytest
import torch

from bevt.testing import REPO_ROOT, config_path, fresh_env

FINETUNE_CONFIG = config_path(
    'bevt/smoke/'
    'swin-nano-p244-w444_bevt-pre_1xb8-8x2x1-12e_synthetic-motion.py')
# no worker processes; checkpoints every epoch
QUICK = [
    f'{loader}_dataloader.{key}' for loader in ('train', 'val', 'test')
    for key in ('num_workers=0', 'persistent_workers=False')
] + [
    'default_hooks.checkpoint.interval=1',
    'default_hooks.checkpoint.max_keep_ckpts=-1',
    'default_hooks.logger.interval=1'
]


def run(args, data_root, **env):
    return subprocess.run([sys.executable, *args],
                          cwd=REPO_ROOT,
                          env=fresh_env(BEVT_DATA=data_root, **env),
                          capture_output=True,
                          text=True,
                          timeout=600)


def log_text(work_dir) -> str:
    logs = []
    for root, _, files in os.walk(str(work_dir)):
        logs += [osp.join(root, f) for f in files if f.endswith('.log')]
    return ''.join(open(path).read() for path in sorted(logs))


@pytest.fixture(scope='module')
def scratch(motion_data, tmp_path_factory):
    """One epoch from scratch (no pretrained backbone)."""
    work_dir = tmp_path_factory.mktemp('finetune_scratch')
    result = run([
        'tools/train.py', FINETUNE_CONFIG, '--work-dir',
        str(work_dir), '--seed', '0', '--cfg-options',
        'model.backbone.init_cfg=None', 'train_cfg.max_epochs=1',
        'train_cfg.val_interval=10', *QUICK
    ], motion_data)
    assert result.returncode == 0, result.stderr[-3000:]
    return work_dir


def test_scratch_run_uses_layer_decay(scratch):
    log = log_text(scratch)
    assert 'BEVTSwin3DLayerDecayConstructor: layer_decay_rate=0.9' in log
    assert '9 backbone depths' in log
    assert 'load backbone.' not in log
    # 16 clips / 4 per iteration; 2 iterations per optimizer step
    assert 'Epoch(train) [1][4/4]' in log
    assert osp.isfile(osp.join(scratch, 'epoch_1.pth'))


def test_pretrained_backbone_loads_and_validates(motion_data, tmp_path):
    """A SwinTransformer3D state dict saved with the `backbone.` prefix (the
    converter's output format) initialises the backbone."""
    from mmaction.models import SwinTransformer3D
    backbone = SwinTransformer3D(
        arch=dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8]),
        pretrained2d=False,
        window_size=(4, 4, 4))
    checkpoint = str(tmp_path / 'pretrain_mmaction.pth')
    torch.save(
        dict(state_dict={
            f'backbone.{k}': v
            for k, v in backbone.state_dict().items()
        }), checkpoint)
    work_dir = tmp_path / 'work'
    result = run([
        'tools/train.py', FINETUNE_CONFIG, '--work-dir',
        str(work_dir), '--seed', '0', '--cfg-options',
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1', *QUICK
    ],
                 motion_data,
                 BEVT_PRETRAINED=checkpoint)
    assert result.returncode == 0, result.stderr[-3000:]
    log = log_text(work_dir)
    assert f'load backbone. in model from: {checkpoint}' in log
    assert 'do not match exactly' not in log  # every key matched
    # validation (batch 1, one view) with max_testing_views set
    assert 'Epoch(val) [1][8/8]' in log and 'acc/top1' in log


def test_multi_view_test_prints_accuracy_and_dumps(scratch, motion_data,
                                                   tmp_path):
    dump = str(tmp_path / 'preds.pkl')
    work_dir = str(tmp_path / 'test')
    result = run([
        'tools/test.py', FINETUNE_CONFIG,
        osp.join(scratch, 'epoch_1.pth'), '--work-dir', work_dir, '--dump',
        dump, '--cfg-options', 'model.backbone.init_cfg=None', *QUICK
    ], motion_data)
    assert result.returncode == 0, result.stderr[-3000:]
    log = log_text(work_dir)
    for key in ('acc/top1', 'acc/top5', 'acc/mean1'):
        assert key in log, key
    with open(dump, 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 8  # one val clip per motion
    for pred in predictions:
        # 2 clips x 3 crops averaged as probabilities: one 8-way score
        scores = pred['pred_score']
        assert scores.shape == (8, )
        assert float(scores.sum()) == pytest.approx(1., abs=1e-4)
