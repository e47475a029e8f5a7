# Copyright (c) bevt contributors. All rights reserved.
import cv2
import mmcv
import numpy as np
import pytest
import torch
from mmaction.structures import ActionDataSample
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import DefaultScope
from mmengine.runner import set_random_seed

import bevt.models  # noqa: F401  (registers the model parts)
from bevt.datasets.transforms import BEVTTubeMaskGenerator, PackBEVTInputs
from bevt.registry import MODELS


def frames(n, h=64, w=64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def clip_results(num_frames=4, grid=4, with_masks=True):
    imgs = frames(num_frames)
    results = dict(
        imgs=imgs,
        tokenizer_imgs=[f[::2, ::2].copy() for f in imgs],
        clip_len=num_frames,
        num_clips=1,
        frame_inds=np.arange(num_frames),
        img_shape=(64, 64),
        flip=np.False_,
        label=5,
        filename='a.mp4',
        modality='RGB')
    if with_masks:
        input_mask = np.zeros((num_frames // 2, grid, grid), dtype=bool)
        input_mask[0, :2] = True
        results['input_mask'] = input_mask
        results['target_mask'] = np.repeat(input_mask, 2, axis=0)
    return results


def test_pack_clip():
    results = clip_results()
    packed = PackBEVTInputs()(results)
    imgs = packed['inputs']['imgs']
    view = packed['inputs']['tokenizer_imgs']
    assert imgs.shape == (3, 4, 64, 64) and imgs.dtype == torch.uint8
    assert view.shape == (3, 4, 32, 32) and view.dtype == torch.uint8
    # channel c of frame t is results['imgs'][t][..., c]
    for t, frame in enumerate(results['imgs']):
        np.testing.assert_array_equal(imgs[:, t].permute(1, 2, 0).numpy(),
                                      frame)
        np.testing.assert_array_equal(view[:, t].permute(1, 2, 0).numpy(),
                                      results['tokenizer_imgs'][t])
    sample = packed['data_samples']
    assert isinstance(sample, ActionDataSample)
    assert sample.input_mask.dtype == torch.bool
    assert sample.input_mask.shape == (2, 4, 4)
    assert sample.target_mask.shape == (4, 4, 4)
    np.testing.assert_array_equal(sample.input_mask.numpy(),
                                  results['input_mask'])
    np.testing.assert_array_equal(sample.target_mask.numpy(),
                                  results['target_mask'])
    assert 'input_mask' in sample.keys() and 'target_mask' in sample.keys()
    assert sample.gt_label.tolist() == [5]
    assert sample.filename == 'a.mp4' and sample.clip_len == 4
    assert sample.img_shape == (64, 64) and sample.num_clips == 1
    assert 'modality' not in sample.metainfo_keys()
    # the tensors do not alias the transform's arrays
    results['imgs'][0][...] = 0
    results['input_mask'][...] = True
    assert imgs[:, 0].any() and not sample.input_mask.all()


def test_pack_image_and_missing_masks():
    img = frames(1, 48, 40)
    mask = np.eye(3, dtype=bool)
    packed = PackBEVTInputs()(
        dict(
            imgs=img,
            tokenizer_imgs=[img[0][:24, :20].copy()],
            input_mask=mask,
            target_mask=mask,
            clip_len=1,
            num_clips=1,
            img_path='x.png',
            gt_label=2))
    assert packed['inputs']['imgs'].shape == (3, 48, 40)
    assert packed['inputs']['tokenizer_imgs'].shape == (3, 24, 20)
    np.testing.assert_array_equal(
        packed['inputs']['imgs'].permute(1, 2, 0).numpy(), img[0])
    sample = packed['data_samples']
    assert sample.input_mask.shape == sample.target_mask.shape == (3, 3)
    assert sample.input_mask.dtype == torch.bool
    assert sample.gt_label.tolist() == [2] and sample.img_path == 'x.png'
    # no masks, no tokenizer view, no label: packed without them
    bare = PackBEVTInputs(meta_keys=())(dict(imgs=img))
    assert set(bare['inputs']) == {'imgs'}
    assert 'input_mask' not in bare['data_samples']
    assert 'gt_label' not in bare['data_samples']
    assert not bare['data_samples'].metainfo_keys()
    # one (H, W, 3) array under mmcv's ``img`` key, int 0/1 masks
    one = PackBEVTInputs()(dict(img=img[0], input_mask=mask.astype(int)))
    assert one['inputs']['imgs'].shape == (3, 48, 40)
    assert one['data_samples'].input_mask.dtype == torch.bool


def test_pack_formatted_arrays():
    imgs = np.stack(frames(4))  # (T, H, W, 3)
    ncthw = imgs.transpose(3, 0, 1, 2)[None]  # (1, 3, T, H, W)
    nchw = imgs.transpose(0, 3, 1, 2)  # (T, 3, H, W)
    expected = torch.from_numpy(imgs).permute(3, 0, 1, 2)
    for array in (ncthw, nchw, imgs):
        packed = PackBEVTInputs()(dict(imgs=array, clip_len=4))
        assert torch.equal(packed['inputs']['imgs'], expected)
    single = PackBEVTInputs()(dict(imgs=nchw[:1]))
    assert torch.equal(single['inputs']['imgs'], expected[:, 0])


@pytest.mark.parametrize('change, error, match', [
    (dict(target_mask=np.zeros((2, 4, 4), bool)), ValueError, 'target_mask'),
    (dict(input_mask=np.zeros((3, 4, 4), bool)), ValueError, 'input_mask'),
    (dict(input_mask=np.zeros((4, 4), bool)), ValueError, '3-D'),
    (dict(input_mask=np.zeros((2, 2, 2), bool)), ValueError, 'spatial'),
    (dict(input_mask=np.zeros((2, 4, 4), np.float32)), TypeError, 'bool'),
    (dict(tokenizer_imgs=frames(3, 32, 32)), ValueError, 'tokenizer_imgs'),
    (dict(clip_len=8), ValueError, 'clip_len'),
    (dict(num_clips=2), ValueError, 'num_clips'),
    (dict(imgs=[f.astype(np.float32) for f in frames(4)]), TypeError, 'uint8'),
    (dict(imgs=frames(3) + frames(1, 32, 32)), ValueError, 'one shape'),
    (dict(imgs=np.zeros((2, 5, 4, 4, 4), np.uint8)), ValueError,
     r'\(1, 3, T, H, W\)'),
    (dict(imgs='frames'), TypeError, 'imgs'),
])
def test_pack_errors(change, error, match):
    results = clip_results()
    results.update(change)
    with pytest.raises(error, match=match):
        PackBEVTInputs()(results)


def test_pack_image_mask_must_be_2d():
    with pytest.raises(ValueError, match='2-D'):
        PackBEVTInputs()(
            dict(imgs=frames(1), target_mask=np.zeros((1, 4, 4), bool)))
    with pytest.raises(KeyError, match='imgs'):
        PackBEVTInputs()(dict(label=1))


# ---------------------------------------------------------------------------
# end to end: real files -> pipeline -> collate -> preprocessor -> BEVT loss

VOCAB = 64


def tiny_bevt():
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='BEVT',
            backbone=dict(
                type='BEVTSwinTransformer3D',
                arch=dict(
                    embed_dims=16, depths=[1, 1, 2, 1], num_heads=[1, 2, 2,
                                                                   4]),
                window_size=(4, 4, 4),
                drop_path_rate=0.),
            head=dict(type='BEVTMIMHead', in_channels=128, num_classes=VOCAB),
            target_generator=dict(
                type='BEVTDALLETokenizer',
                encoder=dict(n_hid=16, n_blk_per_group=1, vocab_size=VOCAB)),
            data_preprocessor=dict(
                type='BEVTDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375])))
    model.init_weights()
    return model


def write_video(path, num_frames=24, size=64):
    """A real mp4 (mp4v) of a square moving over a gradient."""
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*'mp4v'), 12, (size, size))
    assert writer.isOpened()
    base = np.tile(
        np.linspace(0, 255, size, dtype=np.uint8)[None, :, None], (size, 1, 3))
    for t in range(num_frames):
        frame = base.copy()
        frame[20:36, 2 * t:2 * t + 16] = (0, 0, 255)
        writer.write(frame)
    writer.release()
    return str(path)


VIDEO_PIPELINE = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=4, frame_interval=2, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='RandomRescale', scale_range=(64, 72), interpolation='bicubic'),
    dict(type='RandomCrop', size=64),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='BEVTTokenizerView', size=32),
    dict(
        type='BEVTTubeMaskGenerator',
        input_size=4,
        num_masking_patches=8,
        min_num_patches=2,
        clip_len=4),
    dict(type='PackBEVTInputs')
]
IMAGE_PIPELINE = [
    dict(type='BEVTLoadImage'),
    dict(type='RandomRescale', scale_range=(64, 80), interpolation='bicubic'),
    dict(
        type='ColorJitter',
        brightness=0.4,
        contrast=0.4,
        saturation=0.4,
        hue=0),
    dict(type='RandomCrop', size=64),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='BEVTTokenizerView', size=32),
    dict(
        type='BEVTBlockMaskGenerator',
        input_size=4,
        num_masking_patches=8,
        min_num_patches=2),
    dict(type='PackBEVTInputs')
]


