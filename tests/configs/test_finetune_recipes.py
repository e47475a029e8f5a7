# Copyright (c) bevt contributors. All rights reserved.
"""The fine-tune configs in configs/bevt/benchmarks/ are the official
recipes (reference §11): every hyper-parameter is read from the config and
compared, so that a drifting value fails a test."""
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.optim.scheduler import CosineAnnealingLR, LinearLR
from mmengine.registry import DefaultScope

import bevt.datasets.transforms.clip_randaugment  # noqa: F401
import bevt.engine.optimizers  # noqa: F401
from bevt.registry import MODELS, TRANSFORMS
from bevt.testing import config_path

K400 = 'swin-base-p244-w877_bevt-pre_8xb8-amp-32x2x1-60e_kinetics400-rgb.py'
SSV2 = 'swin-base-p244-w1677_bevt-pre_8xb8-amp-u32-60e_sthv2-rgb.py'
DIVING48 = 'swin-base-p244-w1677_bevt-pre_8xb8-amp-u32-60e_diving48-rgb.py'
K400_CORRECTED = ('swin-base-p244-w877_bevt-pre_8xb8-amp-corrected-groups-'
                  '32x2x1-60e_kinetics400-rgb.py')
SSV2_CORRECTED = ('swin-base-p244-w1677_bevt-pre_8xb8-amp-corrected-groups-'
                  'u32-60e_sthv2-rgb.py')
GPUS = 8  # the official runs
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def load(name: str) -> Config:
    return Config.fromfile(config_path(osp.join('bevt', 'benchmarks', name)))


@pytest.fixture(scope='module')
def k400():
    return load(K400)


@pytest.fixture(scope='module')
def ssv2():
    return load(SSV2)


def steps(pipeline):
    return [step['type'] for step in pipeline]


def by_type(pipeline, name):
    found = [step for step in pipeline if step['type'] == name]
    assert len(found) == 1, name
    return found[0]


def check_common_model(cfg, window, drop_path, num_classes):
    model = cfg.model
    assert model.type == 'Recognizer3D'
    backbone = model.backbone
    assert backbone.type == 'SwinTransformer3D' and backbone.arch == 'base'
    assert backbone.pretrained is None and backbone.pretrained2d is False
    assert backbone.patch_size == (2, 4, 4)
    assert backbone.window_size == window
    assert backbone.drop_path_rate == drop_path
    assert backbone.qkv_bias is True and backbone.patch_norm is True
    assert backbone.drop_rate == 0. and backbone.attn_drop_rate == 0.
    init = backbone.init_cfg
    assert init.type == 'Pretrained' and init.prefix == 'backbone.'
    assert init.checkpoint.startswith('checkpoints/bevt_')
    assert init.checkpoint.endswith('_mmaction.pth')
    head = model.cls_head
    assert head.type == 'I3DHead' and head.in_channels == 1024
    assert head.num_classes == num_classes
    assert head.spatial_type == 'avg' and head.dropout_ratio == 0.5
    assert head.init_std == 0.01 and head.average_clips == 'prob'
    pre = model.data_preprocessor
    assert pre.type == 'ActionDataPreprocessor'
    assert pre.format_shape == 'NCTHW'
    assert pre.mean == MEAN and pre.std == STD
    # mmaction2's max_testing_views asserts one sample per batch
    assert model.test_cfg.max_testing_views
    assert cfg.val_dataloader.batch_size == 1
    assert cfg.test_dataloader.batch_size == 1


