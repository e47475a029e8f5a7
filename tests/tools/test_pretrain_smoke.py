# Copyright (c) bevt contributors. All rights reserved.
"""Two-stream BEVT pretraining through the real tools on generated mp4s."""
import glob
import json
import math
import os
import os.path as osp
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from bevt.testing import PRETRAIN_SMOKE_CONFIG, REPO_ROOT, fresh_env

LOSS_LINE = re.compile(r'Epoch\(train\)\s+\[(\d+)\]\[\s*(\d+)/\d+\].*?'
                       r'loss: (\S+)\s+loss_video: (\S+).*?loss_img: (\S+)')


def loaders(workers: int, persistent: bool = False):
    opts = []
    for loader in ('train_dataloader', 'img_dataloader'):
        opts += [
            f'{loader}.num_workers={workers}',
            f'{loader}.persistent_workers={persistent}'
        ]
    return opts


def train(data_root, work_dir, *options, resume=False, launcher=None, **env):
    if launcher is None:
        cmd = [sys.executable, 'tools/train.py']
    else:
        cmd = ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh')]
    cmd = [cmd[0], cmd[1], PRETRAIN_SMOKE_CONFIG]
    if launcher is not None:
        cmd.append(str(launcher))
    cmd += ['--work-dir', str(work_dir)]
    if resume:
        cmd.append('--resume')
    cmd += ['--cfg-options', 'default_hooks.logger.interval=1', *options]
    return subprocess.run(
        cmd,
        cwd=REPO_ROOT,
        env=fresh_env(BEVT_DATA=data_root, PYTHON=sys.executable, **env),
        capture_output=True,
        text=True,
        errors='replace',  # decord/ffmpeg print raw bytes of bad files
        timeout=600)


def log_text(work_dir) -> str:
    logs = []
    for root, _, files in os.walk(str(work_dir)):
        logs += [osp.join(root, f) for f in files if f.endswith('.log')]
    return ''.join(open(path).read() for path in sorted(logs))


def losses(work_dir):
    """{(epoch, iteration): (loss, loss_video, loss_img)} from the log."""
    return {
        (int(m[1]), int(m[2])): tuple(float(x) for x in m.groups()[2:])
        for m in LOSS_LINE.finditer(log_text(work_dir))
    }


def test_two_stream_pretraining_logs_both_losses(motion_data, tmp_path):
    result = train(motion_data, tmp_path, 'train_cfg.max_epochs=1',
                   *loaders(0))
    assert result.returncode == 0, result.stderr[-3000:]
    found = losses(tmp_path)
    assert len(found) == 4  # 16 clips / 4 per batch
    for loss, video, image in found.values():
        assert math.isfinite(loss) and video > 0 and image > 0
        assert loss == pytest.approx(video + image, abs=2e-4)
    log = log_text(tmp_path)
    assert 'acc_video' in log and 'acc_img' in log
    assert 'skipped_files: 0' in log
    assert osp.isfile(osp.join(tmp_path, 'epoch_1.pth'))


EXACT = ['log_processor.window_size=1']  # each step's own losses


def step_losses(work_dir):
    """{step: (loss, loss_video, loss_img)} from the runs' scalars.json
    (a later run of the same work dir overrides the steps it repeats)."""
    found = {}
    for path in sorted(
            glob.glob(
                osp.join(str(work_dir), '*', 'vis_data', 'scalars.json'))):
        with open(path) as file:
            for line in file:
                row = json.loads(line)
                if 'loss' in row:
                    found[row['step']] = (row['loss'], row['loss_video'],
                                          row['loss_img'])
    return found


def assert_same_losses(got, expected, steps):
    assert set(steps) <= set(got), sorted(got)
    for step in steps:
        np.testing.assert_allclose(
            got[step], expected[step], rtol=0, atol=1e-6, err_msg=str(step))


