# Copyright (c) bevt contributors. All rights reserved.
"""projects/example_downstream, copied out of the repository, trained and
tested with mmaction2's own tools (which never import bevt)."""
import importlib.util
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest

from bevt.testing import REPO_ROOT, fresh_env

PROJECT = osp.join(REPO_ROOT, 'projects', 'example_downstream')
CONFIG = osp.join('configs', 'my_motion_finetune.py')
# a quick run: no worker processes
QUICK = [
    f'{loader}_dataloader.{key}' for loader in ('train', 'val', 'test')
    for key in ('num_workers=0', 'persistent_workers=False')
]


@pytest.fixture
def project(tmp_path) -> str:
    """The example project, copied to a folder outside the repository."""
    path = str(tmp_path / 'example_downstream')
    shutil.copytree(PROJECT, path)
    assert osp.commonpath([path, REPO_ROOT]) != REPO_ROOT
    return path


def mmaction_tool(name: str) -> str:
    """Path of mmaction2's installed ``.mim/tools/<name>``."""
    mmaction_dir = osp.dirname(importlib.util.find_spec('mmaction').origin)
    return osp.join(mmaction_dir, '.mim', 'tools', name)


def run(args, cwd: str, data_root: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args],
                          cwd=cwd,
                          env=fresh_env(BEVT_DATA=data_root),
                          capture_output=True,
                          text=True,
                          timeout=600)


def log_text(work_dir: str) -> str:
    logs = []
    for root, _, files in os.walk(work_dir):
        logs += [osp.join(root, f) for f in files if f.endswith('.log')]
    return ''.join(open(path).read() for path in sorted(logs))


def test_config_changes_the_base(project, monkeypatch):
    from mmengine.config import Config
    monkeypatch.delenv('BEVT_DATA', raising=False)
    cfg = Config.fromfile(osp.join(project, CONFIG))
    assert cfg.default_scope == 'bevt'
    assert cfg.model.cls_head.dropout_ratio == 0.5
    assert cfg.model.backbone.type == 'SwinTransformer3D'  # inherited
    assert cfg.train_cfg.max_epochs == 6
    assert [s.end for s in cfg.param_scheduler] == [1, 6]
    assert cfg.param_scheduler[1].T_max == 6
    for split in ('train', 'val', 'test'):
        dataset = cfg[f'{split}_dataloader'].dataset
        assert dataset.ann_file.startswith('data/my_motion/'), dataset
        assert dataset.data_prefix.video.startswith('data/my_motion/videos/')
        assert dataset.pipeline  # inherited
    assert cfg.train_dataloader.dataset.ann_file.endswith('videos_train.txt')


def test_train_and_test_with_mmaction2_tools(project, motion_data):
    train = run([
        mmaction_tool('train.py'), CONFIG, '--work-dir', 'work',
        '--cfg-options', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        *QUICK
    ], project, motion_data)
    assert train.returncode == 0, train.stderr[-3000:]
    checkpoint = osp.join(project, 'work', 'epoch_1.pth')
    assert osp.isfile(checkpoint)
    assert 'acc/top1' in log_text(osp.join(project, 'work'))

    test = run([
        mmaction_tool('test.py'), CONFIG, checkpoint, '--work-dir',
        'work_test', '--cfg-options', *QUICK
    ], project, motion_data)
    assert test.returncode == 0, test.stderr[-3000:]
    text = log_text(osp.join(project, 'work_test'))
    assert re.search(r'Epoch\(test\).*acc/top1: \d', text), text[-3000:]
    # the test read the fixture's data (BEVT_DATA), not data/my_motion
    assert osp.join(motion_data, 'videos_val.txt') in text
