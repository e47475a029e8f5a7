# Copyright (c) bevt contributors. All rights reserved.
import cv2
import mmcv
import numpy as np
import pytest
from mmengine.registry import DefaultScope

from bevt.datasets.transforms import BEVTTokenizerView
from bevt.registry import TRANSFORMS


def frames(n, h=64, w=80, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_clip_view_is_a_lanczos_copy():
    imgs = frames(4)
    originals = [f.copy() for f in imgs]
    results = BEVTTokenizerView()(dict(imgs=imgs))
    view = results['tokenizer_imgs']
    assert isinstance(view, list) and len(view) == 4
    for frame, small in zip(imgs, view):
        assert small.shape == (112, 112, 3) and small.dtype == np.uint8
        expected = mmcv.imresize(frame, (112, 112), interpolation='lanczos')
        np.testing.assert_array_equal(small, expected)
        np.testing.assert_array_equal(
            small,
            cv2.resize(frame, (112, 112), interpolation=cv2.INTER_LANCZOS4))
        # not bilinear
        assert not np.array_equal(
            small, mmcv.imresize(frame, (112, 112), interpolation='bilinear'))
    # a copy: writing the view leaves the model view alone, and vice versa
    for small in view:
        small[...] = 0
    for frame, original in zip(results['imgs'], originals):
        np.testing.assert_array_equal(frame, original)
    results['imgs'][0][...] = 255
    assert view[0].max() == 0


def test_single_image_rectangular_size_and_same_size_copy():
    img = frames(1, 50, 70)
    out = BEVTTokenizerView(size=(24, 40))(dict(imgs=img))['tokenizer_imgs']
    assert len(out) == 1 and out[0].shape == (24, 40, 3)
    np.testing.assert_array_equal(
        out[0], mmcv.imresize(img[0], (40, 24), interpolation='lanczos'))
    # already at the target size: still a separate array
    same = frames(1, 32, 32)
    out = BEVTTokenizerView(32)(dict(imgs=same))['tokenizer_imgs']
    assert not np.shares_memory(out[0], same[0])
    # one (H, W, 3) array (mmcv's ``img`` key) gives one array
    one = BEVTTokenizerView(
        16, keys=('img', ), out_key='small')(
            dict(img=img[0]))
    assert one['small'].shape == (16, 16, 3)


def test_errors_and_registry():
    with pytest.raises(ValueError, match='size'):
        BEVTTokenizerView(size=0)
    with pytest.raises(ValueError, match='out_key'):
        BEVTTokenizerView(keys=('imgs', 'img'), out_key='tokenizer_imgs')
    with pytest.raises(TypeError, match='imgs'):
        BEVTTokenizerView()(dict(imgs=[]))
    with pytest.raises(ValueError, match='frames'):
        BEVTTokenizerView()(dict(imgs=[np.zeros((4, 4))]))
    with DefaultScope.overwrite_default_scope('bevt'):
        view = TRANSFORMS.build(dict(type='BEVTTokenizerView', size=8))
    assert isinstance(view, BEVTTokenizerView)
    assert "interpolation='lanczos'" in repr(view)
