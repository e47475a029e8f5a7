# Copyright (c) bevt contributors. All rights reserved.
import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath
from test_bevt_swin import tiny_backbone  # a sibling test module

from bevt.models.backbones import joint_streams, window_tokens
from bevt.models.backbones.joint_drop_path import (joint_residual_add,
                                                   stage_drop_path_factors)
from bevt.models.backbones.joint_streams import (joint_token_order,
                                                 joint_transition)
from bevt.models.backbones.window_tokens import partition_tokens
from bevt.models.utils import layer_norm_params, norm_in_autocast_dtype
from bevt.testing import assert_grads_close
from bevt.utils.benchmarking import count_ops


def test_joint_token_order_gathers_each_streams_windows():
    """One gather by ``order`` gives every stream's windows, stream after
    stream, as ``partition_tokens`` of each; ``inverse`` undoes it and
    ``sample`` names each token's sample."""
    layouts = (((2, (4, 8, 8), (2, 4, 4), (1, 2, 2))),
               ((3, (1, 8, 8), (1, 4, 4), (0, 2, 2))))
    maps = [torch.randn(b, *size, 5) for b, size, _, _ in layouts]
    flat = torch.cat([m.reshape(-1, 5) for m in maps])
    order, inverse, sample = joint_token_order(layouts, torch.device('cpu'))
    expected = torch.cat([
        partition_tokens(m, window, shift, size).reshape(-1, 5)
        for m, (_, size, window, shift) in zip(maps, layouts)
    ])
    assert torch.equal(flat[order], expected)
    assert torch.equal(expected[inverse], flat)
    assert torch.equal(
        sample,
        torch.cat([
            torch.arange(2).repeat_interleave(256),
            torch.arange(2, 5).repeat_interleave(64)
        ]))
    assert joint_token_order(layouts, torch.device('cpu'))[0] is order
    # from these windows straight to those of the unshifted blocks
    unshifted = tuple(
        (b, size, window, (0, 0, 0)) for b, size, window, _ in layouts)
    index, back = joint_transition(layouts, unshifted, torch.device('cpu'))
    rows = flat[order]
    new_order = joint_token_order(unshifted, torch.device('cpu'))[0]
    assert torch.equal(rows[index], flat[new_order])
    assert torch.equal(rows[index][back], rows)


def test_drop_path_keeps_or_drops_whole_samples():
    """One draw for a stage's blocks and branches, mmcv's formula per
    sample; the residual and its gradient as mmcv's DropPath."""
    drop = DropPath(0.5).train()
    blocks = [
        SimpleNamespace(drop_path=drop),
        SimpleNamespace(drop_path=nn.Identity()),
        SimpleNamespace(drop_path=DropPath(0.25).train())
    ]
    sample = torch.tensor([0, 0, 0, 1, 2, 2])
    shortcut = torch.randn(6, 4)
    x = torch.randn(6, 4, requires_grad=True)
    torch.manual_seed(0)
    factors = stage_drop_path_factors(blocks, sample, 3, x)
    torch.manual_seed(0)
    keep = (torch.tensor([0.5, 1., 0.75]).view(3, 1, 1, 1) +
            torch.rand(3, 2, 3, 1)).floor()  # the same draw
    assert 0 < keep[0, 0].sum() < 3  # this seed keeps some and drops some
    assert torch.equal(factors, keep[:, :, sample])
    assert factors[1].eq(1).all()  # the identity keeps everything
    # mmcv's formula in the features' dtype, float32 sum rounded to it
    x_bf16 = x.detach().bfloat16()
    torch.manual_seed(0)
    factors = stage_drop_path_factors(blocks, sample, 3, x_bf16)
    torch.manual_seed(0)
    draw = torch.rand(3, 2, 3, 1, dtype=torch.bfloat16)
    assert factors.dtype == torch.bfloat16
    for i, p in enumerate((0.5, 0., 0.25)):
        assert torch.equal(factors[i], ((1 - p) + draw[i]).floor()[:, sample])
    out = joint_residual_add(shortcut, x, drop, factors[0, 0])
    assert torch.equal(out, shortcut + x.detach() / 0.5 * keep[0, 0, sample])
    out.sum().backward()
    assert torch.equal(x.grad, (keep[0, 0, sample] / 0.5).expand(6, 4))
    for module in (drop.eval(), DropPath(0.).train(), nn.Identity()):
        assert stage_drop_path_factors([SimpleNamespace(drop_path=module)],
                                       sample, 3, x) is None
        assert torch.equal(
            joint_residual_add(shortcut, x, module, None), shortcut + x)


