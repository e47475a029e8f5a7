# Copyright (c) bevt contributors. All rights reserved.
import hashlib
import math

import mmcv
import numpy as np
import pytest
from mmengine.registry import DefaultScope

from bevt.datasets.transforms.clip_randaugment import (IMGAUG_RANDAUGMENT_OPS,
                                                       BEVTClipRandAugment,
                                                       apply_op, op_level)
from bevt.registry import TRANSFORMS


def clip(num_frames=4, h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    return [
        rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        for _ in range(num_frames)
    ]


def test_imgaug_levels_at_m7():
    """imgaug 0.4.0 RandAugment's values for m=7 (of 30)."""
    assert op_level('Rotate', 7) == pytest.approx(7.)  # degrees
    assert op_level('Posterize', 7) == 7  # bits kept: 8 - int(1.4)
    assert op_level('Solarize', 7) == 197  # 256 - int(59.7)
    for op in ('EnhanceColor', 'EnhanceContrast', 'EnhanceBrightness',
               'EnhanceSharpness'):
        assert op_level(op, 7) == pytest.approx(0.21)  # factor 1 +- 0.21
    assert op_level('ShearX', 7) == pytest.approx(math.degrees(0.3) * 7 / 30)
    assert op_level('TranslateY', 7) == pytest.approx(0.077)
    assert op_level('Cutout', 7) == pytest.approx(20 / 32 * 7 / 30)
    assert op_level('Cutout', 30) == pytest.approx(20 / 32)
    assert op_level('Posterize', 30) == 2 and op_level('Solarize', 30) == 0


def test_every_frame_gets_the_same_ops():
    transform = BEVTClipRandAugment(num_ops=4, magnitude=7)
    for seed in range(20):
        frames = clip(seed=seed)
        np.random.seed(seed)
        draw = transform.sample()
        np.random.seed(seed)
        out = transform(dict(imgs=[f.copy() for f in frames]))['imgs']
        assert len(draw['ops']) == 4
        assert len({op for op, _, _ in draw['ops']}) == 4  # distinct
        for frame, result in zip(frames, out):
            assert result.shape == frame.shape and result.dtype == np.uint8
            np.testing.assert_array_equal(result, transform.apply(frame, draw))


def test_identical_frames_stay_identical():
    transform = BEVTClipRandAugment(num_ops=4, magnitude=7)
    changed = 0
    for seed in range(30):
        np.random.seed(seed)
        frame = clip(1, seed=seed)[0]
        out = transform(dict(imgs=[frame.copy() for _ in range(3)]))['imgs']
        for other in out[1:]:
            np.testing.assert_array_equal(other, out[0])
        changed += not np.array_equal(out[0], frame)
    assert changed >= 25


def test_draws_cover_the_op_pool():
    transform = BEVTClipRandAugment(num_ops=4, magnitude=7)
    np.random.seed(0)
    seen, flips, signs = set(), 0, set()
    for _ in range(200):
        draw = transform.sample()
        seen.update(op for op, _, _ in draw['ops'])
        flips += draw['flip']
        assert all(0 <= c <= 7 / 224 for c in draw['crop'])
        signs.update(np.sign(v) for op, v, _ in draw['ops'] if op == 'Rotate')
    assert seen == set(IMGAUG_RANDAUGMENT_OPS)
    assert 60 < flips < 140  # imgaug's Fliplr(0.5)
    assert signs == {-1., 1.}


def test_no_flip_no_crop_identity_is_a_no_op():
    transform = BEVTClipRandAugment(
        num_ops=1, magnitude=7, hflip_prob=0., crop=False, ops=['Identity'])
    frames = clip()
    out = transform(dict(imgs=[f.copy() for f in frames]))['imgs']
    for frame, result in zip(frames, out):
        np.testing.assert_array_equal(frame, result)


@pytest.mark.parametrize('op', IMGAUG_RANDAUGMENT_OPS)
def test_each_op_keeps_shape_and_dtype(op):
    frame = clip(1)[0]
    out = apply_op(frame, op, op_level(op, 7), 128, (0.5, 0.5))
    assert out.shape == frame.shape and out.dtype == np.uint8


def test_ops_do_what_they_say():
    frame = clip(1)[0]
    np.testing.assert_array_equal(
        apply_op(frame, 'Invert', 0., 128, (0, 0)), 255 - frame)
    solarized = apply_op(frame, 'Solarize', 197, 128, (0, 0))
    np.testing.assert_array_equal(solarized,
                                  np.where(frame < 197, frame, 255 - frame))
    cut = apply_op(frame, 'Cutout', 0.25, 128, (0.5, 0.5))
    assert (cut == 128).all(axis=-1).sum() >= 12 * 12  # 0.25 * 48 side
    moved = apply_op(frame, 'TranslateX', 0.25, 128, (0, 0))
    np.testing.assert_array_equal(moved[:, 16:], frame[:, :-16])
    assert (moved[:, :16] == 128).all()


# md5 (first 16 hex digits) of imgaug 0.4.0's output for each RandAugment op
# at m=7 on FRAME: the augmenters of `iaa.RandAugment` with their random
# choices fixed (the sign in SIGNS, the Cutout centre (y, x) = (0.3, 0.8)),
# computed with imgaug 0.4.0's `pillike` / `arithmetic` augmenters
IMGAUG_MD5 = {
    'Identity': '8fe0f34cc1b57fd4',
    'Autocontrast': 'a38ca20e7528b205',
    'Equalize': 'ca38c83a66265755',
    'Invert': '2d2714d469a73d7f',
    'Rotate': '330586c5f3fdc7b6',
    'Posterize': 'cdb32826c954400b',
    'Solarize': '074bde24c42202de',
    'EnhanceColor': '99414ebdbcd4099b',
    'EnhanceContrast': '853773b9af9d72e9',
    'EnhanceBrightness': '022803376060040c',
    'EnhanceSharpness': 'bcb23656e5c682ba',
    'ShearX': 'f0d6d343af003262',
    'ShearY': '14ea8a20f065c1d8',
    'TranslateX': 'cb5ce1757ec7c169',
    'TranslateY': '2cd51453903219ae',
    'Cutout': '086eae086f56382b',
    'FilterBlur': '16ca81b51eb22f53',
    'FilterSmooth': '61273aa5b9197fa8',
}
SIGNS = dict(
    Rotate=-1,
    EnhanceContrast=-1,
    EnhanceSharpness=-1,
    ShearY=-1,
    TranslateX=-1)


@pytest.mark.parametrize('op', IMGAUG_RANDAUGMENT_OPS)
def test_each_op_equals_imgaug(op):
    """Every op gives imgaug 0.4.0's output to the bit (24 x 32 frame,
    m=7, fill 128)."""
    h, w = 24, 32
    frame = ((np.arange(h * w * 3).reshape(h, w, 3) * 37 +
              np.arange(h)[:, None, None]**2) % 151 + 50).astype(np.uint8)
    value = SIGNS.get(op, 1) * op_level(op, 7)
    out = np.ascontiguousarray(apply_op(frame, op, value, 128, (0.3, 0.8)))
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert hashlib.md5(out.tobytes()).hexdigest()[:16] == IMGAUG_MD5[op]


def test_initial_crop_is_imgaug_keep_size_crop():
    """imgaug's `KeepSizeByResize(Crop(px=(t, r, b, l)), 'linear')` after
    `Fliplr`: crop the flipped frame, resize back bilinearly."""
    frame = clip(1, h=48, w=64)[0]
    transform = BEVTClipRandAugment(num_ops=0, magnitude=7)
    draw = dict(flip=True, crop=(3 / 48, 5 / 64, 7 / 48, 1 / 64), ops=[])
    expected = mmcv.imresize(frame[:, ::-1][3:41, 1:59], (64, 48))
    np.testing.assert_array_equal(transform.apply(frame, draw), expected)


def test_invalid_arguments():
    with pytest.raises(ValueError, match='Invalid RandAugment ops'):
        BEVTClipRandAugment(ops=['Flip'])
    with pytest.raises(ValueError, match='num_ops'):
        BEVTClipRandAugment(num_ops=19)
    with pytest.raises(ValueError, match='magnitude'):
        BEVTClipRandAugment(magnitude=31)
    with pytest.raises(ValueError, match='hflip_prob'):
        BEVTClipRandAugment(hflip_prob=2.)
    with pytest.raises(TypeError, match='uint8'):
        BEVTClipRandAugment()(
            dict(imgs=[np.zeros((8, 8, 3), dtype=np.float32)]))


def test_registered():
    with DefaultScope.overwrite_default_scope('bevt'):
        transform = TRANSFORMS.build(
            dict(type='BEVTClipRandAugment', num_ops=4, magnitude=7))
    assert isinstance(transform, BEVTClipRandAugment)
    assert 'num_ops=4, magnitude=7' in repr(transform)
