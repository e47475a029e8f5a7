# Copyright (c) bevt contributors. All rights reserved.
import os.path as osp

import cv2
import mmcv
import numpy as np
import pytest
import torch
from mmaction.structures import ActionDataSample
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope
from mmengine.runner import set_random_seed

from bevt.datasets.transforms import (BEVTBlockMaskGenerator, BEVTLoadImage,
                                      BEVTTokenizerView, PackBEVTInputs)
from bevt.registry import DATASETS


def write_image(path, h=60, w=80):
    """An image whose left half is pure red (RGB) and right half blue."""
    bgr = np.zeros((h, w, 3), dtype=np.uint8)
    bgr[:, :w // 2, 2] = 255
    bgr[:, w // 2:, 0] = 255
    assert cv2.imwrite(str(path), bgr)
    return str(path)


def image_pipeline(crop=64, view=32, grid=4):
    """The official image-stream pipeline (§8), scaled down."""
    return [
        dict(type='BEVTLoadImage'),
        dict(
            type='RandomRescale',
            scale_range=(crop, crop + 8),
            interpolation='bicubic'),
        dict(
            type='ColorJitter',
            brightness=0.4,
            contrast=0.4,
            saturation=0.4,
            hue=0),
        dict(type='RandomCrop', size=crop),
        dict(type='Flip', flip_ratio=0.5),
        dict(type='BEVTTokenizerView', size=view, interpolation='lanczos'),
        dict(
            type='BEVTBlockMaskGenerator',
            input_size=grid,
            num_masking_patches=8,
            min_num_patches=2),
        dict(type='PackBEVTInputs')
    ]


@pytest.mark.parametrize('key', ['img_path', 'filename'])
@pytest.mark.parametrize('ext', ['.png', '.jpg'])
def test_load_image_as_rgb_clip(tmp_path, key, ext):
    path = write_image(tmp_path / f'img{ext}')
    results = BEVTLoadImage()({key: path})
    imgs = results['imgs']
    assert isinstance(imgs, list) and len(imgs) == 1
    img = imgs[0]
    assert img.shape == (60, 80, 3) and img.dtype == np.uint8
    # RGB order: red left, blue right
    assert img[30, 10, 0] > 200 and img[30, 10, 2] < 50
    assert img[30, 70, 2] > 200 and img[30, 70, 0] < 50
    assert results['img_shape'] == (60, 80)
    assert results['original_shape'] == (60, 80)
    assert results['modality'] == 'RGB'
    assert results['num_clips'] == 1 and results['clip_len'] == 1


def test_load_image_gray_and_mmcv_convention(tmp_path):
    path = str(tmp_path / 'gray.png')
    cv2.imwrite(path, np.full((20, 30), 77, dtype=np.uint8))
    img = BEVTLoadImage()(dict(img_path=path))['imgs'][0]
    assert img.shape == (20, 30, 3) and (img == 77).all()
    results = BEVTLoadImage(to_clip=False)(dict(img_path=path))
    assert 'imgs' not in results
    assert results['img'].shape == (20, 30, 3)
    assert results['img_shape'] == results['ori_shape'] == (20, 30)


def test_load_image_errors_name_the_file(tmp_path):
    load = BEVTLoadImage()
    missing = str(tmp_path / 'missing.jpg')
    with pytest.raises(OSError, match='missing.jpg'):
        load(dict(img_path=missing))
    empty = tmp_path / 'empty.jpg'
    empty.write_bytes(b'')
    with pytest.raises(ValueError, match='empty.jpg'):
        load(dict(filename=str(empty)))
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'\x89PNG not really an image')
    with pytest.raises(ValueError, match='broken.png'):
        load(dict(img_path=str(broken)))
    with pytest.raises(KeyError, match='img_path'):
        load(dict())


def test_image_pipeline_end_to_end(tmp_path):
    path = write_image(tmp_path / 'img.jpg', 48, 96)
    with DefaultScope.overwrite_default_scope('bevt'):
        pipeline = Compose(image_pipeline())
    assert isinstance(pipeline.transforms[0], BEVTLoadImage)
    assert isinstance(pipeline.transforms[5], BEVTTokenizerView)
    assert isinstance(pipeline.transforms[6], BEVTBlockMaskGenerator)
    assert isinstance(pipeline.transforms[7], PackBEVTInputs)
    set_random_seed(0)
    flips = set()
    for _ in range(8):
        packed = pipeline(dict(img_path=path, label=3))
        imgs = packed['inputs']['imgs']
        view = packed['inputs']['tokenizer_imgs']
        assert imgs.shape == (3, 64, 64) and imgs.dtype == torch.uint8
        assert view.shape == (3, 32, 32) and view.dtype == torch.uint8
        sample = packed['data_samples']
        assert isinstance(sample, ActionDataSample)
        assert sample.input_mask.shape == (4, 4)
        assert sample.input_mask.dtype == torch.bool
        assert torch.equal(sample.input_mask, sample.target_mask)
        assert 0 < sample.input_mask.sum() <= 8
        assert sample.gt_label.tolist() == [3]
        assert sample.img_shape == (64, 64)
        assert sample.clip_len == 1 and sample.img_path == path
        flips.add(bool(sample.flip))
        # the tokenizer view is the final (jittered, cropped, flipped)
        # model view, resized
        expected = mmcv.imresize(
            imgs.permute(1, 2, 0).numpy(), (32, 32), interpolation='lanczos')
        np.testing.assert_array_equal(view.permute(1, 2, 0).numpy(), expected)
    assert flips == {True, False}


def test_image_datasets_set_the_path(tmp_path):
    root = str(tmp_path)
    write_image(osp.join(root, 'a.png'), 70, 70)
    with open(osp.join(root, 'list.txt'), 'w') as f:
        f.write('a.png 1\n')
    with DefaultScope.overwrite_default_scope('bevt'):
        for cfg in (dict(type='VideoDataset', data_prefix=dict(video=root)),
                    dict(type='mmpretrain.CustomDataset', data_root=root)):
            dataset = DATASETS.build(
                dict(
                    ann_file=osp.join(root, 'list.txt'),
                    pipeline=image_pipeline(),
                    **cfg))
            packed = dataset[0]
            assert packed['inputs']['imgs'].shape == (3, 64, 64)
            assert packed['data_samples'].gt_label.tolist() == [1]
