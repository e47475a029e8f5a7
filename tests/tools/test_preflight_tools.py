# Copyright (c) bevt contributors. All rights reserved.
"""The preflight of tools/train.py and tools/test.py (``--check``) and the
checks of the launch scripts."""
import importlib.util
import os
import os.path as osp
import subprocess
import sys
import time
from unittest import mock

import pytest

from bevt.testing import (PRETRAIN_SMOKE_CONFIG, REPO_ROOT, SMOKE_CONFIG,
                          fresh_env)

TOOLS = osp.join(REPO_ROOT, 'tools')
VIDEO = 'train_dataloader.dataset.dataset'


def load_tool(name: str):
    """tools/<name>.py as a module (its main() runs in this process)."""
    spec = importlib.util.spec_from_file_location(
        f'bevt_preflight_{name}', osp.join(TOOLS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_main(tool, argv):
    """Run a tool's main() with nothing built; returns (SystemExit code,
    the Registry.build and Runner.from_cfg mocks)."""
    with mock.patch.object(sys, 'argv', [f'{tool}.py', *argv]), \
            mock.patch('mmengine.registry.Registry.build') as build, \
            mock.patch('mmengine.runner.Runner.from_cfg') as from_cfg, \
            pytest.raises(SystemExit) as stop:
        load_tool(tool).main()
    return stop.value.code, build, from_cfg


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_check_passes_on_the_smoke_setup_and_builds_nothing(
        tool, motion_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('BEVT_DATA', motion_data)
    work_dir = tmp_path / 'work'
    if tool == 'train':
        argv = [PRETRAIN_SMOKE_CONFIG]
    else:
        checkpoint = tmp_path / 'epoch_1.pth'
        checkpoint.write_bytes(b'')
        argv = [SMOKE_CONFIG, str(checkpoint)]
    start = time.perf_counter()
    code, build, from_cfg = run_main(
        tool,
        [*argv, '--work-dir', str(work_dir), '--check'])
    seconds = time.perf_counter() - start
    assert code == 0
    assert f'preflight of {argv[0]}: OK' in capsys.readouterr().out
    build.assert_not_called()
    from_cfg.assert_not_called()
    assert not work_dir.exists()
    assert seconds < 30, seconds


def test_four_missing_files_stop_train_py_in_one_error(motion_data, tmp_path,
                                                       monkeypatch):
    monkeypatch.setenv('BEVT_DATA', motion_data)
    missing = {
        f'{VIDEO}.ann_file':
        tmp_path / 'videos.txt',
        'img_dataloader.dataset.dataset.ann_file':
        tmp_path / 'images.txt',
        'model.backbone.pretrained':
        tmp_path / 'stage1.pth',
        'model.target_generator.init_cfg.checkpoint':
        tmp_path / 'dalle_encoder.pth',
    }
    config = tmp_path / 'pretrain.py'
    config.write_text(
        f'_base_ = [{PRETRAIN_SMOKE_CONFIG!r}]\n'
        'model = dict(\n'
        f'    backbone=dict(pretrained={str(tmp_path / "stage1.pth")!r}),\n'
        '    target_generator=dict(init_cfg=dict(type="Pretrained", '
        f'checkpoint={str(tmp_path / "dalle_encoder.pth")!r})))\n')
    code, build, from_cfg = run_main('train', [
        str(config), '--cfg-options',
        f'{VIDEO}.ann_file={tmp_path / "videos.txt"}',
        f'img_dataloader.dataset.dataset.ann_file={tmp_path / "images.txt"}'
    ])
    message = str(code)
    assert message.startswith(f'error: {config} cannot run: 4 problems')
    for key, path in missing.items():
        assert f'{key}: ' in message and str(path) in message
    build.assert_not_called()
    from_cfg.assert_not_called()


def test_bad_tokenizer_view_is_named_before_any_data(tmp_path, monkeypatch):
    """No data at all: the view size is named with the missing files, and
    no dataset is built."""
    monkeypatch.setenv('BEVT_DATA', str(tmp_path / 'no_data'))
    code, build, from_cfg = run_main('train', [
        PRETRAIN_SMOKE_CONFIG, '--check', '--cfg-options',
        f'{VIDEO}.pipeline.6.size=48'
    ])
    message = str(code)
    assert f'{VIDEO}.pipeline.6.size: the tokenizer view is 48x48 px' in \
        message
    assert f'{VIDEO}.ann_file' in message
    build.assert_not_called()
    from_cfg.assert_not_called()


def test_check_exit_status_from_the_command_line(motion_data, tmp_path):
    env = fresh_env(BEVT_DATA=motion_data)
    missing = str(tmp_path / 'epoch_9.pth')
    result = subprocess.run([
        sys.executable, 'tools/train.py', PRETRAIN_SMOKE_CONFIG, '--check',
        '--resume', missing
    ],
                            cwd=REPO_ROOT,
                            env=env,
                            capture_output=True,
                            text=True,
                            timeout=300)
    assert result.returncode == 1
    assert f'--resume: the checkpoint {missing} does not exist' in \
        result.stderr
    assert 'Traceback' not in result.stderr


def slurm(script, tmp_path, **env):
    """Run a slurm script with a fake srun that prints its arguments."""
    fake = tmp_path / 'bin'
    fake.mkdir(exist_ok=True)
    srun = fake / 'srun'
    srun.write_text('#!/usr/bin/env bash\necho "srun $*"\n')
    srun.chmod(0o755)
    environ = dict(os.environ, PATH=f'{fake}:{os.environ["PATH"]}')
    for key in ('GPUS', 'GPUS_PER_NODE', 'CPUS_PER_TASK', 'SRUN_ARGS'):
        environ.pop(key, None)
    environ.update(env)
    args = ['part', 'job', 'config.py']
    if script == 'slurm_test.sh':
        args.append('epoch_1.pth')
    return subprocess.run(['bash', osp.join(TOOLS, script), *args],
                          env=environ,
                          capture_output=True,
                          text=True)


@pytest.mark.parametrize('script', ['slurm_train.sh', 'slurm_test.sh'])
@pytest.mark.parametrize('env,expected', [
    (dict(GPUS='16', GPUS_PER_NODE='8'), '--ntasks=16 --ntasks-per-node=8'),
    (dict(GPUS='4'), '--gres=gpu:4 --ntasks=4 --ntasks-per-node=4'),
    (dict(GPUS='12', GPUS_PER_NODE='8'),
     'GPUS (12) must be a multiple of GPUS_PER_NODE (8)'),
    (dict(GPUS='8', GPUS_PER_NODE='0'),
     "GPUS_PER_NODE must be a positive integer, got '0'"),
    (dict(GPUS='-8'), "GPUS must be a positive integer, got '-8'"),
    (dict(CPUS_PER_TASK='x'), "CPUS_PER_TASK must be a positive integer"),
])
def test_slurm_scripts_check_the_layout(script, env, expected, tmp_path):
    result = slurm(script, tmp_path, **env)
    if expected.startswith('--'):
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout
    else:
        assert result.returncode == 2
        assert expected in result.stderr
        assert 'srun' not in result.stdout  # nothing was asked for


@pytest.mark.parametrize('env,expected', [
    (dict(GPUS='8', GPUS_PER_NODE='0'),
     "GPUS_PER_NODE must be a positive integer, got '0'"),
    (dict(GPUS='32', GPUS_PER_NODE='8',
          NODE_RANK='4'), "NODE_RANK must be in 0..3 for 4 node(s), got '4'"),
    (dict(GPUS='2', PORT='http'), "PORT must be a TCP port (1..65535)"),
])
def test_dist_env_rejects_bad_values(env, expected):
    environ = dict(os.environ, MASTER_ADDR='10.0.0.1', **env)
    for key in ('GPUS_PER_NODE', 'NODE_RANK', 'PORT'):
        if key not in env:
            environ.pop(key, None)
    result = subprocess.run(
        ['bash', '-c', f'source {TOOLS}/dist_env.sh && echo $NNODES'],
        env=environ,
        capture_output=True,
        text=True)
    assert result.returncode == 2
    assert expected in result.stderr