def check_common_schedule(cfg):
    assert cfg.default_scope == 'bevt'
    assert cfg.train_cfg.type == 'BEVTEpochBasedTrainLoop'
    assert cfg.train_cfg.max_epochs == 60
    assert cfg.train_cfg.val_interval == 5
    assert cfg.default_hooks.checkpoint.interval == 5
    warmup, cosine = cfg.param_scheduler
    assert warmup == dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=2.5,
        convert_to_iter_based=True)
    # the cosine is stepped per epoch (mmcv's by_epoch=True)
    assert cosine == dict(
        type='CosineAnnealingLR',
        T_max=60,
        eta_min=0,
        by_epoch=True,
        begin=0,
        end=60)
    ow = cfg.optim_wrapper
    assert ow.type == 'AmpOptimWrapper' and ow.loss_scale == 'dynamic'
    assert ow.optimizer.type == 'AdamW'
    assert ow.optimizer.betas == (0.9, 0.999)
    # mmengine's custom_keys rules (longest key wins), groups merged
    assert ow.constructor == 'BEVTOptimWrapperConstructor'
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        assert evaluator.type == 'AccMetric'
        assert evaluator.metric_list == ('top_k_accuracy',
                                         'mean_class_accuracy')
        assert evaluator.metric_options.top_k_accuracy.topk == (1, 5)
    # effective batch 64 = 8 GPUs x loader batch x accumulation
    assert GPUS * cfg.train_dataloader.batch_size * \
        ow.accumulative_counts == 64
    assert cfg.auto_scale_lr == dict(
        enable=False, base_batch_size=GPUS * cfg.train_dataloader.batch_size)


def test_k400_model(k400):
    check_common_model(k400, (8, 7, 7), 0.3, 400)
    assert k400.model.cls_head.get('label_smooth_eps', 0.) == 0.
    assert k400.model.test_cfg.max_testing_views == 4


def test_k400_pipelines(k400):
    train = k400.train_dataloader.dataset.pipeline
    assert steps(train) == [
        'DecordInit', 'SampleFrames', 'DecordDecode', 'Resize',
        'RandomResizedCrop', 'Resize', 'Flip', 'FormatShape',
        'PackActionInputs'
    ]
    sample = by_type(train, 'SampleFrames')
    assert (sample.clip_len, sample.frame_interval, sample.num_clips) == \
        (32, 2, 1)
    assert [s.scale for s in train if s.type == 'Resize'] == \
        [(-1, 256), (224, 224)]
    assert train[5].keep_ratio is False
    with DefaultScope.overwrite_default_scope('bevt'):
        crop = TRANSFORMS.build(by_type(train, 'RandomResizedCrop'))
    assert crop.area_range == (0.08, 1.0)
    assert crop.aspect_ratio_range == (3 / 4, 4 / 3)
    assert by_type(train, 'Flip').flip_ratio == 0.5
    # val: 1 clip, centre crop
    val = k400.val_dataloader.dataset.pipeline
    sample = by_type(val, 'SampleFrames')
    assert (sample.clip_len, sample.frame_interval, sample.num_clips,
            sample.test_mode) == (32, 2, 1, True)
    assert by_type(val, 'Resize').scale == (-1, 256)
    assert by_type(val, 'CenterCrop').crop_size == 224
    # test: 4 clips x 3 crops
    test = k400.test_dataloader.dataset.pipeline
    sample = by_type(test, 'SampleFrames')
    assert (sample.clip_len, sample.frame_interval, sample.num_clips,
            sample.test_mode) == (32, 2, 4, True)
    assert by_type(test, 'Resize').scale == (-1, 224)
    assert by_type(test, 'ThreeCrop').crop_size == 224


def test_k400_optimisation(k400):
    check_common_schedule(k400)
    ow = k400.optim_wrapper
    assert ow.optimizer.lr == 3e-4
    assert ow.optimizer.weight_decay == 0.001  # sic, the official value
    assert len(ow.paramwise_cfg.custom_keys) == 32  # 28 depths + 4
    assert ow.clip_grad == dict(max_norm=40, norm_type=2)
    assert (k400.train_dataloader.batch_size, ow.accumulative_counts) == \
        (2, 4)
    assert not k400.get('custom_hooks')  # no EMA
    assert k400.auto_scale_lr.base_batch_size == 16


def swin_b_param_groups(cfg) -> dict:
    """Parameter name -> (lr, weight decay) of the config's optimizer on a
    Swin-B-shaped model (depths 2-2-18-2, tiny widths)."""
    model_cfg = cfg.model.copy()
    model_cfg.backbone.arch = dict(
        embed_dims=8, depths=[2, 2, 18, 2], num_heads=[1] * 4)
    model_cfg.backbone.window_size = (2, 2, 2)
    model_cfg.backbone.init_cfg = None
    model_cfg.cls_head.in_channels = 64
    with DefaultScope.overwrite_default_scope('bevt'):
        model = MODELS.build(model_cfg)
        ow_cfg = cfg.optim_wrapper.copy()
        ow_cfg.type = 'OptimWrapper'  # AMP needs a GPU
        ow_cfg.pop('loss_scale')
        optim_wrapper = build_optim_wrapper(model, ow_cfg)
    groups = {
        id(p): (g['lr'], g['weight_decay'])
        for g in optim_wrapper.optimizer.param_groups
        for p in g['params']
    }
    return {name: groups[id(p)] for name, p in model.named_parameters()}