def test_drop_path_residual_gradients_equal_autograds_bitwise():
    """bf16 branch, float32 shortcut (an autocast's): the custom backward
    gives autograd's gradients of addcmul(shortcut, x.div(keep), factor)
    bit for bit, with one operator fewer."""
    torch.manual_seed(0)
    drop = DropPath(0.3).train()
    shortcut = torch.randn(64, 8, requires_grad=True)
    x = torch.randn(64, 8, dtype=torch.bfloat16, requires_grad=True)
    factor = (torch.rand(64, 1) + 0.7).floor()
    grad = torch.randn(64, 8)

    def run(fn):
        out = fn()
        return [out] + list(torch.autograd.grad(out, (shortcut, x), grad))

    ours = run(lambda: joint_residual_add(shortcut, x, drop, factor))
    ref = run(lambda: torch.addcmul(shortcut, x.div(0.7), factor))
    for a, b in zip(ours, ref):
        assert a.dtype == b.dtype and torch.equal(a, b)
    ops = [
        sum(count_ops(lambda: run(fn)).values())
        for fn in (lambda: joint_residual_add(shortcut, x, drop, factor),
                   lambda: torch.addcmul(shortcut, x.div(0.7), factor))
    ]
    assert ops[0] < ops[1], ops


def _step(model, joint, video, image, masks):
    """Outputs and gradients of both streams, jointly or one by one."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(7)
    if joint:
        outs = model([video, image], masks)
    else:
        outs = (model(video, masks[0]), model(image, masks[1]))
    sum(o.square().sum() for o in outs).backward()
    return [o.detach() for o in outs], {
        name: p.grad.clone()
        for name, p in model.named_parameters() if p.grad is not None
    }


def _inputs(size, frames=8):
    torch.manual_seed(1)
    video = torch.randn(2, 3, frames, size, size)
    image = torch.randn(3, 3, size, size)
    grid = size // 16
    masks = (torch.rand(2, frames // 2, grid, grid)
             > 0.5, torch.rand(3, grid, grid) > 0.5)
    return video, image, masks


@pytest.mark.parametrize('fused', [True, False])
@pytest.mark.parametrize('official', [True, False])
@pytest.mark.parametrize('size', [64, 80])
def test_joint_streams_equal_separate_passes(fused, official, size,
                                             monkeypatch):
    """Both streams in one call: the outputs and gradients of one call per
    stream through mmaction2's block layout, swin_block_forward (64 px:
    every stage joint; 80 px: the padded stages run per stream)."""
    model = tiny_backbone(
        fused_attention=fused, official_image_path=official).train()
    calls = []
    block = joint_streams.joint_block_forward
    monkeypatch.setattr(joint_streams, 'joint_block_forward',
                        lambda *a: calls.append(len(a[2])) or block(*a))
    video, image, masks = _inputs(size)
    with monkeypatch.context() as patch:  # every stage per block layout
        patch.setattr(joint_streams, 'fits_windows', lambda *a: False)
        outs_a, grads_a = _step(model, False, video, image, masks)
    assert not calls
    outs_b, grads_b = _step(model, True, video, image, masks)
    # 8 blocks; at 80 px stages 2 and 3 (10x10 and 5x5 maps, window 4) pad
    assert calls == [2] * (8 if size == 64 else 4)
    # one stream alone goes through the joint block too where nothing pads
    calls.clear()
    outs_c, _ = _step(model, False, video, image, masks)
    assert calls == [1] * (16 if size == 64 else 8)
    for a, c in zip(outs_a, outs_c):
        torch.testing.assert_close(c, a, atol=1e-5, rtol=1e-5)
    for a, b in zip(outs_a, outs_b):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    assert_grads_close(grads_b, grads_a, 1e-5)


def test_joint_streams_with_cp_drop_path_and_autocast():
    model = tiny_backbone(drop_path_rate=0.3).train()
    video, image, masks = _inputs(64)
    ref = copy.deepcopy(model)
    model.with_cp = True  # the checkpointed blocks redraw the same drops
    outs_a, grads_a = _step(ref, True, video, image, masks)
    outs_b, grads_b = _step(model, True, video, image, masks)
    for a, b in zip(outs_a, outs_b):
        assert torch.equal(a, b)
    for name, grad in grads_a.items():
        torch.testing.assert_close(grads_b[name], grad, msg=name)
    model = tiny_backbone().train()
    with torch.autocast('cpu', torch.bfloat16):
        outs_a, _ = _step(model, False, video, image, masks)
        outs_b, _ = _step(model, True, video, image, masks)
    for a, b in zip(outs_a, outs_b):
        assert b.dtype == a.dtype
        torch.testing.assert_close(b.float(), a.float(), atol=0.1, rtol=0.05)


def test_joint_streams_run_fewer_operators():
    model = tiny_backbone(fused_attention=False).train()
    video, image, masks = _inputs(64)

    def total(joint):
        counts = count_ops(lambda: _step(model, joint, video, image, masks))
        return sum(n for k, n in counts.items() if '.' not in k)

    separate, joint = total(False), total(True)
    assert joint < 0.85 * separate, (joint, separate)


def test_joint_streams_bad_input():
    model = tiny_backbone()
    video, image, masks = _inputs(64)
    with pytest.raises(ValueError, match='one mask'):
        model([video, image], masks[:1])
    with pytest.raises(ValueError, match='one mask'):
        model([], None)
    with pytest.raises(ValueError, match='clips'):
        model([video, image[0]])
    assert [o.shape for o in model((video, image))] == [(2, 128, 128),
                                                        (3, 16, 128)]


def test_compiled_graph_holds_the_window_indices_as_constants():
    """Under torch.compile the cached window orders are constants of the
    graph (built once when traced), not rebuilt in it at every call."""
    model = tiny_backbone(drop_path_rate=0.1).train()
    video, image, masks = _inputs(64)
    explained = torch._dynamo.explain(model)([video, image], masks)
    assert explained.graph_count == 1 and explained.graph_break_count == 0
    code = '\n'.join(graph.code for graph in explained.graphs)
    assert 'arange' not in code and 'roll' not in code


@pytest.mark.parametrize('fused', [True, False])
def test_one_cast_one_bias_read_one_merge_copy(fused, monkeypatch):
    """Under a bf16 autocast, the joint block's weights cast together
    (``cast_together``), both streams' biases read at once and the patch
    merging's one-copy gather give the outputs of one cast per weight,
    per-stream reads and mmaction2's merging bitwise (gradients: the bias
    table's sums in another order), with fewer operators."""
    from bevt.models.backbones import bevt_swin
    from bevt.models.backbones.relative_position import relative_position_bias

    model = tiny_backbone(fused_attention=fused).train()
    video, image, masks = _inputs(64)

    def run():
        with torch.autocast('cpu', torch.bfloat16):
            return _step(model, True, video, image, masks)

    outs, grads = run()
    ops = sum(n for k, n in count_ops(run).items() if '.' not in k)

    def cast_each(tensors, device_type):  # as autocast, one at a time
        dtype = torch.get_autocast_dtype(device_type)
        return tuple(None if t is None else t.to(dtype) for t in tensors)

    monkeypatch.setattr(joint_streams, 'cast_together', cast_each)
    monkeypatch.setattr(
        joint_streams, 'relative_position_biases',
        lambda attn, sizes: [relative_position_bias(attn, n) for n in sizes])

    def merge_by_slices(merging, maps):  # mmaction2's gather, same norm
        weight, bias = cast_each(
            layer_norm_params(merging.norm, maps[0]),
            'cpu')  # once for all maps
        outs = []
        for x in maps:
            x = torch.cat(
                [x[:, :, i::2, j::2] for j in (0, 1) for i in (0, 1)], -1)
            outs.append(
                merging.reduction(
                    norm_in_autocast_dtype(merging.norm, x, weight, bias)))
        return outs

    monkeypatch.setattr(bevt_swin, 'merge_patches', merge_by_slices)
    ref_outs, ref_grads = run()
    ref_ops = sum(n for k, n in count_ops(run).items() if '.' not in k)
    for out, ref in zip(outs, ref_outs):
        assert out.dtype == torch.bfloat16 and torch.equal(out, ref)
    assert_grads_close(grads, ref_grads, 1e-5)
    # per block: 12 casts of the linears' and 4 of the norms' weights less
    # one cat and cast, and an index_select (+ their backward); per merge
    # and stream: 6 operators
    assert ref_ops - ops >= 8 * 15 + 2 * 2 * 6, (ops, ref_ops)


