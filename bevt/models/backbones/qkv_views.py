# Copyright (c) bevt contributors. All rights reserved.
"""Query, key and value as views of the ``qkv`` rows, with a cheap
backward."""
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch._subclasses.fake_tensor import is_fake


def _packed(grads: Tuple[Tensor, ...], shape: torch.Size,
            heads: int) -> Optional[Tensor]:
    """The (B*nW, N, 3C) tensor whose (.., 3, nH, C/nH) slices ``grads``
    are, if they are exactly that; else None."""
    if torch.compiler.is_compiling() or any(
            is_fake(grad) or grad.layout != torch.strided for grad in grads):
        return None  # no storage to compare
    num, N, C3 = shape
    dim = C3 // 3 // heads
    strides = (N * C3, dim, C3, 1)  # of (B*nW, nH, N, C/nH) views of rows
    first = grads[0]
    for i, grad in enumerate(grads):
        if grad.stride() != strides or grad.dtype != first.dtype or \
                grad.untyped_storage().data_ptr() != \
                first.untyped_storage().data_ptr() or \
                grad.storage_offset() != first.storage_offset() + \
                i * heads * dim:
            return None
    return first.as_strided(shape, (N * C3, C3, 1))


class _SplitQKV(torch.autograd.Function):
    """(B*nW, N, 3C) rows -> q, k, v views (B*nW, nH, N, C/nH).

    Through ``view``/``permute``/``unbind`` the backward is a ``stack`` of
    the three gradients and a copy back into the rows' layout. Here it is
    one ``stack`` straight into that layout, or nothing at all when the
    gradients already are the slices of one tensor in it. PyTorch's ROCm
    memory-efficient attention allocates them so when q, k and v share a
    storage; its CUDA kernel (PyTorch 2.11 on an H100, measured) returns
    three separate (B*nW, N, nH, d) tensors, so there it is the one
    ``stack``.
    """

    @staticmethod
    def forward(ctx, qkv: Tensor, heads: int) -> Tuple[Tensor, ...]:
        ctx.shape, ctx.heads = qkv.shape, heads
        num, N, C3 = qkv.shape
        return qkv.reshape(num, N, 3, heads,
                           C3 // 3 // heads).permute(2, 0, 3, 1, 4).unbind(0)

    @staticmethod
    def backward(ctx, *grads: Tensor) -> Tuple[Tensor, None]:
        packed = _packed(grads, ctx.shape, ctx.heads)
        if packed is not None:
            return packed, None
        # (B*nW, nH, N, C/nH) x 3 -> (B*nW, N, 3, nH, C/nH), one copy
        rows = torch.stack([grad.transpose(1, 2) for grad in grads], dim=2)
        return rows.view(ctx.shape), None


def split_qkv(qkv: Tensor, heads: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Query, key and value of window rows as views, as mmaction2's
    ``qkv.reshape(B_, N, 3, nH, C/nH).permute(2, 0, 3, 1, 4)`` (no copy
    for contiguous rows), with a cheaper backward (:class:`_SplitQKV`).

    Args:
        qkv (Tensor): (B*nW, N, 3C) output of the ``qkv`` linear.
        heads (int): nH.

    Returns:
        tuple[Tensor]: q, k, v, each (B*nW, nH, N, C/nH).
    """
    return _SplitQKV.apply(qkv, heads)