BLOCK0 = 'backbone.layers.0.blocks.0.'
# (lr, weight decay) of the official runs, by hand from the official configs
# (cfg-k400: AdamW 3e-4, wd 0.001, custom_keys with lr_mult 0.9^k per unit;
# cfg-ssv2: AdamW 5e-4, wd 0.05, custom_keys `backbone` lr_mult 0.1) and the
# longest-key rule: `relative_position_bias_table` (28 characters) beats
# `backbone.layers.0.blocks.0` (26) and `backbone` (8); a block,
# `backbone.patch_embed` or `backbone` key beats `norm` (4).
OFFICIAL_GROUPS = {
    K400: {
        BLOCK0 + 'attn.relative_position_bias_table': (3e-4, 0.),
        BLOCK0 + 'norm1.weight': (3e-4 * 0.9**27, 0.001),
        BLOCK0 + 'norm1.bias': (3e-4 * 0.9**27, 0.001),
        BLOCK0 + 'attn.qkv.bias': (3e-4 * 0.9**27, 0.001),
        BLOCK0 + 'attn.qkv.weight': (3e-4 * 0.9**27, 0.001),
        'backbone.patch_embed.proj.weight': (3e-4 * 0.9**28, 0.001),
        'backbone.patch_embed.norm.weight': (3e-4 * 0.9**28, 0.001),
        'backbone.layers.2.downsample.norm.weight': (3e-4 * 0.9**3, 0.001),
        'backbone.norm3.weight': (3e-4 * 0.9, 0.),
        'cls_head.fc_cls.weight': (3e-4, 0.001),
        'cls_head.fc_cls.bias': (3e-4, 0.001),
    },
    SSV2: {
        BLOCK0 + 'attn.relative_position_bias_table': (5e-4, 0.),
        BLOCK0 + 'norm1.weight': (5e-5, 0.05),
        BLOCK0 + 'norm1.bias': (5e-5, 0.05),
        BLOCK0 + 'attn.qkv.bias': (5e-5, 0.05),
        BLOCK0 + 'attn.qkv.weight': (5e-5, 0.05),
        'backbone.patch_embed.proj.weight': (5e-5, 0.05),
        'backbone.patch_embed.norm.weight': (5e-5, 0.05),
        'backbone.layers.2.downsample.norm.weight': (5e-5, 0.05),
        'backbone.norm3.weight': (5e-5, 0.05),
        'cls_head.fc_cls.weight': (5e-4, 0.05),
        'cls_head.fc_cls.bias': (5e-4, 0.05),
    },
}
# the corrected variants (not the paper's recipe): tables with their block,
# no weight decay on norms, biases and tables
CORRECTED_GROUPS = {
    K400_CORRECTED: {
        BLOCK0 + 'attn.relative_position_bias_table': (3e-4 * 0.9**27, 0.),
        BLOCK0 + 'norm1.weight': (3e-4 * 0.9**27, 0.),
        BLOCK0 + 'attn.qkv.bias': (3e-4 * 0.9**27, 0.),
        BLOCK0 + 'attn.qkv.weight': (3e-4 * 0.9**27, 0.001),
        'backbone.patch_embed.proj.weight': (3e-4 * 0.9**28, 0.001),
        'backbone.patch_embed.norm.weight': (3e-4 * 0.9**28, 0.),
        'backbone.norm3.weight': (3e-4 * 0.9, 0.),
        'cls_head.fc_cls.weight': (3e-4, 0.001),
        'cls_head.fc_cls.bias': (3e-4, 0.),
    },
    SSV2_CORRECTED: {
        BLOCK0 + 'attn.relative_position_bias_table': (5e-5, 0.),
        BLOCK0 + 'norm1.weight': (5e-5, 0.),
        BLOCK0 + 'attn.qkv.bias': (5e-5, 0.),
        BLOCK0 + 'attn.qkv.weight': (5e-5, 0.05),
        'backbone.patch_embed.proj.weight': (5e-5, 0.05),
        'backbone.norm3.weight': (5e-5, 0.),
        'cls_head.fc_cls.weight': (5e-4, 0.05),
        'cls_head.fc_cls.bias': (5e-4, 0.),
    },
}


