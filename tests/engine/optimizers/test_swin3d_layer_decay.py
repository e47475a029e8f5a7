# Copyright (c) bevt contributors. All rights reserved.
"""BEVTSwin3DLayerDecayConstructor against the official K400 depth table
(reference §11.1), written out by hand for Swin-B's depths 2-2-18-2."""
from unittest import mock

import pytest
import torch
from mmengine.optim import DefaultOptimWrapperConstructor, build_optim_wrapper
from mmengine.registry import DefaultScope

from bevt.engine.optimizers import (BEVTSwin3DLayerDecayConstructor,
                                    swin3d_layer_depths)
from bevt.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

BASE_LR, BASE_WD, RATE = 3e-4, 0.05, 0.9

# depth k from the top, lr_mult = 0.9 ** k: the official K400 table
SWIN_B_DEPTHS = {
    'backbone.norm3': 1,
    'backbone.layers.3.blocks.1': 1,
    'backbone.layers.3.blocks.0': 2,
    'backbone.layers.2.downsample': 3,
    'backbone.layers.2.blocks.17': 4,
    'backbone.layers.2.blocks.16': 5,
    'backbone.layers.2.blocks.15': 6,
    'backbone.layers.2.blocks.14': 7,
    'backbone.layers.2.blocks.13': 8,
    'backbone.layers.2.blocks.12': 9,
    'backbone.layers.2.blocks.11': 10,
    'backbone.layers.2.blocks.10': 11,
    'backbone.layers.2.blocks.9': 12,
    'backbone.layers.2.blocks.8': 13,
    'backbone.layers.2.blocks.7': 14,
    'backbone.layers.2.blocks.6': 15,
    'backbone.layers.2.blocks.5': 16,
    'backbone.layers.2.blocks.4': 17,
    'backbone.layers.2.blocks.3': 18,
    'backbone.layers.2.blocks.2': 19,
    'backbone.layers.2.blocks.1': 20,
    'backbone.layers.2.blocks.0': 21,
    'backbone.layers.1.downsample': 22,
    'backbone.layers.1.blocks.1': 23,
    'backbone.layers.1.blocks.0': 24,
    'backbone.layers.0.downsample': 25,
    'backbone.layers.0.blocks.1': 26,
    'backbone.layers.0.blocks.0': 27,
    'backbone.patch_embed': 28,
}


def official_k400_custom_keys() -> dict:
    """The official K400 fine-tune's paramwise_cfg.custom_keys."""
    keys = {
        key.replace('norm3', 'norm'): dict(lr_mult=RATE**k)
        for key, k in SWIN_B_DEPTHS.items()
    }
    keys['backbone.norm']['decay_mult'] = 0.
    keys.update(
        absolute_pos_embed=dict(decay_mult=0.),
        relative_position_bias_table=dict(decay_mult=0.),
        norm=dict(decay_mult=0.))
    return keys


@pytest.fixture(scope='module')
def model():
    """A Swin-B-shaped recognizer (depths 2-2-18-2), tiny widths."""
    cfg = dict(
        type='Recognizer3D',
        backbone=dict(
            type='SwinTransformer3D',
            arch=dict(embed_dims=8, depths=[2, 2, 18, 2], num_heads=[1] * 4),
            pretrained2d=False,
            window_size=(2, 2, 2)),
        cls_head=dict(type='I3DHead', in_channels=64, num_classes=5))
    with DefaultScope.overwrite_default_scope('bevt'):
        return MODELS.build(cfg)


def groups_by_name(model, optim_wrapper) -> dict:
    """Parameter name -> (lr / BASE_LR, weight_decay)."""
    by_id = {
        id(p): (g['lr'] / BASE_LR, g.get('weight_decay'))
        for g in optim_wrapper.optimizer.param_groups
        for p in g['params']
    }
    return {n: by_id[id(p)] for n, p in model.named_parameters()}


def build(model, **paramwise_cfg):
    cfg = dict(optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=BASE_WD))
    return BEVTSwin3DLayerDecayConstructor(cfg, paramwise_cfg)(model)


def expected_depth(name: str) -> int:
    units = [u for u in SWIN_B_DEPTHS if name.startswith(u + '.')]
    assert len(units) <= 1, name
    return SWIN_B_DEPTHS[units[0]] if units else 0


def test_depth_table_is_the_official_one(model):
    depths = swin3d_layer_depths(model.backbone)
    # aliases of the final norm and norms of earlier stages (not built)
    aliases = ('norm', 'norm0', 'norm1', 'norm2')
    assert {
        f'backbone.{unit}': k
        for unit, k in depths.items() if unit not in aliases
    } == SWIN_B_DEPTHS
    assert depths['norm'] == 1


