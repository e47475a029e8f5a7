# Copyright (c) bevt contributors. All rights reserved.
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bevt.models.utils import cast_together
from bevt.utils.benchmarking import count_ops


def _mlp_step(layers, x, together):
    """Output and float32 gradients of two linears under a bf16 autocast,
    their weights cast by ``cast_together`` or by autocast per call."""
    for p in layers.parameters():
        p.grad = None
    with torch.autocast('cpu', torch.bfloat16):
        params = [p for layer in layers for p in (layer.weight, layer.bias)]
        if together:
            params = cast_together(params, 'cpu')
        w1, b1, w2, b2 = params
        out = F.linear(F.linear(x, w1, b1).relu(), w2, b2)
    out.float().square().sum().backward()
    return out, [p.grad for p in layers.parameters()]


def test_cast_together_equals_autocasts_casts_bitwise():
    torch.manual_seed(0)
    layers = nn.Sequential(nn.Linear(8, 16), nn.Linear(16, 4))
    x = torch.randn(5, 8)
    ref_out, ref_grads = _mlp_step(layers, x, together=False)
    out, grads = _mlp_step(layers, x, together=True)
    assert out.dtype == torch.bfloat16 and torch.equal(out, ref_out)
    for grad, ref in zip(grads, ref_grads):
        assert grad.dtype == torch.float32 and torch.equal(grad, ref)

    def casts(together):
        counts = count_ops(lambda: _mlp_step(layers, x, together))
        return counts.get('_to_copy', 0)

    # autocast: one cast per weight and bias each way (8), and the input's;
    # together: one each way, and the input's
    assert casts(False) - casts(True) == 6


def test_cast_together_passes_through():
    w = torch.randn(3, 2, requires_grad=True)
    half = torch.randn(3, dtype=torch.float16)
    assert cast_together([w, None], 'cpu') == (w, None)  # no autocast
    with torch.autocast('cpu', torch.bfloat16):
        # float16 is not cast here (autocast casts it per use)
        assert cast_together([w, half], 'cpu') == (w, half)
        assert cast_together([None], 'cpu') == (None, )
        cast_w, none = cast_together([w, None], 'cpu')
    assert none is None and cast_w.dtype == torch.bfloat16
    assert torch.equal(cast_w, w.to(torch.bfloat16))


@pytest.mark.parametrize('needs_grad', [(True, False), (False, False)])
def test_cast_together_gradients_only_where_needed(needs_grad):
    a = torch.randn(4, requires_grad=needs_grad[0])
    b = torch.randn(2, 2, requires_grad=needs_grad[1])
    with torch.autocast('cpu', torch.bfloat16):
        ca, cb = cast_together([a, b], 'cpu')
    assert ca.requires_grad == needs_grad[0]
    if needs_grad[0]:
        (ca.float() * 3).sum().backward()  # cb unused: no gradient
        assert torch.equal(a.grad, torch.full((4, ), 3.))
        assert b.grad is None
