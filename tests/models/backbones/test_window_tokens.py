# Copyright (c) bevt contributors. All rights reserved.
"""The one-gather window layout and fused residual against mmaction2's
roll / window_partition / window_reverse steps and mmcv's DropPath."""
import pytest
import torch
import torch.nn.functional as F
from mmaction.models.backbones.swin import (SwinTransformerBlock3D,
                                            window_partition, window_reverse)
from mmcv.cnn.bricks import DropPath

from bevt.models.backbones.swin3d_ops import (EAGER_BLOCK_BYTES,
                                              eager_window_attention,
                                              fused_window_attention,
                                              reference_block_forward,
                                              residual_add,
                                              shift_attention_mask,
                                              swin_block_forward)
from bevt.models.backbones.window_tokens import (partition_tokens,
                                                 reverse_tokens,
                                                 window_token_order)
from bevt.testing import DEVICES, deterministic

# (size, window, shift): shifted, un-shifted, padded and a one-frame map
LAYOUTS = [((4, 8, 8), (2, 4, 4), (1, 2, 2)),
           ((4, 8, 8), (2, 4, 4), (0, 0, 0)),
           ((3, 7, 10), (2, 4, 4), (1, 2, 2)),
           ((1, 8, 12), (1, 4, 4), (0, 2, 2))]