def test_hand_checked_values(model):
    groups = groups_by_name(model, build(model, layer_decay_rate=RATE))
    block = 'backbone.layers.2.blocks.5.'
    approx = pytest.approx
    assert groups[block + 'attn.qkv.weight'] == approx((RATE**16, BASE_WD))
    assert groups[block + 'attn.qkv.bias'] == approx((RATE**16, 0.))
    assert groups[block + 'attn.relative_position_bias_table'] == approx(
        (RATE**16, 0.))
    assert groups[block + 'norm1.weight'] == approx((RATE**16, 0.))
    assert groups[block + 'mlp.fc2.weight'] == approx((RATE**16, BASE_WD))
    assert groups['backbone.patch_embed.proj.weight'] == approx(
        (RATE**28, BASE_WD))
    assert groups['backbone.patch_embed.norm.weight'] == approx((RATE**28, 0.))
    assert groups['backbone.layers.2.downsample.reduction.weight'] == approx(
        (RATE**3, BASE_WD))
    assert groups['backbone.layers.2.downsample.norm.bias'] == approx(
        (RATE**3, 0.))
    assert groups['backbone.layers.3.blocks.1.mlp.fc1.weight'] == approx(
        (RATE, BASE_WD))
    assert groups['backbone.norm3.weight'] == approx((RATE, 0.))
    assert groups['cls_head.fc_cls.weight'] == approx((1., BASE_WD))
    assert groups['cls_head.fc_cls.bias'] == approx((1., 0.))


def test_every_parameter_follows_the_table(model):
    groups = groups_by_name(model, build(model, layer_decay_rate=RATE))
    no_decay = ('norm', 'relative_position_bias_table')
    for name, (lr_mult, wd) in groups.items():
        assert lr_mult == pytest.approx(RATE**expected_depth(name)), name
        flat = name.endswith('.bias') or any(k in name for k in no_decay)
        assert wd == (0. if flat else BASE_WD), name


def test_official_custom_keys_differ(model):
    """mmengine's longest-key rule with the official keys: tables keep
    lr_mult 1, in-block / downsample / patch-embed norms are decayed."""
    official = DefaultOptimWrapperConstructor(
        dict(optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=BASE_WD)),
        dict(custom_keys=official_k400_custom_keys()))(
            model)
    theirs = groups_by_name(model, official)
    ours = groups_by_name(model, build(model, layer_decay_rate=RATE))
    approx = pytest.approx
    table = 'backbone.layers.2.blocks.5.attn.relative_position_bias_table'
    assert theirs[table] == approx((1., 0.))
    assert ours[table] == approx((RATE**16, 0.))
    for norm, k in [('backbone.layers.2.blocks.5.norm1.weight', 16),
                    ('backbone.layers.2.downsample.norm.weight', 3),
                    ('backbone.patch_embed.norm.weight', 28)]:
        assert theirs[norm] == approx((RATE**k, BASE_WD))
        assert ours[norm] == approx((RATE**k, 0.))
    # agreement elsewhere: linear weights and the final norm
    for name in ('backbone.layers.2.blocks.5.attn.qkv.weight',
                 'backbone.patch_embed.proj.weight', 'backbone.norm3.weight',
                 'cls_head.fc_cls.weight'):
        assert theirs[name] == approx(ours[name]), name
    # biases: decayed officially, not here
    assert theirs['backbone.layers.2.blocks.5.attn.qkv.bias'][1] == BASE_WD


def test_backbone_lr_mult_and_custom_keys_multiply(model):
    # the SSv2 recipe: no layer decay, backbone lr x 0.1 on every backbone
    # parameter (tables and norms included)
    groups = groups_by_name(model, build(model, backbone_lr_mult=0.1))
    for name, (lr_mult, _) in groups.items():
        expected = 0.1 if name.startswith('backbone.') else 1.
        assert lr_mult == pytest.approx(expected), name
    groups = groups_by_name(
        model,
        build(
            model,
            layer_decay_rate=RATE,
            backbone_lr_mult=0.1,
            custom_keys=dict(
                qkv=dict(lr_mult=0.5, decay_mult=2.), attn=dict(lr_mult=0.5))))
    assert groups['backbone.layers.2.blocks.5.attn.qkv.weight'] == \
        pytest.approx((RATE**16 * 0.1 * 0.25, 2 * BASE_WD))
    assert groups['backbone.layers.2.blocks.5.attn.proj.weight'] == \
        pytest.approx((RATE**16 * 0.1 * 0.5, BASE_WD))