def test_pipelines_to_bevt_loss(tmp_path):
    video = write_video(tmp_path / 'clip.mp4')
    image = str(tmp_path / 'img.png')
    cv2.imwrite(image, frames(1, 70, 90, seed=3)[0])
    with DefaultScope.overwrite_default_scope('bevt'):
        video_pipeline = Compose(VIDEO_PIPELINE)
        image_pipeline = Compose(IMAGE_PIPELINE)
        model = tiny_bevt().train()
    assert isinstance(video_pipeline.transforms[7], BEVTTubeMaskGenerator)

    set_random_seed(0)
    videos = [
        video_pipeline(
            dict(filename=video, label=0, start_index=0, modality='RGB'))
        for _ in range(2)
    ]
    images = [image_pipeline(dict(img_path=image)) for _ in range(3)]
    sample = videos[0]
    assert sample['inputs']['imgs'].shape == (3, 4, 64, 64)
    assert sample['inputs']['tokenizer_imgs'].shape == (3, 4, 32, 32)
    assert sample['data_samples'].input_mask.shape == (2, 4, 4)
    assert sample['data_samples'].target_mask.shape == (4, 4, 4)
    assert sample['data_samples'].frame_inds.shape == (4, )
    assert images[0]['inputs']['imgs'].shape == (3, 64, 64)
    assert images[0]['data_samples'].input_mask.shape == (4, 4)
    # real, moving frames, sampled every 2nd frame; the view follows them
    imgs = sample['inputs']['imgs']
    assert np.diff(sample['data_samples'].frame_inds).tolist() == [2, 2, 2]
    assert imgs[0].float().mean() > 10
    assert not torch.equal(imgs[:, 0], imgs[:, 3])
    for t in range(4):
        np.testing.assert_array_equal(
            sample['inputs']['tokenizer_imgs'][:, t].permute(1, 2, 0).numpy(),
            mmcv.imresize(
                imgs[:, t].permute(1, 2, 0).numpy(), (32, 32),
                interpolation='lanczos'))

    batches = (pseudo_collate(videos), pseudo_collate(images))
    data = model.data_preprocessor(batches, True)
    video_in, image_in = data[0]['inputs'], data[1]['inputs']
    assert video_in['imgs'].shape == (2, 3, 4, 64, 64)
    assert video_in['imgs'].dtype == torch.float32
    assert video_in['input_mask'].shape == (2, 2, 4, 4)
    assert video_in['target_mask'].dtype == torch.bool
    assert image_in['tokenizer_imgs'].shape == (3, 3, 32, 32)
    assert image_in['target_mask'].shape == (3, 4, 4)

    losses = model(*data, mode='loss')
    assert set(losses) == {'loss_video', 'acc_video', 'loss_img', 'acc_img'}
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    assert model.head.fc.weight.grad is not None