@pytest.mark.parametrize('name', [K400, SSV2])
def test_official_param_groups(name):
    """The paper's fine-tunes get the official configs' param groups."""
    groups = swin_b_param_groups(load(name))
    for param, expected in OFFICIAL_GROUPS[name].items():
        assert groups[param] == pytest.approx(expected, rel=1e-6), param


@pytest.mark.parametrize('name', [K400_CORRECTED, SSV2_CORRECTED])
def test_corrected_param_groups_are_a_named_variant(name):
    groups = swin_b_param_groups(load(name))
    for param, expected in CORRECTED_GROUPS[name].items():
        assert groups[param] == pytest.approx(expected, rel=1e-6), param
    with open(config_path(osp.join('bevt', 'benchmarks', name))) as f:
        assert f.readline().startswith("# NOT the paper's recipe")
    # the official recipe in every other setting
    variant = load(name)
    official = load(K400 if name == K400_CORRECTED else SSV2)
    for key in set(variant) | set(official):
        if key != 'optim_wrapper':
            assert variant.get(key) == official.get(key), key
    for key in ('type', 'optimizer', 'accumulative_counts', 'clip_grad'):
        assert variant.optim_wrapper.get(key) == \
            official.optim_wrapper.get(key), key


@pytest.mark.parametrize('name', [K400, SSV2])
def test_lr_schedule_is_per_iteration_warmup_times_per_epoch_cosine(name):
    """lr = base * (1 + cos(pi e / 60)) / 2 * min(1, 0.1 + 0.9 t / (W - 1))
    for iteration t of epoch e, W = 2.5 epochs of iterations."""
    cfg = load(name)
    per_epoch = 4
    base = cfg.optim_wrapper.optimizer.lr
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=base)
    warmup_cfg, cosine_cfg = [dict(s) for s in cfg.param_scheduler]
    for sched in (warmup_cfg, cosine_cfg):
        sched.pop('type')
    warmup_cfg.pop('convert_to_iter_based')
    warmup = LinearLR.build_iter_from_epoch(
        optimizer, epoch_length=per_epoch, **warmup_cfg)
    cosine = CosineAnnealingLR(optimizer, **cosine_cfg)
    warmup_iters = int(2.5 * per_epoch)
    for epoch in range(60):
        for i in range(per_epoch):
            t = epoch * per_epoch + i
            expected = base * 0.5 * (1 + math.cos(math.pi * epoch / 60)) * \
                min(1., 0.1 + 0.9 * t / (warmup_iters - 1))
            assert optimizer.param_groups[0]['lr'] == pytest.approx(
                expected, rel=1e-6, abs=1e-12), (epoch, i)
            optimizer.step()
            warmup.step()
        cosine.step()


def test_ssv2_model(ssv2):
    check_common_model(ssv2, (16, 7, 7), 0.4, 174)
    assert ssv2.model.cls_head.label_smooth_eps == 0.1
    assert ssv2.model.test_cfg.max_testing_views == 2
    # tables interpolated to 16x7x7 by the converter
    assert 'w1677' in ssv2.model.backbone.init_cfg.checkpoint