def test_nano_depths():
    with DefaultScope.overwrite_default_scope('bevt'):
        backbone = MODELS.build(
            dict(
                type='SwinTransformer3D',
                arch=dict(
                    embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4,
                                                                   8]),
                pretrained2d=False,
                window_size=(4, 4, 4)))
    assert swin3d_layer_depths(backbone) == {
        'layers.3.blocks.0': 1,
        'norm3': 1,
        'norm': 1,
        'layers.2.downsample': 2,
        'layers.2.blocks.1': 3,
        'norm2': 3,
        'layers.2.blocks.0': 4,
        'layers.1.downsample': 5,
        'layers.1.blocks.0': 6,
        'norm1': 6,
        'layers.0.downsample': 7,
        'layers.0.blocks.0': 8,
        'norm0': 8,
        'patch_embed': 9,
    }


def test_frozen_parameters_are_left_out(model):
    for param in model.backbone.patch_embed.parameters():
        param.requires_grad = False
    try:
        optim_wrapper = build(model, layer_decay_rate=RATE)
    finally:
        for param in model.backbone.patch_embed.parameters():
            param.requires_grad = True
    in_groups = {
        id(p)
        for g in optim_wrapper.optimizer.param_groups
        for p in g['params']
    }
    assert id(model.backbone.patch_embed.proj.weight) not in in_groups
    assert len(in_groups) == len(list(model.parameters())) - 4


def test_summary_table_is_logged(model):
    with mock.patch(
            'bevt.engine.optimizers.swin3d_layer_decay.print_log') as log:
        build(model, layer_decay_rate=RATE)
    table = log.call_args_list[-1].args[0]
    assert 'layer_decay_rate=0.9' in table and '28 backbone depths' in table
    rows = {tuple(line.split()[:4]) for line in table.splitlines()[2:]}
    assert ('backbone.patch_embed', '28', f'{RATE**28:.4g}', '1') in rows
    assert ('backbone.layers.2.blocks.5', '16', f'{RATE**16:.4g}', '0') in rows
    assert ('cls_head', '0', '1', '1') in rows


def test_invalid_settings(model):
    cfg = dict(optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=BASE_WD))
    with pytest.raises(ValueError, match='layer_decay'):
        BEVTSwin3DLayerDecayConstructor(cfg, dict(layer_decay=0.9))
    with pytest.raises(ValueError, match='must be in'):
        BEVTSwin3DLayerDecayConstructor(cfg, dict(layer_decay_rate=0.))
    with pytest.raises(TypeError, match='no `backbone`'):
        BEVTSwin3DLayerDecayConstructor(cfg)(torch.nn.Linear(2, 2))


def test_built_from_a_config(model):
    """The name a config writes resolves in the bevt scope."""
    assert OPTIM_WRAPPER_CONSTRUCTORS.get(
        'BEVTSwin3DLayerDecayConstructor') is BEVTSwin3DLayerDecayConstructor
    with DefaultScope.overwrite_default_scope('bevt'):
        optim_wrapper = build_optim_wrapper(
            model,
            dict(
                optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=0.),
                constructor='BEVTSwin3DLayerDecayConstructor',
                paramwise_cfg=dict(layer_decay_rate=RATE)))
    groups = groups_by_name(model, optim_wrapper)
    assert groups['backbone.patch_embed.proj.weight'][0] == pytest.approx(
        RATE**28)


def test_no_decay_rules_are_configurable(model):
    groups = groups_by_name(
        model,
        build(
            model,
            norm_decay_mult=1.,
            bias_decay_mult=0.5,
            no_decay_keys='qkv.weight'))
    block = 'backbone.layers.2.blocks.5.'
    assert groups[block + 'norm1.weight'][1] == BASE_WD
    assert groups[block + 'attn.proj.bias'][1] == BASE_WD * 0.5
    assert groups[block + 'attn.relative_position_bias_table'][1] == BASE_WD
    assert groups[block + 'attn.qkv.weight'][1] == 0.


def test_one_group_per_distinct_setting(model):
    """Parameters of equal (lr, weight decay) share a param group (fewer
    optimizer kernels), and every parameter is in exactly one."""
    wrapper = build(model, layer_decay_rate=RATE)
    groups = wrapper.optimizer.param_groups
    settings = [(g['lr'], g['weight_decay']) for g in groups]
    assert len(settings) == len(set(settings))
    # 28 backbone depths x (decayed, not decayed) + the head's two
    assert len(groups) == 28 * 2 + 2
    ids = [id(p) for g in groups for p in g['params']]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