def mmaction_layout(x, window, shift):
    """Pad, roll by -shift, window_partition: (B*nW, N, C)."""
    D, H, W = x.shape[1:4]
    pads = [(w - s % w) % w for s, w in zip((D, H, W), window)]
    x = F.pad(x, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
    if any(shift):
        x = torch.roll(x, shifts=[-s for s in shift], dims=(1, 2, 3))
    return window_partition(x, window)


def mmaction_unlayout(windows, window, shift, size, batch):
    """window_reverse, roll by shift, crop: (B, D, H, W, C)."""
    padded = [-(-s // w) * w for s, w in zip(size, window)]
    x = window_reverse(
        windows.view(-1, *window, windows.shape[-1]), window, batch, *padded)
    if any(shift):
        x = torch.roll(x, shifts=list(shift), dims=(1, 2, 3))
    return x[:, :size[0], :size[1], :size[2]]


@pytest.mark.parametrize('size,window,shift', LAYOUTS)
def test_gathers_equal_roll_and_partition(size, window, shift):
    torch.manual_seed(0)
    x = torch.randn(2, *size, 5, dtype=torch.float64, requires_grad=True)
    padded = [-(-s // w) * w for s, w in zip(size, window)]
    pads = [p - s for p, s in zip(padded, size)]
    xp = F.pad(x, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
    ours = partition_tokens(xp, window, shift, size)
    ref = mmaction_layout(x, window, shift)
    assert torch.equal(ours, ref)
    windows = torch.randn_like(ref, requires_grad=True)
    back = reverse_tokens(windows, window, shift, size, 2)
    back_ref = mmaction_unlayout(windows, window, shift, size, 2)
    assert torch.equal(back, back_ref)
    # the inverse: partition then reverse gives the map back
    assert torch.equal(reverse_tokens(ours, window, shift, size, 2), x)
    # backward: the inverse gathers give mmaction2's gradients
    g1, g2 = torch.randn_like(ref), torch.randn_like(back_ref)
    grads = torch.autograd.grad((ours * g1).sum() + (back * g2).sum(),
                                (x, windows))
    grads_ref = torch.autograd.grad((ref * g1).sum() + (back_ref * g2).sum(),
                                    (x, windows))
    for ours_grad, ref_grad in zip(grads, grads_ref):
        assert torch.equal(ours_grad, ref_grad)


def test_token_order_is_cached_per_layout():
    args = ((4, 8, 8), (2, 4, 4), (1, 2, 2), torch.device('cpu'))
    order, inverse, crop = window_token_order(*args)
    assert window_token_order(*args)[0] is order
    assert torch.equal(order[inverse], torch.arange(order.numel()))
    assert torch.equal(crop, inverse)  # nothing padded
    _, inverse, crop = window_token_order((3, 7, 10), (2, 4, 4), (1, 2, 2),
                                          torch.device('cpu'))
    assert crop.numel() == 3 * 7 * 10 < inverse.numel() == 4 * 8 * 12


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_residual_add_equals_drop_path(dtype):
    drop_path = DropPath(0.5).train()
    shortcut = torch.randn(16, 3, 4, 6)
    x = torch.randn(16, 3, 4, 6, dtype=dtype, requires_grad=True)
    torch.manual_seed(3)
    ours = residual_add(shortcut, x, drop_path)
    torch.manual_seed(3)
    ref = shortcut + drop_path(x)
    assert torch.equal(ours, ref)
    dropped = (ref == shortcut).flatten(1).all(1)
    assert 0 < int(dropped.sum()) < 16  # both kinds of sample drawn
    grad = torch.randn_like(ref)
    assert torch.equal(
        torch.autograd.grad(ours, x, grad)[0],
        torch.autograd.grad(ref, x, grad)[0])
    # eval mode and nn.Identity: the plain sum
    assert torch.equal(
        residual_add(shortcut, x, drop_path.eval()), shortcut + x)
    assert torch.equal(
        residual_add(shortcut, x, torch.nn.Identity()), shortcut + x)


def block_and_input(size, window, device):
    torch.manual_seed(0)
    block = SwinTransformerBlock3D(
        embed_dims=16,
        num_heads=2,
        window_size=window,
        shift_size=tuple(w // 2 for w in window),
        drop_path=0.3)
    torch.nn.init.normal_(block.attn.relative_position_bias_table, std=0.5)
    block.to(device).train()
    x = torch.randn(4, *size, 16, device=device, requires_grad=True)
    return block, x


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('attention', ['eager', 'fused'])
@pytest.mark.parametrize('autocast', [False, True])
@pytest.mark.parametrize('size,window,shift', LAYOUTS)
def test_block_bitwise_equals_mmaction_layout(device, attention, autocast,
                                              size, window, shift,
                                              monkeypatch):
    """The block with gathers, cast-first and residual_add equals the block
    with mmaction2's roll / partition / reverse / DropPath steps and the
    same attention formula, bit for bit, forward and backward (on CUDA
    with deterministic algorithms: by default the bias table's gradient is
    summed with atomics, in a different order at each run)."""
    block, x = block_and_input(size, window, device)
    mask = shift_attention_mask(size, window, shift, x.device)
    dtype = torch.bfloat16 if device == 'cpu' else torch.float16

    def run(forward):
        torch.manual_seed(7)  # the same drop-path draws
        with deterministic(device):
            with torch.autocast(device, dtype=dtype, enabled=autocast):
                out = forward()
            grads = torch.autograd.grad(out.square().sum(),
                                        [x] + list(block.parameters()))
        return out, grads

    out, grads = run(
        lambda: swin_block_forward(block, x, window, shift, mask, attention))
    attn = block.attn

    def same_formula(windows, mask=None):
        if attention == 'fused':
            return fused_window_attention(attn, windows, mask)
        block_bytes = EAGER_BLOCK_BYTES if device == 'cpu' else None
        return eager_window_attention(attn, windows, mask, block_bytes)

    monkeypatch.setattr(attn, 'forward', same_formula)
    ref, grads_ref = run(
        lambda: reference_block_forward(block, x, window, shift, mask))
    assert out.dtype == ref.dtype == torch.float32
    assert torch.equal(out, ref)
    for ours, theirs in zip(grads, grads_ref):
        assert torch.equal(ours, theirs)


def test_block_runs_one_gather_each_way():
    """No roll and no window copies: the layout costs one index_select per
    direction (forward), where mmaction2's steps roll and copy."""
    size, window, shift = (4, 8, 8), (2, 4, 4), (1, 2, 2)
    block, x = block_and_input(size, window, 'cpu')
    mask = shift_attention_mask(size, window, shift, x.device)

    def ops(forward):
        with torch.profiler.profile() as prof:
            forward()
        return {e.key: e.count for e in prof.key_averages()}

    ours = ops(lambda: swin_block_forward(block, x, window, shift, mask))
    ref = ops(lambda: reference_block_forward(block, x, window, shift, mask))
    assert 'aten::roll' not in ours and ref['aten::roll'] > 0
    assert ours['aten::index_select'] == 2 + 1  # + the bias read
    assert ours['aten::addcmul'] == 2 and 'aten::addcmul' not in ref
    assert sum(ours.values()) < sum(ref.values())


@pytest.mark.parametrize('shape', [(2, 3, 6, 8, 8), (1, 2, 5, 7, 8)])
def test_merge_patches_equals_patch_merging_bitwise(shape):
    """One permuted copy instead of four slices and a cat; the padded case
    too (odd H or W)."""
    from mmaction.models.backbones.swin import PatchMerging

    from bevt.models.backbones.window_tokens import merge_patches
    from bevt.utils.benchmarking import count_ops

    torch.manual_seed(0)
    merging = PatchMerging(8)
    x = torch.randn(*shape, requires_grad=True)
    grad_out = torch.randn(shape[0], shape[1], (shape[2] + 1) // 2,
                           (shape[3] + 1) // 2, 16)

    def run(fn):
        out = fn(x)
        return out, torch.autograd.grad(out, x, grad_out)[0]

    ref, ref_grad = run(merging)
    out, grad = run(lambda t: merge_patches(merging, [t])[0])
    assert torch.equal(out, ref) and torch.equal(grad, ref_grad)

    def total(fn):
        return sum(count_ops(lambda: run(fn)).values())

    assert total(lambda t: merge_patches(merging, [t])[0]) + 6 <= total(
        merging)
