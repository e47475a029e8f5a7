# Copyright (c) bevt contributors. All rights reserved.
import os.path as osp

import decord
import numpy as np
import pytest

from bevt.datasets import MOTIONS, SHAPES, make_synthetic_dataset
from bevt.datasets.synthetic_motion import make_clip


def read_clip(path: str) -> np.ndarray:
    reader = decord.VideoReader(path)
    return reader.get_batch(list(range(len(reader)))).asnumpy()


def test_layout_and_decoding(motion_data):
    with open(osp.join(motion_data, 'videos_train.txt')) as f:
        lines = f.read().splitlines()
    assert len(lines) == 2 * len(MOTIONS)
    labels = sorted({int(line.split()[1]) for line in lines})
    assert labels == list(range(len(MOTIONS)))
    clip = read_clip(
        osp.join(motion_data, 'videos', 'train', lines[0].split()[0]))
    assert clip.shape == (16, 64, 64, 3) and clip.dtype == np.uint8
    with open(osp.join(motion_data, 'images_train.txt')) as f:
        images = f.read().splitlines()
    assert len(images) == len(SHAPES)
    assert osp.isfile(
        osp.join(motion_data, 'images', 'train', images[0].split()[0]))


def test_deterministic(tmp_path):
    for name in ('a', 'b'):
        make_synthetic_dataset(
            str(tmp_path / name),
            videos_per_class=dict(train=1),
            images_per_class=dict(train=1),
            seed=3)
    first, second = (
        read_clip(str(tmp_path / name / 'videos' / 'train' / 'grow_0000.mp4'))
        for name in ('a', 'b'))
    np.testing.assert_array_equal(first, second)


def test_dataset_is_current(tmp_path):
    from bevt.datasets.synthetic_motion import INFO_FILE, dataset_is_current
    root = str(tmp_path / 'd')
    counts = dict(
        videos_per_class=dict(train=1), images_per_class=dict(train=1))
    assert not dataset_is_current(root, **counts)  # nothing there
    make_synthetic_dataset(root, seed=3, **counts)
    assert dataset_is_current(root, seed=3, **counts)
    assert not dataset_is_current(root, seed=4, **counts)
    assert not dataset_is_current(root, seed=3)  # other sizes
    with open(osp.join(root, INFO_FILE), 'w') as f:
        f.write('{broken')
    assert not dataset_is_current(root, seed=3, **counts)


def test_motion_is_in_time_not_in_a_frame():
    rng = np.random.default_rng(0)
    left = make_clip('left', rng)
    # the shape moves: first and last frames differ; the background not
    assert np.abs(left[0].astype(int) - left[-1].astype(int)).mean() > 1
    with pytest.raises(ValueError, match='Invalid motion'):
        make_clip('sideways', rng)


def test_command_line_tool_writes_the_dataset(tmp_path):
    import subprocess
    import sys

    from bevt.testing import REPO_ROOT, fresh_env
    result = subprocess.run([
        sys.executable, 'tools/data/synthetic_motion.py',
        str(tmp_path), '--videos-per-class', '1', '1', '--images-per-class',
        '1', '1'
    ],
                            cwd=REPO_ROOT,
                            env=fresh_env(),
                            capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / 'videos_train.txt').read_text().count('\n') == 8
    assert 'videos_train' in result.stdout
