# Copyright (c) bevt contributors. All rights reserved.
"""tools/train.py, test.py and dist_train.sh on real generated mp4 files."""
import importlib.util
import os
import os.path as osp
import pickle
import socket
import subprocess
import sys
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
from mmengine.model import BaseModule

from bevt.testing import (PRETRAIN_SMOKE_CONFIG, REPO_ROOT, SMOKE_CONFIG,
                          fresh_env)

TOOLS = osp.join(REPO_ROOT, 'tools')
# a tiny, quick run: no worker processes, validation only when asked
QUICK = [
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False',
    'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
    'test_dataloader.num_workers=0',
    'test_dataloader.persistent_workers=False', 'train_cfg.val_interval=10',
    'default_hooks.checkpoint.interval=1',
    'default_hooks.checkpoint.max_keep_ckpts=-1'
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run(args, data_root, **env):
    return subprocess.run(
        args,
        cwd=REPO_ROOT,
        env=fresh_env(BEVT_DATA=data_root, PYTHON=sys.executable, **env),
        capture_output=True,
        text=True,
        timeout=600)


def log_text(work_dir) -> str:
    logs = []
    for root, _, files in os.walk(work_dir):
        logs += [osp.join(root, f) for f in files if f.endswith('.log')]
    return ''.join(open(path).read() for path in sorted(logs))


@pytest.fixture(scope='module')
def trained(motion_data, tmp_path_factory):
    """One epoch of the smoke config with tools/train.py."""
    work_dir = str(tmp_path_factory.mktemp('train'))
    result = run([
        sys.executable, 'tools/train.py', SMOKE_CONFIG, '--work-dir', work_dir,
        '--seed', '1', '--cfg-options', 'train_cfg.max_epochs=1', *QUICK
    ], motion_data)
    assert result.returncode == 0, result.stderr[-3000:]
    return work_dir


def test_train_writes_checkpoint(trained):
    assert osp.isfile(osp.join(trained, 'epoch_1.pth'))
    assert 'seed: 1' in log_text(trained)


def test_resume_continues_training(trained, motion_data, tmp_path):
    # a bare --resume picks the latest checkpoint of the work dir; the
    # checkpoint was written by a real run and loads with weights_only on
    result = run([
        sys.executable, 'tools/train.py', SMOKE_CONFIG, '--work-dir', trained,
        '--resume', '--cfg-options', 'train_cfg.max_epochs=2', *QUICK
    ], motion_data)
    assert result.returncode == 0, result.stderr[-3000:]
    log = log_text(trained)
    assert 'resumed epoch: 1' in log
    assert osp.isfile(osp.join(trained, 'epoch_2.pth'))
    # the resumed epoch (its seed from the checkpoint, augmentations from
    # per-sample seeds) ends with the weights of an uninterrupted run
    whole = str(tmp_path / 'whole')
    result = run([
        sys.executable, 'tools/train.py', SMOKE_CONFIG, '--work-dir', whole,
        '--seed', '1', '--cfg-options', 'train_cfg.max_epochs=2', *QUICK
    ], motion_data)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed, expected = (
        torch.load(osp.join(d, 'epoch_2.pth'),
                   weights_only=False)['state_dict'] for d in (trained, whole))
    assert resumed.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(
            resumed[key], expected[key], atol=1e-6, rtol=0, msg=key)


def test_test_py_dumps_predictions(trained, motion_data, tmp_path):
    dump = str(tmp_path / 'preds.pkl')
    result = run([
        sys.executable, 'tools/test.py', SMOKE_CONFIG,
        osp.join(trained, 'epoch_1.pth'), '--work-dir',
        str(tmp_path / 'test'), '--dump', dump, '--cfg-options', *QUICK
    ], motion_data)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'acc/top1' in log_text(str(tmp_path / 'test'))
    with open(dump, 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 8  # one val clip per motion


def test_test_py_rejects_bad_dump(trained, motion_data):
    result = run([
        sys.executable, 'tools/test.py', SMOKE_CONFIG,
        osp.join(trained, 'epoch_1.pth'), '--dump', 'preds.json'
    ], motion_data)
    assert result.returncode != 0
    assert '--dump must name a .pkl file: preds.json' in result.stderr


def test_dist_train_two_cpu_processes(motion_data, tmp_path):
    work_dir = str(tmp_path / 'dist')
    result = run([
        'bash',
        osp.join(TOOLS, 'dist_train.sh'), SMOKE_CONFIG, '2', '--work-dir',
        work_dir, '--cfg-options', 'train_cfg.max_epochs=1',
        'train_dataloader.batch_size=4', *QUICK
    ],
                 motion_data,
                 PORT=str(free_port()))
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'torchrun: 1 node(s) x 2 process(es)' in result.stderr
    log = log_text(work_dir)
    assert 'Distributed training: True' in log
    assert 'GPU number: 2' in log
    # 16 training clips / (2 processes x 4 clips) = 2 iterations
    assert 'Epoch(train) [1][2/2]' in log
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))


