# Copyright (c) bevt contributors. All rights reserved.
"""BEVTOptimWrapperConstructor: mmengine's settings per parameter, in one
param group per distinct setting, and the same optimizer steps."""
import pytest
import torch
import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor, build_optim_wrapper
from mmengine.registry import DefaultScope

from bevt.engine.optimizers import (BEVTOptimWrapperConstructor,
                                    merge_param_groups)

# the stage-2 recipe's paramwise_cfg
PARAMWISE = dict(
    custom_keys=dict(
        absolute_pos_embed=dict(decay_mult=0.),
        relative_position_bias_table=dict(decay_mult=0.),
        norm=dict(decay_mult=0.)))


class Block(nn.Module):

    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 8)
        self.relative_position_bias_table = nn.Parameter(torch.randn(5, 2))


class Net(nn.Module):

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(Block() for _ in range(3))
        self.mask_token = nn.Parameter(torch.randn(1, 8))
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = x + self.mask_token
        for block in self.blocks:
            x = block.fc(block.norm1(
                x)) + block.relative_position_bias_table[:, :1].sum()
        return self.head(x)


def build(model, constructor, **optimizer):
    cfg = dict(
        optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, **optimizer))
    return constructor(cfg, PARAMWISE)(model)


def settings_by_name(model, wrapper):
    by_id = {}
    for group in wrapper.optimizer.param_groups:
        for param in group['params']:
            assert id(param) not in by_id, 'a parameter in two groups'
            by_id[id(param)] = {
                k: v
                for k, v in group.items() if k != 'params'
            }
    return {name: by_id[id(p)] for name, p in model.named_parameters()}


def test_merge_param_groups():
    a, b, c, d = (nn.Parameter(torch.zeros(1)) for _ in range(4))
    groups = [
        dict(params=[a], lr=1., betas=(0.9, 0.99)),
        dict(params=[b], lr=2., betas=(0.9, 0.99)),
        dict(params=[c], lr=1., betas=[0.9, 0.99]),
        dict(params=[d], lr=1., betas=(0.9, 0.98)),
    ]
    merged = merge_param_groups(groups)
    assert [[id(p) for p in g['params']] for g in merged] == [[id(a),
                                                               id(c)], [id(b)],
                                                              [id(d)]]
    assert [g['lr'] for g in merged] == [1., 2., 1.]
    assert groups[0]['params'] == [a]  # the input is left alone
    assert merge_param_groups([]) == []


def test_same_settings_per_parameter_in_fewer_groups():
    model = Net()
    ours = build(model, BEVTOptimWrapperConstructor)
    theirs = build(model, DefaultOptimWrapperConstructor)
    assert len(theirs.optimizer.param_groups) == len(list(model.parameters()))
    assert len(ours.optimizer.param_groups) == 2  # decayed, not decayed
    assert settings_by_name(model, ours) == settings_by_name(model, theirs)
    wd = {
        n: s['weight_decay']
        for n, s in settings_by_name(model, ours).items()
    }
    assert wd['blocks.0.norm1.weight'] == 0.
    assert wd['blocks.2.relative_position_bias_table'] == 0.
    assert wd['blocks.1.fc.weight'] == wd['head.bias'] == 0.05


@pytest.mark.parametrize('foreach', [False, True])
def test_same_steps_as_one_group_per_parameter(foreach):
    torch.manual_seed(0)
    models = [Net(), Net()]
    models[1].load_state_dict(models[0].state_dict())
    wrappers = [
        build(models[0], BEVTOptimWrapperConstructor, foreach=foreach),
        build(models[1], DefaultOptimWrapperConstructor, foreach=foreach)
    ]
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(4, 8, generator=gen)
        for model, wrapper in zip(models, wrappers):
            wrapper.update_params(model(x).pow(2).mean())
    for (name, ours), theirs in zip(models[0].named_parameters(),
                                    models[1].parameters()):
        assert torch.equal(ours, theirs), name


def test_fused_adamw_step_equals_the_loop_up_to_rounding():
    """The pretraining configs' fused AdamW (merged groups) against the
    for-loop AdamW with one group per parameter, fed the same gradients for
    three steps: the same update up to float rounding."""
    torch.manual_seed(0)
    models = [Net(), Net()]
    models[1].load_state_dict(models[0].state_dict())
    start = [p.detach().clone() for p in models[0].parameters()]
    wrappers = [
        build(models[0], BEVTOptimWrapperConstructor, fused=True),
        build(models[1], DefaultOptimWrapperConstructor, foreach=False)
    ]
    assert wrappers[0].optimizer.defaults['fused']
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        grads = [torch.randn(p.shape, generator=gen) for p in start]
        for model, wrapper in zip(models, wrappers):
            for param, grad in zip(model.parameters(), grads):
                param.grad = grad.clone()
            wrapper.step()
    for (name, ours), theirs, before in zip(models[0].named_parameters(),
                                            models[1].parameters(), start):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)
        assert not torch.equal(ours, before), name


def test_built_from_a_config():
    model = Net()
    with DefaultScope.overwrite_default_scope('bevt'):
        wrapper = build_optim_wrapper(
            model,
            dict(
                constructor='BEVTOptimWrapperConstructor',
                optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
                paramwise_cfg=PARAMWISE))
    assert len(wrapper.optimizer.param_groups) == 2
