# Copyright (c) bevt contributors. All rights reserved.
"""tools/analysis_tools/knn_eval.py: the hook's result for a bevt
checkpoint, for the same weights converted for mmaction2, and at random
init, on a few generated motion clips."""
import importlib.util
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import bevt.engine  # noqa: F401  (registers the parts)
import bevt.models  # noqa: F401
from bevt.datasets.synthetic_motion import make_synthetic_dataset
from bevt.engine.hooks.knn_hook import BEVTKNNHook
from bevt.registry import MODELS
from bevt.testing import REPO_ROOT, config_path
from bevt.utils import checkpoint_convert as cc

SCRIPT = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'knn_eval.py')
CONFIG = config_path(
    'bevt/smoke/'
    'bevt-hog_swin-nano-p244-w444_1xb4-8x2x1-3e_synthetic-motion-shapes.py')
spec = importlib.util.spec_from_file_location('bevt_knn_eval', SCRIPT)
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


@pytest.fixture(scope='module')
def motion_data(tmp_path_factory):
    """4 train and 2 val clips per motion; the config reads BEVT_DATA."""
    root = tmp_path_factory.mktemp('knn_motion')
    make_synthetic_dataset(
        str(root), dict(train=4, val=2), dict(train=1, val=1), seed=3)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('BEVT_DATA', str(root))
        yield root


@pytest.fixture(scope='module')
def checkpoints(motion_data, tmp_path_factory):
    """A trained-looking nano BEVT (random weights) as a bevt checkpoint
    and converted for mmaction2, and the hook's result on it."""
    root = tmp_path_factory.mktemp('knn_ckpt')
    cfg = Config.fromfile(CONFIG)
    init_default_scope('bevt')
    torch.manual_seed(1)
    model = MODELS.build(cfg.model)
    model.backbone.init_weights()
    files = dict(bevt=root / 'bevt.pth', mmaction=root / 'mmaction.pth')
    torch.save(dict(state_dict=model.state_dict()), files['bevt'])
    converted = cc.convert_bevt_to_mmaction(model.state_dict()).state_dict
    torch.save(
        dict(state_dict={
            'backbone.' + k: v
            for k, v in converted.items()
        }), files['mmaction'])
    hook_cfg = dict(cfg.custom_hooks[-1])
    assert hook_cfg.pop('type') == 'BEVTKNNHook'
    return files, BEVTKNNHook(**hook_cfg).evaluate(model)


def _knn(capsys, *args):
    assert tool.main([CONFIG, *map(str, args), '--num-workers', '0']) == 0
    out = capsys.readouterr().out
    found = re.search(r'knn/top1: ([0-9.]+)  knn/top5: ([0-9.]+)', out)
    assert found, out
    return out, float(found.group(1)), float(found.group(2))


def test_checkpoint_and_its_mmaction2_conversion(checkpoints, capsys):
    files, hook = checkpoints
    assert hook['num_bank'] == 32 and hook['num_query'] == 16
    for kind, path in (('bevt', files['bevt']), ('mmaction2',
                                                 files['mmaction'])):
        out, top1, top5 = _knn(capsys, path)
        assert (top1, top5) == (round(hook['top1'], 4), round(hook['top5'],
                                                              4)), out
        assert f'({kind})' in out and '32 bank / 16 query samples' in out


def test_random_init_and_command_line_sets(checkpoints, motion_data, capsys):
    out, top1, _ = _knn(capsys, '--random-init', '--max-samples', '8', '--k',
                        '5')
    assert 'random init (seed 0)' in out and '8 bank / 8 query' in out
    # --query replaces the list: the training clips classify themselves
    out, top1, _ = _knn(capsys, '--random-init', '--query',
                        motion_data / 'videos_train.txt', '--query-prefix',
                        motion_data / 'videos' / 'train', '--k', '1')
    assert '32 bank / 32 query' in out and top1 == 1.0


def test_errors(motion_data, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        tool.parse_args(['--help'])
    assert info.value.code == 0 and 'CHECKPOINT' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        tool.parse_args([CONFIG])  # neither a checkpoint nor --random-init
    assert tool.main([CONFIG, str(tmp_path / 'none.pth')]) == 2
    assert 'No such checkpoint' in capsys.readouterr().err
    assert tool.main([CONFIG, '--random-init', '--bank', 'no.txt']) == 2
    assert 'no.txt' in capsys.readouterr().err
    other = config_path('bevt/smoke/bevt_swin-nano-p244-w444_1xb4-8x2x1-'
                        '4e_synthetic-motion-shapes.py')
    assert tool.main([other, '--random-init']) == 2
    assert 'no BEVTKNNHook' in capsys.readouterr().err
    bad = tmp_path / 'bad.pth'
    torch.save(dict(state_dict={'backbone.foo': torch.zeros(1)}), bad)
    assert tool.main([CONFIG, str(bad)]) == 2
    assert 'does not know: foo' in capsys.readouterr().err
