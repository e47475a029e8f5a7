# Copyright (c) bevt contributors. All rights reserved.
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bevt.models.utils import (cast_together, layer_norm_params,
                               norm_in_autocast_dtype)
from bevt.testing import relative_error


def _norm(affine=True):
    torch.manual_seed(0)
    norm = nn.LayerNorm(64, elementwise_affine=affine)
    if affine:
        nn.init.normal_(norm.weight, 1., 0.3)
        nn.init.normal_(norm.bias, 0., 0.3)
    return norm


def _run(norm, x, fn):
    """Output and float32 gradients (x, weight, bias) of ``fn`` under a
    bf16 autocast."""
    norm.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_()
    with torch.autocast('cpu', torch.bfloat16):
        out = fn(norm, x)
    torch.manual_seed(1)
    out.float().backward(torch.randn(out.shape))
    return out, [x.grad] + [p.grad for p in norm.parameters()]


def _ours(norm, x):
    return norm_in_autocast_dtype(
        norm, x, *cast_together(layer_norm_params(norm, x), 'cpu'))


def test_norm_runs_in_the_autocast_dtype():
    """A bf16 input is normalised in bf16 with the weights rounded to bf16:
    float32 LayerNorm of the same values rounded once; close to CUDA
    autocast's float32 norm (then cast by the next linear) and to the CPU's
    mixed-dtype norm (float32 weights), gradients too."""
    norm = _norm()
    x = (torch.randn(300, 64) * 3 + 1).bfloat16()
    out, grads = _run(norm, x, _ours)
    assert out.dtype == grads[0].dtype == torch.bfloat16
    assert grads[1].dtype == grads[2].dtype == torch.float32
    # the float32 norm with bf16-rounded weights, rounded once
    w, b = norm.weight.bfloat16().float(), norm.bias.bfloat16().float()
    ref = F.layer_norm(x.float(), (64, ), w, b, norm.eps).bfloat16()
    torch.testing.assert_close(out, ref, atol=0, rtol=2**-7)  # an ulp
    # CUDA autocast's float32 policy (float32 weights, then cast)
    cuda_out, cuda_grads = _run(
        norm, x, lambda n, t: F.linear(n(t.float()), torch.eye(64)))
    torch.testing.assert_close(
        out.float(), cuda_out.float(), atol=2e-2, rtol=2**-7)
    torch.testing.assert_close(grads[0], cuda_grads[0], atol=2e-2, rtol=0.02)
    # the CPU's autocast leaves LayerNorm alone: its mixed-dtype kernel
    # (float32 weights). Its weight gradients, as those of its bf16 kernel,
    # are off by about a percent (CUDA's sum the rows in float32): ours are
    # no worse against float64's
    cpu_out, cpu_grads = _run(norm, x, lambda n, t: n(t))
    assert cpu_out.dtype == torch.bfloat16
    torch.testing.assert_close(out, cpu_out, atol=1e-2, rtol=2**-7)
    _, exact = _run(norm.double(), x.double(), lambda n, t: n(t))
    for grad, cpu_grad, ref in zip(grads, cpu_grads, exact):
        error = relative_error(grad, ref)
        assert error < max(2 * relative_error(cpu_grad, ref), 4e-3), error


@pytest.mark.parametrize(
    'case',
    ['no autocast', 'float32 input', 'not cast', 'no affine', 'subclass'])
def test_norm_falls_back_to_the_module(case):
    """Outside an autocast, for a float32 input, with weights not cast or
    for other norms it is ``norm(x)``; a norm without weights runs in the
    autocast dtype with none."""
    norm = _norm(affine=case != 'no affine')
    if case == 'subclass':
        norm.__class__ = type('MyNorm', (nn.LayerNorm, ), {})
    x = torch.randn(10, 64)
    if case == 'no autocast':
        out = norm_in_autocast_dtype(norm, x, None, None)
        assert torch.equal(out, norm(x))
        return
    with torch.autocast('cpu', torch.bfloat16):
        if case == 'float32 input':
            assert layer_norm_params(norm, x) == [None, None]
            out = norm_in_autocast_dtype(norm, x, norm.weight, norm.bias)
            assert out.dtype == torch.float32 and torch.equal(out, norm(x))
            return
        x = x.bfloat16()
        params = layer_norm_params(norm, x)
        if case == 'not cast':
            assert params[0] is norm.weight and params[1] is norm.bias
            out = norm_in_autocast_dtype(norm, x, *params)  # float32 ones
            assert torch.equal(out, norm(x))
        elif case == 'no affine':
            assert params == [None, None]
            out = norm_in_autocast_dtype(norm, x, None, None)
            assert out.dtype == torch.bfloat16
            ref = F.layer_norm(x.float(), (64, ), eps=norm.eps).bfloat16()
            torch.testing.assert_close(out, ref, atol=0, rtol=2**-7)  # an ulp
        else:
            assert params == [None, None]
            assert torch.equal(
                norm_in_autocast_dtype(norm, x, None, None), norm(x))
