# Copyright (c) bevt contributors. All rights reserved.
"""configs/bevt/pretrain.py is the official stage-2 recipe (reference §7, §8,
§2.1, §5): every hyper-parameter is read from the config and compared."""
import math

import pytest
import torch
from mmengine.config import Config
from mmengine.optim.scheduler import CosineAnnealingLR, LinearLR

from bevt.testing import config_path


@pytest.fixture(scope='module')
def cfg():
    return Config.fromfile(config_path('bevt/pretrain.py'))


def by_type(pipeline, name):
    steps = [step for step in pipeline if step['type'] == name]
    assert len(steps) == 1, name
    return steps[0]


def test_model(cfg):
    backbone = cfg.model.backbone
    assert cfg.model.type == 'BEVT'
    assert backbone.arch == 'base' and backbone.patch_size == (2, 4, 4)
    assert backbone.window_size == (8, 7, 7)
    assert backbone.drop_path_rate == 0.3
    assert backbone.official_image_path is True
    assert backbone.pretrained2d is True and backbone.pretrained
    assert cfg.model.head.num_classes == 8192
    assert cfg.model.head.in_channels == 1024
    assert cfg.model.head.loss_weights == dict(video=1.0, img=1.0)
    tokenizer = cfg.model.target_generator
    assert tokenizer.type == 'BEVTDALLETokenizer'
    # float16 on CUDA (the official DALL-E's), channels-last, compiled
    assert tokenizer.dtype == 'auto' and tokenizer.channels_last is True
    assert tokenizer.compile is True
    pre = cfg.model.data_preprocessor
    assert pre.mean == [123.675, 116.28, 103.53]
    assert pre.std == [58.395, 57.12, 57.375]
    # DALL-E map-pixels: x / 255 * 0.8 + 0.1
    for x in (0., 255.):
        assert (x - pre.second_mean[0]) / pre.second_std[0] == \
            pytest.approx(x / 255 * 0.8 + 0.1)


def test_batches_loop_and_data(cfg):
    video = cfg.train_dataloader
    assert cfg.train_cfg.other_loaders == ['img_dataloader']
    image = cfg.img_dataloader
    assert cfg.train_cfg.type == 'BEVTMultiSourceEpochLoop'
    assert cfg.train_cfg.max_epochs == 150
    assert video.batch_size == 4 and image.batch_size == 32
    assert image.dataset.dataset.type == 'RepeatDataset'
    assert image.dataset.dataset.times == 5
    vp = video.dataset.dataset.pipeline
    ip = image.dataset.dataset.dataset.pipeline
    sample = by_type(vp, 'SampleFrames')
    assert (sample.clip_len, sample.frame_interval, sample.num_clips) == \
        (16, 8, 1)
    for pipeline in (vp, ip):
        rescale = by_type(pipeline, 'RandomRescale')
        assert rescale.scale_range == (256, 320)
        assert rescale.interpolation == 'bicubic'
        assert by_type(pipeline, 'RandomCrop').size == 224
        assert by_type(pipeline, 'Flip').flip_ratio == 0.5
        view = by_type(pipeline, 'BEVTTokenizerView')
        assert view.size == 112 and view.interpolation == 'lanczos'
    assert not [s for s in vp if s['type'] == 'ColorJitter']
    jitter = by_type(ip, 'ColorJitter')
    assert (jitter.brightness, jitter.contrast, jitter.saturation,
            jitter.hue) == (0.4, 0.4, 0.4, 0)
    tube = by_type(vp, 'BEVTTubeMaskGenerator')
    block = by_type(ip, 'BEVTBlockMaskGenerator')
    for mask in (tube, block):
        assert (mask.input_size, mask.num_masking_patches,
                mask.min_num_patches) == (14, 98, 16)
    assert tube.tube_range == (0.5, 1.0)
    assert (tube.clip_len, tube.temporal_patch) == (16, 2)


def test_optimisation(cfg):
    ow = cfg.optim_wrapper
    assert ow.type == 'AmpOptimWrapper' and ow.loss_scale == 'dynamic'
    # mmengine's per-parameter settings, one param group per distinct one
    assert ow.constructor == 'BEVTOptimWrapperConstructor'
    assert ow.accumulative_counts == 2
    assert ow.optimizer.type == 'AdamW'
    assert ow.optimizer.lr == 5e-4 and ow.optimizer.weight_decay == 0.05
    assert ow.optimizer.betas == (0.9, 0.999)
    assert ow.optimizer.fused  # one kernel per group and step
    assert ow.paramwise_cfg.custom_keys == dict(
        absolute_pos_embed=dict(decay_mult=0.),
        relative_position_bias_table=dict(decay_mult=0.),
        norm=dict(decay_mult=0.))
    assert ow.clip_grad.max_norm == 3.0
    # 32 GPUs x 4 clips of the primary loader per iteration
    assert cfg.auto_scale_lr.base_batch_size == 128
    assert cfg.default_hooks.checkpoint.interval == 10


def test_lr_schedule_equals_the_official_formula(cfg):
    """lr(t) = 5e-4 * (1 + cos(pi t / T)) / 2 * min(1, 0.1 + 0.9 t / W).

    mmengine's LinearLR reaches its end factor at iteration W - 1 (mmcv's
    warmup at W): the product is exact with W - 1, and within 1 / W of the
    official value during the warmup.
    """
    per_epoch = 4  # iterations per epoch; the formula holds for any
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=cfg.optim_wrapper.optimizer.lr)
    kinds = dict(LinearLR=LinearLR, CosineAnnealingLR=CosineAnnealingLR)
    schedulers = []
    for sched in cfg.param_scheduler:
        sched = dict(sched)
        kind = kinds[sched.pop('type')]
        assert sched.pop('by_epoch') and sched.pop('convert_to_iter_based')
        schedulers.append(
            kind.build_iter_from_epoch(
                optimizer, epoch_length=per_epoch, **sched))
    total, warmup = 150 * per_epoch, 10 * per_epoch
    for t in range(total):
        cosine = 5e-4 * 0.5 * (1 + math.cos(math.pi * t / total))
        lr = optimizer.param_groups[0]['lr']
        assert lr == pytest.approx(
            cosine * min(1., 0.1 + 0.9 * t / (warmup - 1)),
            rel=1e-6,
            abs=1e-12), t
        assert lr == pytest.approx(
            cosine * min(1., 0.1 + 0.9 * t / warmup),
            rel=1 / warmup,
            abs=1e-12), t
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