@pytest.fixture(scope='module')
def uninterrupted(motion_data, tmp_path_factory):
    """3 epochs of 4 steps with the shipped loaders (2 persistent workers
    each): {step: losses}."""
    work_dir = tmp_path_factory.mktemp('uninterrupted')
    result = train(motion_data, work_dir, 'train_cfg.max_epochs=3', *EXACT)
    assert result.returncode == 0, result.stderr[-3000:]
    found = step_losses(work_dir)
    assert sorted(found) == list(range(1, 13))
    return found


@pytest.mark.parametrize('workers,persistent', [(0, False), (2, False)])
def test_workers_do_not_change_the_losses(motion_data, tmp_path, workers,
                                          persistent, uninterrupted):
    # every sample's augmentation and masks come from its own seed
    result = train(motion_data, tmp_path, 'train_cfg.max_epochs=1', *EXACT,
                   *loaders(workers, persistent))
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_losses(step_losses(tmp_path), uninterrupted, range(1, 5))


def test_resume_passes_over_a_truncated_checkpoint(motion_data, tmp_path,
                                                   uninterrupted):
    """The latest checkpoint cut short on disk: a bare --resume names it,
    resumes from the one before, and trains exactly the uninterrupted run's
    steps."""
    half = train(motion_data, tmp_path, 'train_cfg.max_epochs=2', *EXACT)
    assert half.returncode == 0, half.stderr[-3000:]
    latest = tmp_path / 'epoch_2.pth'
    latest.write_bytes(latest.read_bytes()[:latest.stat().st_size // 2])
    resumed = train(
        motion_data, tmp_path, 'train_cfg.max_epochs=3', *EXACT, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f'cannot resume from {latest}' in resumed.stdout
    assert 'resumed epoch: 1' in log_text(tmp_path)
    assert_same_losses(step_losses(tmp_path), uninterrupted, range(1, 13))


def test_killed_run_resumes_mid_epoch(motion_data, tmp_path, uninterrupted):
    """kill -9 in the middle of epoch 2 of a run saving a checkpoint every
    step, then a bare --resume: the rest of the run equals the
    uninterrupted one."""
    every_step = [
        'default_hooks.checkpoint.by_epoch=False',
        'default_hooks.checkpoint.interval=1'
    ]
    cmd = [
        sys.executable, 'tools/train.py', PRETRAIN_SMOKE_CONFIG, '--work-dir',
        str(tmp_path), '--cfg-options', 'train_cfg.max_epochs=3', *EXACT,
        *every_step
    ]
    job = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        env=fresh_env(BEVT_DATA=motion_data),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        deadline = time.time() + 300
        while not osp.isfile(tmp_path / 'iter_5.pth'):
            assert job.poll() is None, 'the run ended before iteration 5'
            assert time.time() < deadline, 'no iter_5.pth after 300 s'
            time.sleep(0.05)
    finally:
        os.killpg(job.pid, signal.SIGKILL)  # the trainer and its workers
        job.wait()
    assert job.returncode == -signal.SIGKILL
    saved = sorted(
        int(re.search(r'iter_(\d+)', p)[1])
        for p in glob.glob(str(tmp_path / 'iter_*.pth')))
    assert 5 <= saved[-1] < 12
    resumed = train(
        motion_data,
        tmp_path,
        'train_cfg.max_epochs=3',
        *EXACT,
        *every_step,
        resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = log_text(tmp_path)
    if saved[-1] % 4:  # the checkpoint is inside an epoch
        assert 'resuming epoch 2 after its first' in log or \
            'resuming epoch 3 after its first' in log
    # (the killed run's log may have lost its last lines)
    got = step_losses(tmp_path)
    assert_same_losses(got, uninterrupted, range(saved[-1] + 1, 13))
    assert_same_losses(got, uninterrupted, sorted(got))


def test_dist_train_two_processes_end_with_the_same_weights(
        motion_data, tmp_path):
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    result = train(
        motion_data,
        tmp_path,
        'train_cfg.max_epochs=1',
        'train_dataloader.batch_size=2',
        *loaders(0),
        launcher=2,
        PORT=str(port))
    assert result.returncode == 0, result.stderr[-3000:]
    log = log_text(tmp_path)
    assert 'Distributed training: True' in log
    assert 'Epoch(train) [1][4/4]' in log  # 16 clips / (2 x 2)
    # every gradient has its parameter's layout: DDP's reducer copies none
    assert 'Grad strides do not match' not in result.stdout + result.stderr
    digests = [
        open(osp.join(tmp_path, f'params_rank{r}.txt')).read() for r in (0, 1)
    ]
    assert digests[0] == digests[1] and len(digests[0].strip()) == 64


def _bad_video_list(motion_data, tmp_path, good_copies: int):
    """Good clips repeated, plus a zero-byte, a truncated, a random-bytes
    and a missing file (absolute paths in a "path label" list)."""
    videos = osp.join(motion_data, 'videos', 'train')
    good = sorted(os.listdir(videos))
    bad_dir = tmp_path / 'bad'
    bad_dir.mkdir()
    (bad_dir / 'zero.mp4').write_bytes(b'')
    data = open(osp.join(videos, good[0]), 'rb').read()
    (bad_dir / 'truncated.mp4').write_bytes(data[:len(data) // 2])
    (bad_dir / 'random.mp4').write_bytes(os.urandom(4096))
    bad = [
        str(bad_dir / n)
        for n in ('zero.mp4', 'truncated.mp4', 'random.mp4', 'missing.mp4')
    ]
    lines = [f'{osp.join(videos, name)} 0' for name in good] * good_copies
    lines += [f'{path} 0' for path in bad]
    ann = tmp_path / 'videos_with_bad_files.txt'
    ann.write_text('\n'.join(lines) + '\n')
    shutil.copy(osp.join(videos, good[0]), bad_dir / 'unused_good.mp4')
    return str(ann), bad


def test_corrupt_videos_are_skipped_and_named_once(motion_data, tmp_path):
    ann, bad = _bad_video_list(motion_data, tmp_path, good_copies=5)
    # 4 bad of 84 clips (4.8 %)
    result = train(motion_data, tmp_path / 'run', 'train_cfg.max_epochs=1',
                   f'train_dataloader.dataset.dataset.ann_file={ann}',
                   'train_dataloader.dataset.dataset.data_prefix.video=',
                   'custom_hooks.0.min_samples=20',
                   'custom_hooks.0.max_skip_ratio=0.1', *loaders(0))
    assert result.returncode == 0, result.stderr[-3000:]
    log = log_text(tmp_path / 'run')
    for path in bad:
        assert log.count(f'skipped unreadable file {path}') == 1, path
    assert 'skipped_files: 4' in log
    assert len(losses(tmp_path / 'run')) == 21  # 84 / 4, nothing lost


def test_too_many_corrupt_videos_stop_training(motion_data, tmp_path):
    ann, bad = _bad_video_list(motion_data, tmp_path, good_copies=1)
    # 4 bad of 20 clips (20 %)
    result = train(motion_data, tmp_path / 'run', 'train_cfg.max_epochs=1',
                   f'train_dataloader.dataset.dataset.ann_file={ann}',
                   'train_dataloader.dataset.dataset.data_prefix.video=',
                   'custom_hooks.0.min_samples=8',
                   'custom_hooks.0.max_skip_ratio=0.05', *loaders(0))
    assert result.returncode != 0
    assert 'Too many unreadable files' in result.stderr
    assert any(path in result.stderr for path in bad)


def test_gradient_accumulation_in_the_joint_loop(motion_data, tmp_path):
    result = train(motion_data, tmp_path, 'train_cfg.max_epochs=1',
                   'optim_wrapper.accumulative_counts=2', *loaders(0))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(losses(tmp_path)) == 4
