# Copyright (c) bevt contributors. All rights reserved.
import pytest
import torch

from bevt.models.backbones.qkv_views import split_qkv
from bevt.utils.benchmarking import count_ops


def _reference(qkv, heads):
    num, N, C3 = qkv.shape
    return qkv.reshape(num, N, 3, heads,
                       C3 // 3 // heads).permute(2, 0, 3, 1, 4).unbind(0)


def test_split_qkv_equals_mmaction_views_with_one_copy_back():
    torch.manual_seed(0)
    qkv = torch.randn(6, 9, 3 * 8, requires_grad=True)
    grads = [torch.randn(6, 2, 9, 4) for _ in range(3)]
    ours, ref = split_qkv(qkv, 2), _reference(qkv, 2)
    for a, b in zip(ours, ref):
        assert torch.equal(a, b) and a.data_ptr() == b.data_ptr()  # views

    def backward(views):
        return torch.autograd.grad(views, qkv, grads)[0]

    assert torch.equal(backward(ours), backward(ref))
    counts = count_ops(lambda: backward(split_qkv(qkv, 2)))
    ref_counts = count_ops(lambda: backward(_reference(qkv, 2)))
    assert sum(counts.values()) == 1  # one stack into the rows' layout
    assert sum(ref_counts.values()) == 2  # stack, then a copy


def test_split_qkv_takes_packed_gradients_as_they_are():
    """Gradients that are the q, k, v slices of one (B*nW, N, 3, nH, d)
    tensor (as CUDA's memory-efficient attention makes them) become the
    rows' gradient with no copy."""
    qkv = torch.randn(6, 9, 3 * 8, requires_grad=True)
    chunk = torch.randn(6, 9, 3, 2, 4)
    grads = [chunk.select(2, i).transpose(1, 2) for i in range(3)]
    counts = {}

    def backward():
        out = torch.autograd.grad(split_qkv(qkv, 2), qkv, grads)[0]
        counts['out'] = out
        return out

    assert not count_ops(backward)  # no operator
    out = counts['out']
    assert out.data_ptr() == chunk.data_ptr()
    assert torch.equal(out, chunk.view(6, 9, 24))
    # slices of another layout, or of different tensors: one stack
    other = [g.clone() for g in grads]
    assert sum(
        count_ops(lambda: torch.autograd.grad(split_qkv(qkv, 2), qkv, other)).
        values()) == 1


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs a CUDA device')
def test_cuda_attention_keeps_the_rows_layout():
    """On CUDA the memory-efficient attention's output is laid out
    (B*nW, N, nH, d), so the fused path's reshape is a view, and split_qkv's
    backward makes at most one copy of the q, k, v gradients: one stack
    (PyTorch 2.11 on an H100 returns three separate tensors), none where
    the kernel packs them in the rows' layout (its ROCm build)."""
    import torch.nn.functional as F

    qkv = torch.randn(
        8, 49, 3 * 64, device='cuda', dtype=torch.bfloat16, requires_grad=True)
    bias = torch.randn(
        4, 49, 49, device='cuda', dtype=torch.bfloat16, requires_grad=True)
    q, k, v = split_qkv(qkv, 4)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.unsqueeze(0))
    assert out.transpose(1, 2).is_contiguous()
    reference = [t.detach().requires_grad_() for t in (q, k, v, bias)]
    expected = torch.autograd.grad(
        F.scaled_dot_product_attention(
            *reference[:3], attn_mask=reference[3].unsqueeze(0)).float().sum(),
        reference[:3])
    counts = count_ops(lambda: out.float().sum().backward())
    assert counts.get('stack', 0) <= 1, counts
    assert 'clone' not in counts, counts
    torch.testing.assert_close(  # bfloat16: the kernel's rounding
        qkv.grad,
        torch.stack([g.transpose(1, 2) for g in expected], 2).view_as(qkv))
    assert bias.grad is not None
