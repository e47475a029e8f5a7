# Copyright (c) bevt contributors. All rights reserved.
"""``backward_by_hand`` runs the autograd engine's operators (checked on the
CPU, where the engine runs), and runs on fake CUDA tensors, where it cannot."""
from collections import Counter

import pytest
import torch

from bevt.models.backbones import BEVTSwinTransformer3D
from bevt.utils.benchmarking import (backward_by_hand, count_ops,
                                     fake_cuda_autocast)

TINY = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4])


def _backbone(**kwargs) -> BEVTSwinTransformer3D:
    torch.manual_seed(0)
    model = BEVTSwinTransformer3D(arch=TINY, window_size=(4, 4, 4), **kwargs)
    model.init_weights()
    return model.train()


def _inputs(device='cpu'):
    gen = torch.Generator().manual_seed(1)
    video = torch.randn(2, 3, 8, 64, 64, generator=gen)
    image = torch.randn(3, 3, 64, 64, generator=gen)
    masks = (torch.rand(2, 4, 4, 4, generator=gen)
             > 0.5, torch.rand(3, 4, 4, generator=gen) > 0.5)
    return ([video.to(device),
             image.to(device)], [m.to(device) for m in masks])


@pytest.mark.parametrize('kwargs,amp', [
    (dict(fused_attention=False), False),
    (dict(fused_attention=True, drop_path_rate=0.2), False),
    (dict(fused_attention=True, drop_path_rate=0.2), True),
])
def test_backward_by_hand_runs_the_engines_operators(kwargs, amp):
    """The same operators, call for call, and bitwise the same gradients
    as ``torch.autograd.backward``: summed uses, custom Functions (bevt's
    casts, drop path, bias reads, q/k/v views), the engine's casts of a
    bf16 gradient to a float32 input, leaves taking their gradient."""
    model = _backbone(**kwargs)
    inputs, masks = _inputs()
    names = {id(p): n for n, p in model.named_parameters()}

    def forward():
        torch.manual_seed(7)  # the same drop-path draws
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
            outs = model(inputs, masks)
        return outs, [torch.randn_like(o) for o in outs]

    outs, grads = forward()
    model.zero_grad(set_to_none=True)
    engine_ops = count_ops(lambda: torch.autograd.backward(outs, grads))
    engine = {n: p.grad for n, p in model.named_parameters()}
    outs, grads = forward()
    leaves = {}
    hand_ops = count_ops(lambda: leaves.update(backward_by_hand(outs, grads)))
    hand = {names[id(leaf)]: grad for leaf, grad in leaves.items()}

    assert Counter(hand_ops) == Counter(engine_ops)
    assert sum(engine_ops.values()) > 300
    if amp:  # the engine cast gradients, and so did this
        assert hand_ops['_to_copy'] > 0
    assert hand.keys() == engine.keys()
    for name, grad in engine.items():
        assert torch.equal(hand[name], grad), name
        assert hand[name].stride() == grad.stride(), name


def test_backward_by_hand_sums_uses_and_skips_non_tensor_inputs():
    """A tensor used twice gets the sum; a custom Function with a non-tensor
    argument and an input without gradient maps its gradients to the right
    inputs; a leaf reached only through a transposed view gets its own
    strides, as ``AccumulateGrad`` copies it."""

    class Scale(torch.autograd.Function):

        @staticmethod
        def forward(ctx, x, factor, y):
            ctx.factor = factor
            return x * factor + y

        @staticmethod
        def backward(ctx, grad):
            return grad * ctx.factor, None, None

    x = torch.randn(3, 4, requires_grad=True)
    w = torch.randn(4, 3, requires_grad=True)
    out = Scale.apply(x, 3., torch.ones(3, 4)) + x * x + w.t()
    grad = torch.randn(3, 4)
    leaves = backward_by_hand([out], [grad])
    assert torch.allclose(leaves[x], grad * 3 + 2 * x.detach() * grad)
    assert torch.equal(leaves[w], grad.t())
    assert leaves[w].stride() == w.stride()
    assert x.grad is None and w.grad is None
    with pytest.raises(ValueError, match='no output has a grad_fn'):
        backward_by_hand([torch.ones(2)], [torch.ones(2)])


def test_backward_by_hand_on_fake_cuda_tensors():
    """Where the engine cannot run (no GPU), the backward runs on fake CUDA
    tensors: a gradient for every weight the engine gives one on the CPU,
    in the weight's dtype, and one attention backward per attention."""
    model = _backbone(fused_attention=True)
    inputs, masks = _inputs()
    outs = model(inputs, masks)
    torch.autograd.backward(outs, [torch.ones_like(o) for o in outs])
    expected = {n for n, p in model.named_parameters() if p.grad is not None}

    with fake_cuda_autocast(model) as device:
        inputs, masks = _inputs(device)
        outs = model(inputs, masks)
        with pytest.raises(RuntimeError):  # the engine needs a GPU
            torch.autograd.backward(outs, [torch.empty_like(o) for o in outs])
        leaves = {}

        def step():
            outs = model(inputs, masks)
            leaves.update(
                backward_by_hand(outs, [torch.empty_like(o) for o in outs]))

        ops = count_ops(step)
        assert torch.is_autocast_enabled('cuda')  # restored
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(leaf)] for leaf in leaves} == expected
    for leaf, grad in leaves.items():
        assert grad.device.type == 'cuda'
        assert grad.shape == leaf.shape and grad.dtype == leaf.dtype
    assert ops['scaled_dot_product_attention'] == 16  # 8 blocks x 2 streams
    assert ops['scaled_dot_product_attention_backward'] == 16
    assert ops['mm'] > 0 and ops['native_layer_norm_backward'] > 0
