# Copyright (c) bevt contributors. All rights reserved.
"""tools/analysis_tools/visualize_masks.py: its drawing and its run on real
generated mp4 files with a checkpoint."""
import importlib.util
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.structures import BaseDataElement
from PIL import Image

from bevt.testing import REPO_ROOT, config_path, fresh_env

SCRIPT = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'visualize_masks.py')
HOG_CONFIG = config_path(
    'bevt/smoke/'
    'bevt-hog_swin-nano-p244-w444_1xb4-8x2x1-3e_synthetic-motion-shapes.py')


def _load_tool():
    spec = importlib.util.spec_from_file_location('visualize_masks', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


vis = _load_tool()


def _frame(size=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(150, 256, (size, size, 3)).astype(np.uint8)


def test_masked_view_hides_exactly_the_masked_cells():
    frame = _frame()
    mask = np.zeros((4, 4), bool)
    mask[1, 2] = mask[3, 0] = True
    out = vis.masked_view(frame, mask)
    hatch = {tuple(c) for c in vis.HATCH}
    for i in range(4):
        for j in range(4):
            # cell interior (the grid lines sit on the cell borders)
            cell = out[i * 16 + 1:(i + 1) * 16, j * 16 + 1:(j + 1) * 16]
            orig = frame[i * 16 + 1:(i + 1) * 16, j * 16 + 1:(j + 1) * 16]
            if mask[i, j]:
                assert {tuple(p) for p in cell.reshape(-1, 3)} == hatch
            else:
                np.testing.assert_array_equal(cell, orig)


def test_prediction_view_colours():
    frame = np.full((64, 64, 3), 200, np.uint8)
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = mask[0, 1] = True
    correct = np.zeros((4, 4), bool)
    correct[0, 0] = True
    out = vis.prediction_view(frame, mask, correct).astype(int)
    ok, wrong, visible = out[8, 8], out[8, 24], out[40, 40]
    assert ok[1] > ok[0] + 50 and ok[1] > ok[2] + 50  # green
    assert wrong[0] > wrong[1] + 50 and wrong[0] > wrong[2] + 50  # red
    assert (visible < 100).all()  # dimmed


def test_token_correctness_ids_and_features():
    ids = BaseDataElement(
        pred_tokens=torch.tensor([1, 2, 3, 4]),
        target_tokens=torch.tensor([1, 0, 3, 0]))
    correct, extra = vis.token_correctness(ids)
    assert correct.tolist() == [True, False, True, False] and not extra
    target = torch.randn(6, 5)
    exact = BaseDataElement(pred_features=target, target_features=target)
    correct, extra = vis.token_correctness(exact)
    assert correct.all() and np.allclose(extra['mse'], 0)
    # the mean guess itself is not better than the mean guess
    mean = BaseDataElement(
        pred_features=target.mean(0, keepdim=True).expand(6, 5),
        target_features=target)
    correct, extra = vis.token_correctness(mean)
    assert not correct.any()
    np.testing.assert_allclose(extra['mse'], extra['mse_mean_guess'])


def test_tube_chart_rows_follow_the_mask():
    mask = np.zeros((8, 2, 2), bool)
    mask[2:6, 0, 1] = True  # cell 1, frames 2..5
    chart = vis.tube_chart(mask, cell_px=10)
    body = chart[22:, vis.LABEL_WIDTH:]  # below the frame numbers
    dark = body[5::10, 5::10, 0] < 100  # one pixel per (cell, frame)
    np.testing.assert_array_equal(dark, mask.reshape(8, 4).T)


@pytest.fixture(scope='module')
def hog_checkpoint(tmp_path_factory):
    """A checkpoint of the demo's HOG model, as a run saves it."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from bevt.registry import MODELS
    init_default_scope('bevt')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(HOG_CONFIG).model)
    path = str(tmp_path_factory.mktemp('ckpt') / 'epoch_1.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path


def _run(*args, data_root):
    env = fresh_env(
        BEVT_DATA=data_root, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    return subprocess.run([sys.executable, SCRIPT, HOG_CONFIG, *args],
                          cwd=REPO_ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)


def test_pictures_of_a_checkpoint(motion_data, hog_checkpoint, tmp_path):
    out = tmp_path / 'pictures'
    proc = _run(
        '--checkpoint',
        hog_checkpoint,
        '--out-dir',
        str(out),
        data_root=motion_data)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # 8 frames of 64 px, enlarged 3x: 3 rows of 8 panels
    video = np.asarray(Image.open(out / 'video_masks.png'))
    assert video.shape == (3 * 192 + 2 * 4, vis.LABEL_WIDTH + 8 * 194 - 2, 3)
    gif = Image.open(out / 'video_masks.gif')
    assert gif.n_frames == 8
    tube = np.asarray(Image.open(out / 'video_tube.png'))
    assert tube.shape[0] == 22 + 16 * 14  # 4 x 4 cells, one row each
    image = np.asarray(Image.open(out / 'image_masks.png'))
    assert image.shape == (192, vis.LABEL_WIDTH + 3 * 194 - 2, 3)
    # 4x4 cells; a tube covers 2-4 of the 4 temporal slots (2 frames each)
    video_line = re.search(
        r'video: (\d+) of 128 tokens masked; correct on '
        r'masked: ([\d.]+) %; MSE on masked: ([\d.]+) '
        r'\(mean guess: ([\d.]+)\)', proc.stdout)
    assert video_line, proc.stdout
    masked = int(video_line.group(1))
    assert masked % 4 == 0 and 2 * 4 <= masked <= 8 * 8
    assert 0 <= float(video_line.group(2)) <= 100
    image_line = re.search(r'image: (\d+) of 16 tokens masked', proc.stdout)
    assert image_line and 2 <= int(image_line.group(1)) <= 8, proc.stdout
    # explicit files go through the same pipeline: sample 0's files with
    # the same seed give the same pictures
    with open(osp.join(motion_data, 'videos_train.txt')) as f:
        clip = f.readline().split()[0]
    with open(osp.join(motion_data, 'images_train.txt')) as f:
        img = f.readline().split()[0]
    again = _run(
        '--checkpoint',
        hog_checkpoint,
        '--out-dir',
        str(tmp_path / 'again'),
        '--video',
        osp.join(motion_data, 'videos', 'train', clip),
        '--image',
        osp.join(motion_data, 'images', 'train', img),
        data_root=motion_data)
    assert again.returncode == 0, again.stderr[-3000:]
    for name in ('video_masks.png', 'image_masks.png'):
        np.testing.assert_array_equal(
            np.asarray(Image.open(out / name)),
            np.asarray(Image.open(tmp_path / 'again' / name)))


def test_errors_name_the_file(motion_data, tmp_path):
    proc = _run(
        '--checkpoint', str(tmp_path / 'missing.pth'), data_root=motion_data)
    assert proc.returncode == 2
    assert 'No such checkpoint' in proc.stderr and 'missing.pth' in \
        proc.stderr
    proc = _run(
        '--video',
        str(tmp_path / 'nope.mp4'),
        '--out-dir',
        str(tmp_path / 'o'),
        data_root=motion_data)
    assert proc.returncode == 2 and 'nope.mp4' in proc.stderr
