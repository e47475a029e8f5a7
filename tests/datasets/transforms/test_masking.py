# Copyright (c) bevt contributors. All rights reserved.
import math
import random

import numpy as np
import pytest
from mmengine.registry import DefaultScope
from mmengine.runner import set_random_seed

from bevt.datasets.transforms import (BEVTBlockMaskGenerator,
                                      BEVTTubeMaskGenerator,
                                      generate_block_mask)
from bevt.registry import TRANSFORMS

DRAWS = 2000


class OriginalMaskingGenerator:
    """BEiT's ``MaskingGenerator`` as BEVT copied it (microsoft/unilm), the
    only change being ``int`` for the removed ``np.int``."""

    def __init__(self,
                 input_size,
                 num_masking_patches,
                 min_num_patches=4,
                 max_num_patches=None,
                 min_aspect=0.3,
                 max_aspect=None):
        if not isinstance(input_size, tuple):
            input_size = (input_size, ) * 2
        self.height, self.width = input_size
        self.num_masking_patches = num_masking_patches
        self.min_num_patches = min_num_patches
        self.max_num_patches = (
            num_masking_patches
            if max_num_patches is None else max_num_patches)
        max_aspect = max_aspect or 1 / min_aspect
        self.log_aspect_ratio = (math.log(min_aspect), math.log(max_aspect))

    def _mask(self, mask, max_mask_patches):
        delta = 0
        for attempt in range(10):
            target_area = random.uniform(self.min_num_patches,
                                         max_mask_patches)
            aspect_ratio = math.exp(random.uniform(*self.log_aspect_ratio))
            h = int(round(math.sqrt(target_area * aspect_ratio)))
            w = int(round(math.sqrt(target_area / aspect_ratio)))
            if w < self.width and h < self.height:
                top = random.randint(0, self.height - h)
                left = random.randint(0, self.width - w)
                num_masked = mask[top:top + h, left:left + w].sum()
                if 0 < h * w - num_masked <= max_mask_patches:
                    for i in range(top, top + h):
                        for j in range(left, left + w):
                            if mask[i, j] == 0:
                                mask[i, j] = 1
                                delta += 1
                if delta > 0:
                    break
        return delta

    def __call__(self):
        mask = np.zeros(shape=(self.height, self.width), dtype=int)
        mask_count = 0
        while mask_count < self.num_masking_patches:
            max_mask_patches = self.num_masking_patches - mask_count
            max_mask_patches = min(max_mask_patches, self.max_num_patches)
            delta = self._mask(mask, max_mask_patches)
            if delta == 0:
                break
            else:
                mask_count += delta
        return mask


@pytest.fixture(scope='module')
def block_masks():
    """2,000 image masks of the BEVT setting (14x14, N=98, m=16)."""
    random.seed(0)
    gen = BEVTBlockMaskGenerator(14, 98, 16)
    return np.stack([gen({})['input_mask'] for _ in range(DRAWS)])


@pytest.fixture(scope='module')
def tube_masks():
    """2,000 video masks of the BEVT setting: (input, target) stacks."""
    random.seed(1)
    gen = BEVTTubeMaskGenerator()
    outs = [gen(dict()) for _ in range(DRAWS)]
    return (np.stack([o['input_mask'] for o in outs]),
            np.stack([o['target_mask'] for o in outs]))


@pytest.mark.parametrize('kwargs', [
    dict(input_size=14, num_masking_patches=98, min_num_patches=16),
    dict(
        input_size=14,
        num_masking_patches=75,
        min_num_patches=16,
        max_num_patches=40),
    dict(
        input_size=(6, 10),
        num_masking_patches=30,
        min_num_patches=3,
        min_aspect=0.5,
        max_aspect=3.0),
])
def test_block_mask_matches_the_original_generator(kwargs):
    original = OriginalMaskingGenerator(**kwargs)
    random.seed(123)
    expected = [original() for _ in range(200)]
    random.seed(123)
    got = [generate_block_mask(**kwargs) for _ in range(200)]
    for e, g in zip(expected, got):
        assert g.dtype == bool
        np.testing.assert_array_equal(g, e.astype(bool))
    # and the draws are not all the same
    assert len({g.tobytes() for g in got}) > 100


def test_block_mask_count_distribution(block_masks):
    assert block_masks.shape == (DRAWS, 14, 14)
    assert block_masks.dtype == bool
    counts = block_masks.sum(axis=(1, 2))
    assert 96.5 < counts.mean() <= 98  # ~97.5: early exit, not exact N
    assert counts.max() <= 98
    assert 0.6 <= (counts == 98).mean() <= 0.8
    assert counts.min() < 98  # high 80s / low 90s
    assert counts.min() > 70
    # every cell can be masked, the last row and column included
    assert block_masks.any(axis=0).all()
    assert block_masks[:, 13].any() and block_masks[:, :, 13].any()


def test_mmpretrain_generator_differs(block_masks):
    """mmpretrain's port always masks exactly N and never row/col 13."""
    from mmpretrain.datasets.transforms.processing import BEiTMaskGenerator
    np.random.seed(0)
    gen = BEiTMaskGenerator(14, 98, min_num_patches=16)
    theirs = np.stack([gen({})['mask'] for _ in range(500)])
    assert (theirs.sum(axis=(1, 2)) == 98).all()
    assert not theirs[:, 13].any() and not theirs[:, :, 13].any()
    ours = block_masks.sum(axis=(1, 2))
    assert (ours < 98).any()
    assert block_masks[:, 13].sum() > 100 and block_masks[:, :, 13].sum() > 100


