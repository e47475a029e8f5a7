# Copyright (c) bevt contributors. All rights reserved.
"""Two-stream BEVT pretraining through the real tools on generated mp4s."""
import math
import os
import os.path as osp
import re
import shutil
import socket
import subprocess
import sys

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


def test_resume_gives_the_losses_of_an_uninterrupted_run(
        motion_data, tmp_path):
    # workers restart every epoch (not persistent): the per-epoch seeds of
    # the loop reach them, so an epoch is the same whether resumed or not
    common = ['train_cfg.max_epochs=2', *loaders(1, persistent=False)]
    full = train(motion_data, tmp_path / 'full', *common)
    assert full.returncode == 0, full.stderr[-3000:]
    half = train(motion_data, tmp_path / 'half', *common,
                 'train_cfg.max_epochs=1')
    assert half.returncode == 0, half.stderr[-3000:]
    resumed = train(motion_data, tmp_path / 'half', *common, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, got = losses(tmp_path / 'full'), losses(tmp_path / 'half')
    assert [k for k in got if k[0] == 2] == [(2, i) for i in range(1, 5)]
    for key, value in expected.items():
        assert got[key] == value, key


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
