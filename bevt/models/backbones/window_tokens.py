# Copyright (c) bevt contributors. All rights reserved.
"""Shifted-window partition and reverse as one token gather each.

mmaction2's Swin block moves its tokens into windows with a cyclic shift
(``torch.roll``) followed by ``window_partition`` (a permuted copy), and
back with ``window_reverse`` (another permuted copy), the opposite roll and,
for padded maps, a cropping copy: two or three full passes over the
features each way, and as many again in the backward. Every one of these
steps only moves tokens, so their composition is a fixed permutation of
the flattened (D, H, W) map for a given size, window and shift. Here it is
computed once per shape (:func:`window_token_order`) and applied with one
``index_select`` (:func:`partition_tokens`, :func:`reverse_tokens`), whose
backward is the inverse gather (:class:`GatherTokens`) rather than
``index_select``'s accumulating ``index_add``. Values are copied, never
computed, so the result is bitwise that of roll + partition (and of
reverse + roll + crop). Patch merging's 2x2 gather is one copy too
(:func:`merge_patches`).
"""
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmaction.models.backbones.swin import PatchMerging, window_partition
from torch import Tensor

from bevt.models.utils import (cast_together, layer_norm_params,
                               norm_in_autocast_dtype)


def padded_size(size: Sequence[int], window: Sequence[int]) -> List[int]:
    """Each side of ``size`` rounded up to a multiple of ``window``."""
    return [-(-s // w) * w for s, w in zip(size, window)]


@torch.compiler.assume_constant_result
def window_token_order(size: Tuple[int, int, int],
                       window: Tuple[int, int, int], shift: Tuple[int, int,
                                                                  int],
                       device: torch.device) -> Tuple[Tensor, Tensor, Tensor]:
    """Token indices of the shifted-window layout of a (D, H, W) map.

    Cached per layout (:func:`_window_token_order`); under
    ``torch.compile`` the indices are constants of the graph, built once
    when it is traced (the cache itself would be traced through and the
    indices rebuilt at every call).

    Args:
        size (tuple[int]): Map size (D, H, W) before padding.
        window (tuple[int]): Window (Wd, Wh, Ww) in use.
        shift (tuple[int]): Cyclic shift (Sd, Sh, Sw); zeros for W-MSA.
        device (torch.device): Device of the indices.

    Returns:
        tuple[Tensor]: Three int64 index vectors:

        - ``order`` (Dp*Hp*Wp,): slot i of the windows (window-major, as
          ``window_partition``) holds token ``order[i]`` of the padded map
          (Dp, Hp, Wp) flattened, after the roll by ``-shift``;
        - ``inverse`` (Dp*Hp*Wp,): token p of the padded map is in slot
          ``inverse[p]`` (``window_reverse`` and the roll back);
        - ``crop`` (D*H*W,): ``inverse`` at the tokens of the unpadded
          map only (``inverse`` itself when nothing is padded).
    """
    return _window_token_order(size, window, shift, device)


@lru_cache(maxsize=128)
def _window_token_order(size: Tuple[int, int, int],
                        window: Tuple[int, int, int], shift: Tuple[int, int,
                                                                   int],
                        device: torch.device) -> Tuple[Tensor, Tensor, Tensor]:
    """:func:`window_token_order`, computed."""
    padded = padded_size(size, window)
    tokens = torch.arange(padded[0] * padded[1] * padded[2])
    grid = tokens.view(1, *padded, 1)
    if any(shift):
        grid = torch.roll(grid, shifts=[-s for s in shift], dims=(1, 2, 3))
    order = window_partition(grid, window).flatten()
    inverse = torch.empty_like(order)
    inverse[order] = tokens
    crop = inverse.view(padded)[:size[0], :size[1], :size[2]].flatten()
    return order.to(device), inverse.to(device), crop.to(device)


class GatherTokens(torch.autograd.Function):
    """``x.index_select(1, index)`` for an index without repeats.

    The backward writes the gradient back by the same index: with
    ``inverse`` (``index`` is a permutation of dim 1) one more gather,
    otherwise an ``index_copy_`` into zeros. ``index_select``'s own backward
    is an ``index_add_``, which accumulates (atomics on CUDA) although no
    two outputs share a source.
    """

    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor,
                inverse: Optional[Tensor]) -> Tensor:
        ctx.save_for_backward(index, inverse)
        ctx.source_len = x.shape[1]
        return x.index_select(1, index)

    @staticmethod
    def backward(ctx, grad: Tensor):
        index, inverse = ctx.saved_tensors
        if inverse is not None:
            return grad.index_select(1, inverse), None, None
        shape = list(grad.shape)
        shape[1] = ctx.source_len
        return grad.new_zeros(shape).index_copy_(1, index, grad), None, None


def partition_tokens(x: Tensor, window: Sequence[int], shift: Sequence[int],
                     size: Sequence[int]) -> Tensor:
    """Roll by ``-shift`` and ``window_partition`` in one gather.

    Args:
        x (Tensor): Padded map (B, Dp, Hp, Wp, C).
        window (Sequence[int]): Window (Wd, Wh, Ww).
        shift (Sequence[int]): Cyclic shift (Sd, Sh, Sw).
        size (Sequence[int]): Map size (D, H, W) before padding.

    Returns:
        Tensor: Windows (B*nW, Wd*Wh*Ww, C).
    """
    B, C = x.shape[0], x.shape[-1]
    order, inverse, _ = window_token_order(
        tuple(size), tuple(window), tuple(shift), x.device)
    tokens = GatherTokens.apply(x.reshape(B, -1, C), order, inverse)
    return tokens.view(-1, window[0] * window[1] * window[2], C)


def reverse_tokens(windows: Tensor, window: Sequence[int],
                   shift: Sequence[int], size: Sequence[int],
                   batch: int) -> Tensor:
    """``window_reverse``, the roll by ``shift`` and the crop to ``size`` in
    one gather.

    Args:
        windows (Tensor): Windows (B*nW, Wd*Wh*Ww, C).
        window (Sequence[int]): Window (Wd, Wh, Ww).
        shift (Sequence[int]): Cyclic shift (Sd, Sh, Sw).
        size (Sequence[int]): Map size (D, H, W) before padding.
        batch (int): B.

    Returns:
        Tensor: Map (B, D, H, W, C).
    """
    C = windows.shape[-1]
    order, _, crop = window_token_order(
        tuple(size), tuple(window), tuple(shift), windows.device)
    permutation = crop.numel() == order.numel()  # nothing padded
    tokens = GatherTokens.apply(
        windows.reshape(batch, -1, C), crop, order if permutation else None)
    return tokens.view(batch, *size, C)


def merge_patches(merging: PatchMerging,
                  maps: Sequence[Tensor]) -> List[Tensor]:
    """``PatchMerging.forward`` of each of ``maps``, its 2x2 neighbourhoods
    gathered by one copy.

    mmaction2's merging takes the four strided slices ``x[:, :, i::2, j::2]``
    and concatenates them along the channels; in the backward each slice
    becomes a zero-filled copy of the whole map, and three additions sum
    them (8 operators; on CUDA, kernel launches). The concatenation is a
    permutation of each 2x2 neighbourhood's channels, (w-offset, h-offset,
    C), so here one permuted copy makes it (its backward: one copy back).
    The values are copied, not computed: bitwise the same result.

    Under an autocast the norm of a map already in its dtype runs in it
    (:func:`~bevt.models.utils.norm_in_autocast_dtype`); its weights are
    cast with the reduction's, in one cast for all maps (as autocast casts
    the reduction's weight once for all, its cache).

    Args:
        merging (PatchMerging): The stage's ``downsample`` (weights).
        maps (Sequence[Tensor]): Maps (B, D, H, W, C), e.g. one per stream.

    Returns:
        list[Tensor]: Per map (B, D, ceil(H/2), ceil(W/2), out_channels).
    """
    maps = [_neighbourhoods(x) for x in maps]
    norm_w, norm_b = layer_norm_params(merging.norm, maps[0])
    weight = merging.reduction.weight
    if norm_w is not None or norm_b is not None:
        norm_w, norm_b, weight = cast_together([norm_w, norm_b, weight],
                                               maps[0].device.type)
    return [
        F.linear(
            norm_in_autocast_dtype(merging.norm, x, norm_w, norm_b), weight,
            merging.reduction.bias) for x in maps
    ]


def _neighbourhoods(x: Tensor) -> Tensor:
    """(B, D, H, W, C) -> (B, D, ceil(H/2), ceil(W/2), 4C) in the channel
    order of mmaction2's ``PatchMerging`` (:func:`merge_patches`)."""
    B, D, H, W, C = x.shape
    if H % 2 or W % 2:  # as mmaction2: pad the bottom / right by one
        x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
    H2, W2 = x.shape[2] // 2, x.shape[3] // 2
    # (B, D, H2, dh, W2, dw, C) -> (B, D, H2, W2, dw, dh, C): the order
    # of mmaction2's cat of x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], ...
    x = x.view(B, D, H2, 2, W2, 2, C).permute(0, 1, 2, 4, 5, 3, 6)
    return x.reshape(B, D, H2, W2, 4 * C)