def test_ssv2_pipelines(ssv2):
    train = ssv2.train_dataloader.dataset.pipeline
    assert steps(train) == [
        'DecordInit', 'UniformSample', 'DecordDecode', 'Resize',
        'RandomResizedCrop', 'Resize', 'BEVTClipRandAugment', 'RandomErasing',
        'FormatShape', 'PackActionInputs'
    ]
    assert by_type(train, 'UniformSample') == dict(
        type='UniformSample', clip_len=32)
    assert [s.scale for s in train if s.type == 'Resize'] == \
        [(-1, 256), (224, 224)]
    assert train[5].keep_ratio is False
    assert by_type(train,
                   'RandomResizedCrop') == dict(type='RandomResizedCrop')
    randaug = by_type(train, 'BEVTClipRandAugment')
    assert (randaug.num_ops, randaug.magnitude) == (4, 7)
    # imgaug's RandAugment starts with Fliplr(0.5) and a small crop
    assert randaug.hflip_prob == 0.5 and randaug.crop is True
    erasing = by_type(train, 'RandomErasing')
    assert erasing.erase_prob == 0.25 and erasing.mode == 'const'
    assert erasing.fill_color == tuple(MEAN)  # zeros after normalisation
    with DefaultScope.overwrite_default_scope('bevt'):
        erasing = TRANSFORMS.build(erasing)
    assert erasing.min_area_ratio == 0.02
    assert erasing.max_area_ratio == pytest.approx(1 / 3)
    assert erasing.aspect_range == pytest.approx((0.3, 1 / 0.3))
    val = ssv2.val_dataloader.dataset.pipeline
    assert by_type(val, 'UniformSample') == dict(
        type='UniformSample', clip_len=32, test_mode=True)
    assert by_type(val, 'Resize').scale == (-1, 256)
    assert by_type(val, 'CenterCrop').crop_size == 224
    # test: 1 clip x 3 crops
    test = ssv2.test_dataloader.dataset.pipeline
    assert by_type(test, 'UniformSample') == dict(
        type='UniformSample', clip_len=32, num_clips=1, test_mode=True)
    assert by_type(test, 'Resize').scale == (-1, 224)
    assert by_type(test, 'ThreeCrop').crop_size == 224


def test_ssv2_optimisation(ssv2):
    check_common_schedule(ssv2)
    ow = ssv2.optim_wrapper
    assert ow.optimizer.lr == 5e-4 and ow.optimizer.weight_decay == 0.05
    assert ow.paramwise_cfg.custom_keys == {
        'absolute_pos_embed': dict(decay_mult=0.),
        'relative_position_bias_table': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.),
        'backbone': dict(lr_mult=0.1),
    }
    assert ow.get('clip_grad') is None
    assert (ssv2.train_dataloader.batch_size, ow.accumulative_counts) == \
        (1, 8)
    assert ssv2.custom_hooks == [dict(type='EMAHook', momentum=0.0002)]
    assert ssv2.auto_scale_lr.base_batch_size == 8


def test_diving48_is_the_proposed_ssv2_recipe(ssv2):
    diving = load(DIVING48)
    with open(config_path(osp.join('bevt', 'benchmarks', DIVING48))) as f:
        assert f.readline().startswith('# PROPOSED recipe, not from the')
    assert diving.model.cls_head.num_classes == 48
    for key in ('optim_wrapper', 'param_scheduler', 'custom_hooks',
                'train_cfg', 'auto_scale_lr'):
        assert diving[key] == ssv2[key], key
    assert diving.model.backbone == ssv2.model.backbone
    for loader in ('train', 'val', 'test'):
        d, s = diving[f'{loader}_dataloader'], ssv2[f'{loader}_dataloader']
        assert d.dataset.pipeline == s.dataset.pipeline
        assert d.dataset.ann_file.startswith('data/diving48/diving48_')
        assert d.dataset.data_prefix.video == 'data/diving48/videos'
        assert d.batch_size == s.batch_size


def test_benchmark_pipelines_run_on_a_video(k400, ssv2, motion_data):
    """Every step resolves in the bevt scope and the pipelines compose on
    a real mp4: (views, C, T, H, W) inputs."""
    video = osp.join(motion_data, 'videos', 'val', 'left_0000.mp4')
    cases = [(ssv2.train_dataloader, (1, 3, 32, 224, 224)),
             (ssv2.test_dataloader, (3, 3, 32, 224, 224)),
             (k400.val_dataloader, (1, 3, 32, 224, 224)),
             (k400.test_dataloader, (12, 3, 32, 224, 224))]
    with DefaultScope.overwrite_default_scope('bevt'):
        for loader, shape in cases:
            results = dict(
                filename=video, label=0, start_index=0, modality='RGB')
            for step in loader.dataset.pipeline:
                results = TRANSFORMS.build(step)(results)
            assert tuple(results['inputs'].shape) == shape
