# Copyright (c) bevt contributors. All rights reserved.
import torch
from mmaction.models.backbones.swin import WindowAttention3D

from bevt.models.backbones.relative_position import (flat_position_index,
                                                     relative_position_bias,
                                                     relative_position_biases)
from bevt.utils.benchmarking import count_ops


def _attention():
    torch.manual_seed(0)
    attn = WindowAttention3D(24, (2, 3, 3), num_heads=3)
    torch.nn.init.normal_(attn.relative_position_bias_table)
    return attn


def test_biases_of_several_sizes_equal_one_read_each():
    attn = _attention()
    table = attn.relative_position_bias_table
    sizes = (18, 9)  # a full window and a clamped one (first 9 positions)
    biases = relative_position_biases(attn, sizes)
    weights = [torch.randn(3, n, n) for n in sizes]
    grad, = torch.autograd.grad(
        sum((b * w).sum() for b, w in zip(biases, weights)), table)
    ref_grad = torch.zeros_like(table)
    for bias, n, w in zip(biases, sizes, weights):
        ref = relative_position_bias(attn, n)
        assert bias.shape == (3, n, n) and torch.equal(bias, ref)
        ref_grad += torch.autograd.grad((ref * w).sum(), table)[0]
    torch.testing.assert_close(grad, ref_grad, atol=1e-5, rtol=1e-5)

    def count(fn):
        counts = count_ops(lambda: torch.autograd.grad(fn().sum(), table))
        return sum(
            counts.get(name, 0)
            for name in ('index_select', 'index_add', 'index_add_'))

    assert count(lambda: sum(
        b.sum() for b in relative_position_biases(attn, sizes))) == 2
    assert count(
        lambda: sum(relative_position_bias(attn, n).sum() for n in sizes)) == 4


def test_flat_index_is_cached_until_the_buffer_changes():
    attn = _attention()
    first = flat_position_index(attn, (9, ))
    assert flat_position_index(attn, (9, )) is first  # no copy per call
    assert torch.equal(first, attn.relative_position_index[:9, :9].reshape(-1))
    attn.relative_position_index.fill_(0)  # in place: a new version
    assert not flat_position_index(attn, (9, )).any()
    attn.relative_position_index = torch.ones(18, 18, dtype=torch.long)
    assert flat_position_index(attn, (9, )).eq(1).all()


def test_index_cached_under_inference_mode_serves_training():
    attn = _attention()
    with torch.inference_mode():
        relative_position_bias(attn, 9)
    bias = relative_position_bias(attn, 9)  # saves the cached index
    bias.sum().backward()
    assert attn.relative_position_bias_table.grad is not None


def test_table_gradient_is_made_in_the_tables_layout():
    """The gradient reaches ``.grad`` as it is: no copy by AccumulateGrad
    (which copies a transposed gradient into a contiguous one)."""
    attn = _attention()
    table = attn.relative_position_bias_table
    weights = torch.randn(3, 9, 9)

    def step():
        table.grad = None
        (relative_position_bias(attn, 9) * weights).sum().backward()

    counts = count_ops(step)
    assert 'new_empty_strided' not in counts and 'copy_' not in counts
    assert table.grad.is_contiguous()
    expected = torch.zeros_like(table)
    index = attn.relative_position_index[:9, :9].reshape(-1)
    expected.index_put_((index, ),
                        weights.permute(1, 2, 0).reshape(-1, 3),
                        accumulate=True)
    torch.testing.assert_close(table.grad, expected)


def test_masked_bias_is_one_operator_each_way():
    """The bias plus the shift mask in bf16: autograd's add-then-cast
    bitwise, the float32 gradient summed over the windows in the same
    order, one operator each way instead of two."""
    from bevt.models.backbones.relative_position import masked_bias

    torch.manual_seed(0)
    bias = torch.randn(3, 49, 49, requires_grad=True)
    mask = torch.where(torch.rand(4, 49, 49) > 0.5, -100., 0.)
    grad = torch.randn(4, 3, 49, 49).bfloat16()

    def run(fn):
        bias.grad = None
        out = fn(bias, mask)
        out.backward(grad)
        return out, bias.grad

    def autograds(b, m):
        return (b.unsqueeze(0) + m.unsqueeze(1)).to(torch.bfloat16)

    def ours(b, m):
        return masked_bias(b, m, torch.bfloat16)

    out, bias_grad = run(ours)
    ref, ref_grad = run(autograds)
    assert out.dtype == torch.bfloat16 and torch.equal(out, ref)
    assert bias_grad.dtype == torch.float32
    torch.testing.assert_close(bias_grad, ref_grad, rtol=1e-6, atol=1e-6)
    assert sum(count_ops(lambda: run(ours)).values()) + 2 == sum(
        count_ops(lambda: run(autograds)).values())
    # no cast needed: autograd's formula
    same = masked_bias(bias, mask, torch.float32)
    assert torch.equal(same, bias.unsqueeze(0) + mask.unsqueeze(1))
