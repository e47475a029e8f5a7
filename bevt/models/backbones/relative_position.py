# Copyright (c) bevt contributors. All rights reserved.
"""The relative-position bias of Video Swin's window attention."""
from typing import Dict, List, Sequence, Tuple

import torch
from mmaction.models.backbones.swin import WindowAttention3D
from torch import Tensor


def flat_position_index(attn: WindowAttention3D,
                        sizes: Sequence[int]) -> Tensor:
    """``cat([index[:N, :N].reshape(-1) for N in sizes])`` of ``attn``'s
    ``relative_position_index``, computed once per index buffer.

    ``index[:N, :N]`` for a window smaller than the configured one (the
    image stream's 1x7x7 in a 8x7x7 model) is a copy, one operator per
    block and step. The result is kept on the module until the buffer
    changes (another tensor, e.g. after ``.to()``, or an in-place update:
    its version counter). Under ``torch.compile`` it is computed in the
    graph.

    Args:
        attn (WindowAttention3D): The attention module.
        sizes (Sequence[int]): Tokens per window N of each read.

    Returns:
        Tensor: int64 (sum of N*N, ).
    """
    index = attn.relative_position_index
    sizes = tuple(sizes)

    def flatten() -> Tensor:
        return torch.cat([index[:n, :n].reshape(-1) for n in sizes])

    if torch.compiler.is_compiling():
        return flatten()
    cache: Dict[Tuple[int, ...], Tuple[tuple, Tensor]] = \
        attn.__dict__.setdefault('_bevt_flat_index', {})
    stamp = (index.data_ptr(), index.device, index._version)
    cached = cache.get(sizes)
    if cached is None or cached[0] != stamp:
        # a normal tensor even if first read under inference_mode: the
        # index_select of a later training step saves it for its backward
        with torch.inference_mode(False):
            cached = cache[sizes] = (stamp, flatten())
    return cached[1]


class _ReadTable(torch.autograd.Function):
    """``table.t().index_select(1, index)``, its gradient made in the
    table's own (T, nH) layout.

    Through autograd the gradient would be the transpose of an (nH, T)
    tensor, which ``AccumulateGrad`` copies into a new contiguous one (two
    more operators per block). On CUDA the ``index_add`` writes through the
    transposed view of a (T, nH) tensor; on CPU that is 3-6x slower than
    into (nH, T), so there the sum is made in (nH, T) and copied once.
    """

    @staticmethod
    def forward(ctx, table: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(index)
        ctx.rows = table.shape[0]
        return table.t().index_select(1, index)  # (nH, M)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tuple[Tensor, None]:
        index, = ctx.saved_tensors
        if grad.is_cuda:
            out = grad.new_zeros(ctx.rows, grad.shape[0])  # (T, nH)
            out.t().index_add_(1, index, grad)
            return out, None
        out = grad.new_zeros(grad.shape[0], ctx.rows)  # (nH, T)
        return out.index_add_(1, index, grad).t().contiguous(), None


def relative_position_biases(attn: WindowAttention3D,
                             sizes: Sequence[int]) -> List[Tensor]:
    """The relative-position bias of windows of each of ``sizes`` tokens,
    read from the table at once.

    The same values as mmaction2's ``table[index[:N, :N]]`` followed by
    ``permute(2, 0, 1)`` for each N, read along the transposed table
    instead (:class:`_ReadTable`): the backward is then one ``index_add``
    rather than the serial accumulating ``index_put`` of ``table[index]``,
    about 10x faster on CPU at 12 heads (22 ms -> 2 ms per Swin-T stage-3
    block) with no (N, N, nH) -> (nH, N, N) copy. The joint block reads the
    biases of both streams' windows with one ``index_select`` (one
    ``index_add`` back) instead of one per stream.

    Args:
        attn (WindowAttention3D): The attention module (table and index).
        sizes (Sequence[int]): Tokens per window N (Wd*Wh*Ww of each
            window in use).

    Returns:
        list[Tensor]: Views of shape (nH, N, N), one per size.
    """
    index = flat_position_index(attn, sizes)
    table = attn.relative_position_bias_table  # (T, nH)
    flat = _ReadTable.apply(table, index)  # (nH, sum N*N)
    if len(sizes) == 1:
        return [flat.view(-1, sizes[0], sizes[0])]
    return [
        part.view(-1, n, n)
        for part, n in zip(flat.split([n * n for n in sizes], 1), sizes)
    ]


def relative_position_bias(attn: WindowAttention3D, N: int) -> Tensor:
    """The relative-position bias of the first ``N`` window positions
    (:func:`relative_position_biases` of one size).

    Args:
        attn (WindowAttention3D): The attention module (table and index).
        N (int): Tokens per window (Wd*Wh*Ww of the window in use).

    Returns:
        Tensor: Shape (nH, N, N).
    """
    return relative_position_biases(attn, (N, ))[0]


class _MaskedBias(torch.autograd.Function):
    """``(bias.unsqueeze(0) + mask.unsqueeze(1)).to(dtype)`` in one
    operator each way: the sum made in float32 and written in ``dtype``
    (``add(..., out=)``), and the gradient summed over the windows in float32
    from the ``dtype`` one (``sum(dtype=)``), where autograd takes an add and
    a cast forward, and a cast and a sum back."""

    @staticmethod
    def forward(ctx, bias: Tensor, mask: Tensor, dtype: torch.dtype) -> Tensor:
        ctx.source = bias.dtype
        out = bias.new_empty(
            (mask.shape[0], ) + tuple(bias.shape), dtype=dtype)
        return torch.add(bias.unsqueeze(0), mask.unsqueeze(1), out=out)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tuple[Tensor, None, None]:
        return grad.sum(0, dtype=ctx.source), None, None


def masked_bias(bias: Tensor, mask: Tensor, dtype: torch.dtype) -> Tensor:
    """A window attention's additive mask: the relative-position bias plus
    the shifted-window mask of each window, in the dtype of the attention.

    The same values as ``(bias.unsqueeze(0) + mask.unsqueeze(1)).to(dtype)``
    (bitwise: the sum in the inputs' dtype, rounded once), and the same
    gradient up to the order of the sum over the windows, with one operator
    each way instead of two (:class:`_MaskedBias`); under an autocast
    (``dtype`` below the bias's), the (nW, nH, N, N) sum is not written in
    float32 and read again, nor its gradient. Under ``torch.compile``, and
    when no cast is needed, it is autograd's formula.

    Args:
        bias (Tensor): (nH, N, N) relative-position bias, float32.
        mask (Tensor): (nW, N, N) additive shift mask (not trained).
        dtype (torch.dtype): The attention's dtype (e.g. bf16 under an
            autocast).

    Returns:
        Tensor: (nW, nH, N, N) in ``dtype``.
    """
    if dtype == bias.dtype or torch.compiler.is_compiling() or \
            mask.requires_grad or mask.dtype != bias.dtype:
        return (bias.unsqueeze(0) + mask.unsqueeze(1)).to(dtype)
    return _MaskedBias.apply(bias, mask, dtype)
