# Copyright (c) bevt contributors. All rights reserved.
"""Functional forward passes over mmaction2's Video Swin modules.

BEVT runs two streams (clips and images) through the *same* Swin blocks of
mmaction2's :class:`~mmaction.models.backbones.SwinTransformer3D`, with a
window, a shift and an attention mask chosen per stream (the official image
path differs from the video path, see :func:`stream_window_and_shift`). The
library's ``SwinTransformerBlock3D.forward`` chooses them itself, so these
functions drive the block's own sub-modules (``norm1``, ``attn``, ``mlp``,
...) instead; the weights and state-dict names stay mmaction2's.

Window attention can run through
:func:`torch.nn.functional.scaled_dot_product_attention` (fused) with the
relative-position bias and the shift mask as its additive mask, or through
the eager formula of mmaction2's ``WindowAttention3D.forward``
(:func:`eager_window_attention`). Both read the relative-position bias
with :func:`~.relative_position.relative_position_bias`, whose backward is
much cheaper on CPU than that of mmaction2's ``table[index]``.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmaction.models.backbones.swin import (SwinTransformerBlock3D,
                                            WindowAttention3D, compute_mask,
                                            window_partition, window_reverse)
from mmcv.cnn.bricks import DropPath
from torch import Tensor

from .qkv_views import split_qkv
from .relative_position import masked_bias, relative_position_bias
from .window_tokens import padded_size, partition_tokens, reverse_tokens


def stream_window_and_shift(size: Sequence[int], window_size: Sequence[int],
                            shift_size: Sequence[int],
                            keep_shift_at_window_size: bool
                            ) -> Tuple[Tuple[int], Tuple[int]]:
    """The window and shift a stage uses for a feature map of ``size``.

    As mmaction2's ``get_window_size``: a dimension no larger than the
    window becomes one window and is not shifted. With
    ``keep_shift_at_window_size`` (the official image path, quirk B) a
    dimension *equal* to the window keeps its shift; only smaller ones are
    clamped.

    Args:
        size (Sequence[int]): Feature map size (D, H, W).
        window_size (Sequence[int]): Configured window (Wd, Wh, Ww).
        shift_size (Sequence[int]): Configured shift (Sd, Sh, Sw).
        keep_shift_at_window_size (bool): Reproduce official quirk B.

    Returns:
        tuple: The window (Wd, Wh, Ww) and shift (Sd, Sh, Sw) to use.
    """
    window, shift = list(window_size), list(shift_size)
    for i, s in enumerate(size):
        clamp = s < window_size[i] if keep_shift_at_window_size \
            else s <= window_size[i]
        if clamp:
            window[i], shift[i] = s, 0
    return tuple(window), tuple(shift)


def shift_attention_mask(size: Sequence[int], window: Sequence[int],
                         shift: Sequence[int],
                         device: torch.device) -> Optional[Tensor]:
    """The additive (0 / -100) shifted-window mask, cached per shape.

    Args:
        size (Sequence[int]): Feature map size (D, H, W) before padding.
        window (Sequence[int]): Window (Wd, Wh, Ww) in use.
        shift (Sequence[int]): Shift (Sd, Sh, Sw) the mask is built for.
        device (torch.device): Device of the mask.

    Returns:
        Tensor, optional: (num_windows, N, N) with N = Wd*Wh*Ww, or None
        when nothing is shifted (the mask would be all zeros).
    """
    if not any(s > 0 for s in shift):
        return None
    padded = padded_size(size, window)
    # mmaction2's compute_mask is lru-cached on its arguments
    return compute_mask(*padded, tuple(window), tuple(shift), device)


#: Bytes of attention scores (windows x heads x N x N, float32) that
#: :func:`eager_window_attention` computes at once on CPU: a block this size
#: stays in cache through the bias, mask, softmax and their backward (a
#: Swin-T stage-1 attention train step 1.9x faster, stage 2 1.6x, than one
#: (B*nW, nH, N, N) block; 4-16 MiB all gave about the same on a 2-core
#: EPYC with 32 MiB of L3).
EAGER_BLOCK_BYTES = 8 * 1024**2


def windows_per_block(num_batch_windows: int, windows: int, window_bytes: int,
                      block_bytes: int) -> int:
    """Windows per block of :func:`eager_window_attention`.

    As many as fit in ``block_bytes`` (at least one), and a divisor of
    ``windows`` (the windows of one sample) so that a block reads one
    contiguous slice of the shift mask.

    Args:
        num_batch_windows (int): B*nW windows in all.
        windows (int): nW windows per sample (1 without a mask).
        window_bytes (int): Bytes of the scores of one window.
        block_bytes (int): Target bytes per block.

    Returns:
        int: Windows per block.
    """
    per = max(1, min(num_batch_windows, block_bytes // window_bytes))
    if windows > 1:
        per = max(
            d for d in range(1,
                             min(per, windows) + 1) if windows % d == 0)
    return per


def eager_window_attention(attn: WindowAttention3D,
                           x: Tensor,
                           mask: Optional[Tensor] = None,
                           block_bytes: Optional[int] = None) -> Tensor:
    """``WindowAttention3D.forward``'s formula, faster on CPU.

    The operations of mmaction2's forward in the same order, with two
    changes that keep the result up to float rounding: the bias comes from
    :func:`relative_position_bias`, and with ``block_bytes`` the windows go
    through the scores, softmax and weighted sum in blocks of about that
    many bytes of scores (:func:`windows_per_block`) instead of all at once.

    Args:
        attn (WindowAttention3D): The block's attention module (weights).
        x (Tensor): Windows of shape (B*num_windows, N, C); the windows of
            one sample are consecutive.
        mask (Tensor, optional): Additive (0 / -100) mask of shape
            (num_windows, N, N). Defaults to None.
        block_bytes (int, optional): Bytes of scores per block, e.g.
            :data:`EAGER_BLOCK_BYTES`. Defaults to None (one block).

    Returns:
        Tensor: Shape (B*num_windows, N, C).
    """
    out = eager_attention_core(attn, attn.qkv(x), mask, block_bytes)
    return attn.proj_drop(attn.proj(out))


def eager_attention_core(attn: WindowAttention3D,
                         qkv: Tensor,
                         mask: Optional[Tensor] = None,
                         block_bytes: Optional[int] = None,
                         bias: Optional[Tensor] = None) -> Tensor:
    """:func:`eager_window_attention` between the ``qkv`` and the ``proj``
    linear: (B*num_windows, N, 3C) -> (B*num_windows, N, C); ``bias``: the
    (nH, N, N) relative-position bias if read already."""
    num_batch_windows, N, C3 = qkv.shape
    C, heads = C3 // 3, attn.num_heads
    q, k, v = split_qkv(qkv, heads)  # (B*nW, nH, N, C/nH)
    q = q * attn.scale
    if bias is None:
        bias = relative_position_bias(attn, N)  # (nH, N, N)
    windows = 1 if mask is None else mask.shape[0]
    per = num_batch_windows if block_bytes is None else windows_per_block(
        num_batch_windows, windows, heads * N * N *
        qkv.element_size(), block_bytes)
    outs = []
    for i, (qb, kb,
            vb) in enumerate(zip(q.split(per), k.split(per), v.split(per))):
        scores = qb @ kb.transpose(-2, -1) + bias  # (per, nH, N, N)
        if mask is not None:
            start = i * per % windows  # per divides windows
            block_mask = mask[start:start + per]  # (per, N, N)
            scores = scores.view(-1, block_mask.shape[0], heads, N, N) + \
                block_mask.unsqueeze(1)
            scores = scores.view(-1, heads, N, N)
        outs.append(attn.attn_drop(attn.softmax(scores)) @ vb)
    out = outs[0] if len(outs) == 1 else torch.cat(outs)
    return out.transpose(1, 2).reshape(num_batch_windows, N, C)


def fused_window_attention(attn: WindowAttention3D,
                           x: Tensor,
                           mask: Optional[Tensor] = None) -> Tensor:
    """``WindowAttention3D.forward`` through ``scaled_dot_product_attention``.

    The relative-position bias is read exactly as mmaction2 reads it (the
    ``[:N, :N]`` corner of the index) and added, with the shift mask, as the
    additive attention mask; the result equals the eager formula.

    Args:
        attn (WindowAttention3D): The block's attention module (weights).
        x (Tensor): Windows of shape (B*num_windows, N, C); the windows of
            one sample are consecutive.
        mask (Tensor, optional): Additive (0 / -100) mask of shape
            (num_windows, N, N). Defaults to None.

    Returns:
        Tensor: Shape (B*num_windows, N, C).
    """
    out = fused_attention_core(attn, attn.qkv(x), mask)
    return attn.proj_drop(attn.proj(out))


def fused_attention_core(attn: WindowAttention3D,
                         qkv: Tensor,
                         mask: Optional[Tensor] = None,
                         bias: Optional[Tensor] = None) -> Tensor:
    """:func:`fused_window_attention` between the ``qkv`` and the ``proj``
    linear: (B*num_windows, N, 3C) -> (B*num_windows, N, C); ``bias``: the
    (nH, N, N) relative-position bias if read already."""
    num_batch_windows, N, C3 = qkv.shape
    C, heads = C3 // 3, attn.num_heads
    windows = 1 if mask is None else mask.shape[0]
    batch = num_batch_windows // windows
    if bias is None:
        bias = relative_position_bias(attn, N)  # (nH, N, N)
    if mask is not None:
        bias = masked_bias(bias, mask, qkv.dtype)  # (nW, nH, N, N)
    per_window = mask is None or batch == 1
    if per_window:
        # the bias broadcasts over the (B*nW) windows as they come: q, k
        # and v are views of qkv, (B*nW, nH, N, C/nH), no copy
        q, k, v = split_qkv(qkv, heads)
        bias = bias.view(-1, heads, N, N)  # (1 or nW, nH, N, N)
    else:
        # (B*nW, N, 3C) -> 3 x (B, nW*nH, N, C/nH): one mask slice per
        # (window, head) pair, broadcast over the batch without copying
        # it; q, k and v are laid out by one copy
        qkv = qkv.view(batch, windows, N, 3, heads, C // heads)
        q, k, v = qkv.permute(3, 0, 1, 4, 2,
                              5).reshape(3, batch, windows * heads, N,
                                         C // heads).unbind(0)
        bias = bias.reshape(1, windows * heads, N, N)
    out = F.scaled_dot_product_attention(
        q,
        k,
        v,
        attn_mask=bias.to(q.dtype),
        dropout_p=attn.attn_drop.p if attn.training else 0.,
        scale=attn.scale)  # (B*nW, nH, N, C/nH) or (B, nW*nH, N, C/nH)
    if per_window:
        # CUDA's fused kernels lay their output out as (B*nW, N, nH, C/nH):
        # then this is a view, not a copy
        return out.transpose(1, 2).reshape(num_batch_windows, N, C)
    out = out.view(batch, windows, heads, N, C // heads).transpose(2, 3)
    return out.reshape(num_batch_windows, N, C)


def residual_add(shortcut: Tensor, x: Tensor, drop_path: nn.Module) -> Tensor:
    """``shortcut + drop_path(x)``, the scaling and the sum in one op.

    mmcv's ``DropPath`` (training, ``drop_prob > 0``) computes
    ``x.div(keep) * floor(keep + rand)``, then the block adds the shortcut:
    three passes over the features. This draws the same random numbers (same
    call, shape and dtype) and computes ``addcmul(shortcut, x.div(keep),
    floor(keep + rand))``: the factor is 0 or 1, so the product is exact and
    the result bitwise the same, one pass fewer (forward). Anything else
    (``nn.Identity``, eval mode) is ``shortcut + drop_path(x)``.

    Args:
        shortcut (Tensor): Residual input of shape (B, ...).
        x (Tensor): Branch output, the shape of ``shortcut``.
        drop_path (nn.Module): The block's ``drop_path``.

    Returns:
        Tensor: ``shortcut + drop_path(x)``.
    """
    drop_prob = getattr(drop_path, 'drop_prob', 0.)
    if not isinstance(drop_path, DropPath) or not drop_path.training \
            or drop_prob == 0.:
        return shortcut + drop_path(x)
    keep = 1 - drop_prob
    shape = (x.shape[0], ) + (1, ) * (x.ndim - 1)
    factor = keep + torch.rand(shape, dtype=x.dtype, device=x.device)
    factor.floor_()
    return torch.addcmul(shortcut, x.div(keep), factor)


def attention_core(attn: WindowAttention3D,
                   qkv: Tensor,
                   mask: Optional[Tensor],
                   attention: str,
                   bias: Optional[Tensor] = None) -> Tensor:
    """Window attention between the ``qkv`` and the ``proj`` linear by
    ``attention``, ``'fused'`` or ``'eager'`` (see
    :func:`swin_block_forward`): (B*nW, N, 3C) -> (B*nW, N, C); ``bias``:
    the (nH, N, N) relative-position bias if read already."""
    if attention == 'fused':
        return fused_attention_core(attn, qkv, mask, bias)
    block_bytes = EAGER_BLOCK_BYTES if qkv.device.type == 'cpu' else None
    return eager_attention_core(attn, qkv, mask, block_bytes, bias)


def window_attention(attn: WindowAttention3D, windows: Tensor,
                     mask: Optional[Tensor], attention: str) -> Tensor:
    """Window attention by ``attention``, ``'fused'`` or ``'eager'`` (see
    :func:`swin_block_forward`)."""
    out = attention_core(attn, attn.qkv(windows), mask, attention)
    return attn.proj_drop(attn.proj(out))


def swin_block_forward(block: SwinTransformerBlock3D,
                       x: Tensor,
                       window: Sequence[int],
                       shift: Sequence[int],
                       attn_mask: Optional[Tensor],
                       attention: str = 'fused') -> Tensor:
    """One Swin block with an explicit window, shift and attention mask.

    Same computation as ``SwinTransformerBlock3D.forward`` (pre-norm window
    attention and MLP with stochastic depth), except that the caller picks
    the window, the shift and whether the attention mask is applied (the
    official image path applies it in un-shifted blocks too).

    With ``'fused'`` or ``'eager'`` attention the tokens move in and out of
    the windows by one gather each
    (:func:`~bevt.models.backbones.window_tokens.partition_tokens`,
    instead of roll + partition and reverse + roll), the residuals are
    :func:`residual_add`, and under an autocast the normalised features are
    cast to its dtype *before* they are moved (the ``qkv`` linear would cast
    them to it anyway, so the values are the same and the gathers move half
    the bytes). The result is bitwise that of ``'reference'``'s layout with
    the same attention formula. ``'reference'`` keeps mmaction2's steps.

    Args:
        block (SwinTransformerBlock3D): The block (weights).
        x (Tensor): Features of shape (B, D, H, W, C).
        window (Sequence[int]): Window (Wd, Wh, Ww).
        shift (Sequence[int]): Cyclic shift (Sd, Sh, Sw); zeros for W-MSA.
        attn_mask (Tensor, optional): Additive mask (num_windows, N, N).
        attention (str): ``'fused'`` (:func:`fused_window_attention`),
            ``'eager'`` (:func:`eager_window_attention`, in blocks of
            :data:`EAGER_BLOCK_BYTES` on CPU) or ``'reference'``
            (mmaction2's ``WindowAttention3D.forward``, the official
            formula, and mmaction2's roll / partition / residual steps).
            Defaults to 'fused'.

    Returns:
        Tensor: Shape (B, D, H, W, C).
    """
    if attention not in ('fused', 'eager', 'reference'):
        raise ValueError(f'Invalid attention: {attention!r}; expected '
                         "'fused', 'eager' or 'reference'")
    if attention == 'reference':
        return reference_block_forward(block, x, window, shift, attn_mask)
    B, D, H, W, C = x.shape
    shortcut = x
    x = block.norm1(x)
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        x = x.to(torch.get_autocast_dtype(device_type))
    pads = [(w - s % w) % w for s, w in zip((D, H, W), window)]
    if any(pads):
        x = F.pad(x, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
    windows = partition_tokens(x, window, shift, (D, H, W))
    windows = window_attention(block.attn, windows, attn_mask, attention)
    x = reverse_tokens(windows, window, shift, (D, H, W), B)
    x = residual_add(shortcut, x, block.drop_path)
    return residual_add(x, block.mlp(block.norm2(x)), block.drop_path)


def reference_block_forward(block: SwinTransformerBlock3D, x: Tensor,
                            window: Sequence[int], shift: Sequence[int],
                            attn_mask: Optional[Tensor]) -> Tensor:
    """:func:`swin_block_forward` with mmaction2's own steps: roll,
    ``window_partition``, ``WindowAttention3D.forward``,
    ``window_reverse``, roll back, crop, ``shortcut + drop_path(x)``."""
    B, D, H, W, C = x.shape
    shortcut = x
    x = block.norm1(x)
    pads = [(w - s % w) % w for s, w in zip((D, H, W), window)]
    x = F.pad(x, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
    _, Dp, Hp, Wp, _ = x.shape
    shifted = any(s > 0 for s in shift)
    if shifted:
        x = torch.roll(x, shifts=[-s for s in shift], dims=(1, 2, 3))
    windows = window_partition(x, window)  # (B*nW, Wd*Wh*Ww, C)
    windows = block.attn(windows, mask=attn_mask)
    x = window_reverse(windows.view(-1, *window, C), window, B, Dp, Hp, Wp)
    if shifted:
        x = torch.roll(x, shifts=list(shift), dims=(1, 2, 3))
    if any(pads):
        x = x[:, :D, :H, :W].contiguous()
    x = shortcut + block.drop_path(x)
    return x + block.drop_path(block.mlp(block.norm2(x)))