@pytest.mark.parametrize('gpus,per_node,expected', [
    ('32', '8', 'torchrun: 4 node(s) x 8 process(es)'),
    ('2', '', 'torchrun: 1 node(s) x 2 process(es)'),
    ('6', '4', 'must be a multiple of GPUS_PER_NODE'),
    ('x', '', "GPUS must be a positive integer, got 'x'"),
])
def test_dist_env_layout(gpus, per_node, expected):
    env = dict(os.environ, GPUS=gpus, MASTER_ADDR='10.0.0.1')
    env.pop('GPUS_PER_NODE', None)
    if per_node:
        env['GPUS_PER_NODE'] = per_node
    result = subprocess.run(
        ['bash', '-c', f'source {TOOLS}/dist_env.sh && echo $NNODES'],
        env=env,
        capture_output=True,
        text=True)
    assert expected in result.stderr


def load_tool(name: str):
    """tools/<name>.py as a module (its main() runs in this process)."""
    spec = importlib.util.spec_from_file_location(
        f'bevt_tools_{name}', osp.join(TOOLS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_missing_tokenizer_weights_stop_with_the_file_name(tool, tmp_path):
    """A pretraining config whose tokenizer weights are missing stops
    before anything is built, naming the file and the config key."""
    missing = str(tmp_path / 'checkpoints' / 'dalle_encoder.pth')
    config = tmp_path / 'pretrain_with_weights.py'
    config.write_text(f'_base_ = [{PRETRAIN_SMOKE_CONFIG!r}]\n'
                      'model = dict(target_generator=dict(init_cfg=dict(\n'
                      f'    type="Pretrained", checkpoint={missing!r})))\n')
    argv = [f'{tool}.py', str(config), '--work-dir', str(tmp_path / 'work')]
    if tool == 'test':
        argv.insert(2, str(tmp_path / 'epoch_1.pth'))
    with mock.patch.object(sys, 'argv', argv), \
            mock.patch('mmengine.runner.Runner.from_cfg') as from_cfg, \
            pytest.raises(SystemExit) as error:
        load_tool(tool).main()
    message = str(error.value)
    assert missing in message
    assert 'model.target_generator.init_cfg.checkpoint' in message
    from_cfg.assert_not_called()


def test_test_py_loads_the_tokenizer_weights(tmp_path):
    """tools/test.py initialises the tokenizer from its init_cfg (Runner.test
    does not initialise the model)."""
    weights = torch.nn.Linear(2, 2)
    torch.save(weights.state_dict(), str(tmp_path / 'tokenizer.pth'))

    class Tokenizer(BaseModule):

        def __init__(self):
            super().__init__(
                init_cfg=dict(
                    type='Pretrained',
                    checkpoint=str(tmp_path / 'tokenizer.pth')))
            self.weight = torch.nn.Parameter(torch.zeros(2, 2))
            self.bias = torch.nn.Parameter(torch.zeros(2))

    model = torch.nn.Module()
    model.target_generator = Tokenizer()
    load_tool('test').init_tokenizer(SimpleNamespace(model=model))
    assert torch.equal(model.target_generator.weight, weights.weight)


def test_bare_resume_starts_fresh_or_stops_on_unreadable_checkpoints(
        tmp_path, capsys):
    from mmengine.config import Config

    train = load_tool('train')
    cfg = Config(dict(work_dir=str(tmp_path), launcher='none', load_from=None))
    train.resume_from_latest(cfg)  # nothing to resume: the run starts
    assert cfg.load_from is None
    (tmp_path / 'epoch_1.pth').write_bytes(b'truncated')
    with pytest.raises(SystemExit, match='no readable checkpoint'):
        train.resume_from_latest(cfg)
    assert 'epoch_1.pth' in capsys.readouterr().out
    torch.save({'state_dict': {}}, str(tmp_path / 'iter_7.pth'))
    train.resume_from_latest(cfg)
    assert cfg.load_from == str(tmp_path / 'iter_7.pth')
