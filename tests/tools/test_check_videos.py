# Copyright (c) bevt contributors. All rights reserved.
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest

from bevt.testing import REPO_ROOT, fresh_env

SCRIPT = osp.join('tools', 'analysis_tools', 'check_videos.py')
GOOD = ['good_0.mp4', 'sub/good_1.mp4']
BAD = ['zero.mp4', 'truncated.mp4', 'random.mp4', 'missing.mp4']


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *args],
                          cwd=REPO_ROOT,
                          env=fresh_env(),
                          capture_output=True,
                          text=True,
                          timeout=120)


def _write_video(path: str, seed: int) -> None:
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), 8,
                             (32, 32))
    rng = np.random.default_rng(seed)
    for _ in range(16):
        writer.write(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    writer.release()


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp('videos')
    (root / 'sub').mkdir()
    for i, name in enumerate(GOOD):
        _write_video(str(root / name), i)
    _write_video(str(root / 'whole.mp4'), 99)
    data = (root / 'whole.mp4').read_bytes()
    (root / 'zero.mp4').write_bytes(b'')
    (root / 'truncated.mp4').write_bytes(data[:len(data) // 2])
    (root / 'random.mp4').write_bytes(np.random.default_rng(0).bytes(4000))
    names = GOOD[:1] + BAD[:2] + GOOD[1:] + BAD[2:]
    (root / 'list.txt').write_text(''.join(f'{name} {i % 3}\n'
                                           for i, name in enumerate(names)) +
                                   '\n')
    return root


def _bad_of(path) -> dict:
    with open(path) as file:
        lines = file.read().splitlines()
    assert all(line.count('\t') == 1 for line in lines), lines
    return dict(line.split('\t') for line in lines)


def test_help():
    result = _run('--help')
    assert result.returncode == 0, result.stderr
    assert '--data-prefix' in result.stdout and '--nproc' in result.stdout


@pytest.mark.parametrize('nproc', ['1', '2'])
def test_finds_exactly_the_bad_videos(videos, nproc):
    out = videos / f'bad_{nproc}.txt'
    good = videos / f'good_{nproc}.txt'
    result = _run(
        str(videos / 'list.txt'), '--data-prefix', str(videos), '--nproc',
        nproc, '--output', str(out), '--output-good', str(good))
    assert result.returncode == 0, result.stderr
    assert '6 videos' in result.stdout and '2 ok, 4 bad' in result.stdout
    bad = _bad_of(out)
    assert sorted(bad) == sorted(BAD)
    assert bad['zero.mp4'] == 'empty file (0 bytes)'
    assert bad['missing.mp4'] == 'file not found'
    assert all(bad.values())
    # the cleaned list keeps the original lines (labels included)
    assert good.read_text() == 'good_0.mp4 0\nsub/good_1.mp4 0\n'


def test_opencv_decoder_and_paths_only_list(videos):
    (videos / 'paths.txt').write_text(''.join(f'{name}\n'
                                              for name in GOOD + BAD))
    result = _run(
        str(videos / 'paths.txt'), '--data-prefix', str(videos), '--decoder',
        'opencv')
    assert result.returncode == 0, result.stderr
    # no --output: the bad files are printed
    printed = [line for line in result.stdout.splitlines() if '\t' in line]
    assert sorted(line.split('\t')[0] for line in printed) == sorted(BAD)
    assert '2 ok, 4 bad' in result.stdout


def test_images(tmp_path):
    image = np.random.default_rng(0).integers(
        0, 256, (64, 64, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'good.png'), image)
    data = (tmp_path / 'good.png').read_bytes()
    (tmp_path / 'truncated.png').write_bytes(data[:len(data) // 2])
    (tmp_path / 'random.png').write_bytes(b'\x00not a png' * 50)
    (tmp_path / 'zero.jpg').write_bytes(b'')
    (tmp_path / 'list.txt').write_text('good.png 1\ntruncated.png 1\n'
                                       'random.png 2\nzero.jpg 0\n'
                                       'missing.png 3\n')
    out = tmp_path / 'bad.txt'
    result = _run(
        str(tmp_path / 'list.txt'), '--data-prefix', str(tmp_path), '--image',
        '--output', str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(_bad_of(out)) == [
        'missing.png', 'random.png', 'truncated.png', 'zero.jpg'
    ]
    assert '5 images' in result.stdout and '1 ok, 4 bad' in result.stdout


def test_unreadable_list_is_an_error(tmp_path):
    missing = str(tmp_path / 'no_such_list.txt')
    result = _run(missing, '--data-prefix', str(tmp_path))
    assert result.returncode != 0
    assert 'cannot read the annotation file' in result.stderr
    assert missing in result.stderr