def test_block_transform_keys_and_polarity():
    random.seed(0)
    results = BEVTBlockMaskGenerator()(dict(imgs=[np.zeros((4, 4, 3))]))
    assert results['input_mask'] is results['target_mask']
    mask = results['input_mask']
    assert mask.shape == (14, 14) and mask.dtype == bool
    # True = masked: at most 98 of 196 cells are True
    assert 16 <= mask.sum() <= 98
    rect = BEVTBlockMaskGenerator(
        input_size=(6, 10), num_masking_patches=30, min_num_patches=4)({})
    assert rect['input_mask'].shape == (6, 10)
    assert 0 < rect['input_mask'].sum() <= 30
    assert 'BEVTBlockMaskGenerator(input_size=(14, 14)' in repr(
        BEVTBlockMaskGenerator())


def test_tube_mask_fraction_lengths_and_wrap(tube_masks):
    inputs, targets = tube_masks
    assert inputs.shape == (DRAWS, 8, 14, 14)
    assert targets.shape == (DRAWS, 16, 14, 14)
    assert inputs.dtype == bool and targets.dtype == bool
    assert 0.35 <= targets.mean() <= 0.38  # ~0.5 x 6/8
    slots = inputs.any(axis=(2, 3))  # (DRAWS, 8): masked slots
    assert set(slots.sum(axis=1).tolist()) == {4, 5, 6, 7, 8}
    wrapped = slots[:, 7] & slots[:, 0] & ~slots.all(axis=1)
    assert wrapped.any()
    starts = set()
    for draw, used in zip(inputs, slots):
        masked = draw[used]
        # every masked slot carries the same 2D mask, the others nothing
        assert (masked == masked[0]).all()
        assert 16 <= masked[0].sum() <= 98
        # the masked slots are one run modulo 8
        idx = np.flatnonzero(used)
        run_starts = [i for i in idx if not used[(i - 1) % 8]]
        assert len(run_starts) == (0 if used.all() else 1)
        starts.update(run_starts)
    assert starts == set(range(8))
    # target = input repeated x2 in time: frames 2k, 2k+1 <- slot k
    np.testing.assert_array_equal(targets[:, 0::2], inputs)
    np.testing.assert_array_equal(targets[:, 1::2], inputs)


def test_tube_clip_len_from_results_and_errors():
    gen = BEVTTubeMaskGenerator(
        input_size=4, num_masking_patches=8, min_num_patches=2, clip_len=None)
    out = gen(dict(clip_len=4))
    assert out['input_mask'].shape == (2, 4, 4)
    assert out['target_mask'].shape == (4, 4, 4)
    out = gen(dict(clip_len=12))
    assert out['input_mask'].shape == (6, 4, 4)
    assert out['target_mask'].shape == (12, 4, 4)
    with pytest.raises(KeyError, match='clip_len'):
        gen({})
    with pytest.raises(ValueError, match='clip_len'):
        gen(dict(clip_len=5))
    rect = BEVTTubeMaskGenerator((3, 5), 6, 2, clip_len=8, temporal_patch=4)
    out = rect({})
    assert out['input_mask'].shape == (2, 3, 5)
    assert out['target_mask'].shape == (8, 3, 5)
    np.testing.assert_array_equal(
        np.repeat(out['input_mask'], 4, axis=0), out['target_mask'])


@pytest.mark.parametrize('kwargs', [
    dict(input_size=0),
    dict(input_size=(14, 14, 2)),
    dict(num_masking_patches=197),
    dict(min_num_patches=0),
    dict(max_num_patches=0),
    dict(min_aspect=0),
])
def test_block_bad_args(kwargs):
    with pytest.raises(ValueError):
        BEVTBlockMaskGenerator(**kwargs)


@pytest.mark.parametrize('kwargs', [
    dict(clip_len=15),
    dict(temporal_patch=0),
    dict(tube_range=(0.8, 0.5)),
    dict(tube_range=(0.5, 1.5)),
])
def test_tube_bad_args(kwargs):
    with pytest.raises(ValueError):
        BEVTTubeMaskGenerator(**kwargs)


def test_masks_follow_mmengine_seed():
    block, tube = BEVTBlockMaskGenerator(), BEVTTubeMaskGenerator()

    def draw(seed):
        set_random_seed(seed)
        return [block({})['input_mask'] for _ in range(3)
                ] + [tube({})['input_mask'] for _ in range(3)]

    first, again, other = draw(0), draw(0), draw(1)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))


def test_registered_in_bevt_scope():
    with DefaultScope.overwrite_default_scope('bevt'):
        tube = TRANSFORMS.build(
            dict(
                type='BEVTTubeMaskGenerator',
                clip_len=4,
                input_size=4,
                num_masking_patches=8,
                min_num_patches=2))
        block = TRANSFORMS.build(dict(type='BEVTBlockMaskGenerator'))
    assert type(tube) is BEVTTubeMaskGenerator
    assert type(block) is BEVTBlockMaskGenerator
    assert tube({})['input_mask'].shape == (2, 4, 4)