def test_compiled_joint_streams_train_under_autocast():
    """torch.compile (AOTAutograd, as inductor uses it) of the joint pass
    under a bf16 autocast, with stochastic depth: the custom autograd
    functions (cast_together, the bias read, the drop-path residual) and
    the per-stage keep probabilities trace, and the outputs and gradients
    are eager's."""
    model = tiny_backbone(drop_path_rate=0.1, fused_attention=True).train()
    video, image, masks = _inputs(64)

    def run(module):
        with torch.autocast('cpu', torch.bfloat16):
            return _step(module, True, video, image, masks)

    outs, grads = run(model)
    model.compile(backend='aot_eager')  # in place: the same names
    compiled_outs, compiled_grads = run(model)
    for out, ref in zip(compiled_outs, outs):
        torch.testing.assert_close(out, ref, atol=0.05, rtol=0.05)
    assert_grads_close(compiled_grads, grads, 0.05)


def test_cuda_autocast_casts_no_bf16_stream_for_its_norms(monkeypatch):
    """Under CUDA's bf16 autocast (on fake CUDA tensors: no GPU needed), the
    norms of a bf16 stream (stages 2-4 of each block, and the merging of
    stages 2 and 3) run in bf16: 4 casts of activations fewer per block and
    2 per merge and stream in the forward than under autocast's float32
    LayerNorm, which the check emulates (all norm inputs float32)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from bevt.utils.benchmarking import fake_cuda_autocast

    class NormInputs(TorchDispatchMode):

        def __init__(self):
            super().__init__()
            self.dtypes = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket.__name__ == 'native_layer_norm':
                self.dtypes.append(args[0].dtype)
            return func(*args, **(kwargs or {}))

    def forward():
        model = tiny_backbone(fused_attention=True).train()
        with fake_cuda_autocast(model) as device:
            video = torch.randn(2, 3, 8, 64, 64, device=device)
            image = torch.randn(3, 3, 64, 64, device=device)
            masks = (torch.rand(2, 4, 4, 4, device=device)
                     > 0.5, torch.rand(3, 4, 4, device=device) > 0.5)
            with NormInputs() as norms:
                counts = count_ops(lambda: model([video, image], masks))
            outs = model([video, image], masks)
        assert [o.device.type for o in outs] == ['cuda', 'cuda']
        assert 'device' not in counts  # fake tensors' prim::device
        return counts.get('_to_copy', 0), norms.dtypes

    casts, dtypes = forward()
    # patch embeddings, final norms and the first stage's blocks and merge
    # see the float32 stream of the patch embedding's norm
    assert dtypes.count(torch.bfloat16) == 3 * 2 * 2 + 2 * 2
    monkeypatch.setattr(joint_streams, 'norm_in_autocast_dtype',
                        lambda norm, x, weight, bias: norm(x))
    monkeypatch.setattr(window_tokens, 'norm_in_autocast_dtype',
                        lambda norm, x, weight, bias: norm(x))
    policy_casts, policy_dtypes = forward()
    assert set(policy_dtypes) == {torch.float32}  # CUDA's autocast applied
    assert policy_casts - casts >= 4 * 6 + 2 * 2 * 2, (casts, policy_casts)
