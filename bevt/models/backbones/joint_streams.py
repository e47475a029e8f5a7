# Copyright (c) bevt contributors. All rights reserved.
"""Both streams through a Swin block at once.

BEVT's video and image streams go through the *same* Swin blocks; the
official code (and :func:`~.swin3d_ops.swin_block_forward`) runs each
stream's whole backbone pass on its own. Only the window attention itself
differs between the streams (window, shift, mask, tokens per window): the
layer norms, the ``qkv`` / ``proj`` / MLP linears and the residuals act on
each token alone. Here the tokens of all streams form one flat (L, C)
tensor, stream after stream, so that those layers run once per block for
both streams: half their operators (on CUDA, kernel launches, which
bound a Swin-B step at 4 clips + 32 images; a third fewer operators per step
in all) and larger matrix products.
The windows of every stream are gathered from the flat tensor by one index
(:func:`joint_token_order`) and the attention runs per stream on its slice
of the ``qkv`` rows. The rows stay in window order through the blocks: one
gather takes them from one block's windows to the next block's
(:func:`joint_transition`), and one puts the tokens back after the stage.

Every value is that of the per-stream block up to float rounding (the
matrix products have more rows); with stochastic depth each sample still
keeps or drops a residual branch as a whole
(:func:`~.joint_drop_path.stage_drop_path_factors`).
"""
from functools import lru_cache
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmaction.models.backbones.swin import SwinTransformerBlock3D
from torch import Tensor

from bevt.models.utils import (cast_together, layer_norm_params,
                               norm_in_autocast_dtype)
from .joint_drop_path import (drop_prob, joint_residual_add,
                              stage_drop_path_factors)
from .relative_position import relative_position_biases
from .swin3d_ops import attention_core, swin_block_forward
from .window_tokens import GatherTokens, window_token_order


class StreamWindows(NamedTuple):
    """How one stream's tokens go through the attention of one block.

    Attributes:
        batch (int): Samples B of the stream.
        size (tuple[int]): Feature map (D, H, W); each side a multiple of
            the window (nothing padded).
        window (tuple[int]): Window (Wd, Wh, Ww) in use.
        shift (tuple[int]): Cyclic shift (Sd, Sh, Sw); zeros for W-MSA.
        mask (Tensor, optional): Additive attention mask (nW, N, N).
    """
    batch: int
    size: Tuple[int, int, int]
    window: Tuple[int, int, int]
    shift: Tuple[int, int, int]
    mask: Optional[Tensor]

    @property
    def tokens(self) -> int:
        """B*D*H*W: the stream's rows of the flat tensor."""
        return self.batch * self.size[0] * self.size[1] * self.size[2]


def fits_windows(size: Sequence[int], window: Sequence[int]) -> bool:
    """Whether a (D, H, W) map splits into windows with no padding."""
    return all(s % w == 0 for s, w in zip(size, window))


@torch.compiler.assume_constant_result
def joint_token_order(layouts: Tuple[Tuple[int, Tuple[int, ...],
                                           Tuple[int, ...], Tuple[int, ...]],
                                     ...],
                      device: torch.device) -> Tuple[Tensor, Tensor, Tensor]:
    """Token indices of the windows of several streams in one flat tensor.

    Cached per layout; a constant of the graph under ``torch.compile`` (see
    :func:`~.window_tokens.window_token_order`).

    Args:
        layouts (tuple): Per stream ``(batch, size, window, shift)`` (see
            :class:`StreamWindows`; sizes multiples of the windows).
        device (torch.device): Device of the indices.

    Returns:
        tuple[Tensor]: Three int64 vectors over the L = sum B*D*H*W rows:

        - ``order``: row i of the windows (stream after stream, each
          window-major as ``window_partition``) is token ``order[i]``;
        - ``inverse``: token p is in window row ``inverse[p]``;
        - ``sample``: the sample of token p, counted over all streams
          (0 .. sum B - 1), for per-sample stochastic depth.
    """
    return _joint_token_order(layouts, device)


@lru_cache(maxsize=128)
def _joint_token_order(layouts: tuple,
                       device: torch.device) -> Tuple[Tensor, Tensor, Tensor]:
    """:func:`joint_token_order`, computed."""
    orders, samples = [], []
    offset = first_sample = 0
    for batch, size, window, shift in layouts:
        tokens = size[0] * size[1] * size[2]
        order = window_token_order(size, window, shift, torch.device('cpu'))[0]
        starts = torch.arange(batch).unsqueeze(1) * tokens + offset
        orders.append((order.unsqueeze(0) + starts).flatten())
        samples.append(
            torch.arange(first_sample,
                         first_sample + batch).repeat_interleave(tokens))
        offset += batch * tokens
        first_sample += batch
    order = torch.cat(orders)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel())
    return order.to(device), inverse.to(device), torch.cat(samples).to(device)


def layout_key(streams: Sequence['StreamWindows']) -> tuple:
    """The :func:`joint_token_order` layout of ``streams`` (hashable)."""
    return tuple((s.batch, tuple(s.size), tuple(s.window), tuple(s.shift))
                 for s in streams)


@torch.compiler.assume_constant_result
def joint_transition(before: tuple, after: tuple,
                     device: torch.device) -> Tuple[Tensor, Tensor]:
    """Indices from the window rows of one layout to those of another.

    Consecutive blocks differ only in their window order (shifted or
    not); the per-token layers do not care about the order, so the rows
    go straight from one block's windows to the next block's by one
    gather, instead of back to the token order and out again. Cached per
    pair of layouts; a constant of the graph under ``torch.compile``.

    Args:
        before (tuple): :func:`layout_key` of the rows now.
        after (tuple): :func:`layout_key` wanted.
        device (torch.device): Device of the indices.

    Returns:
        tuple[Tensor]: ``index`` (row i after is row ``index[i]`` before)
        and its inverse, int64 (L, ) each.
    """
    return _joint_transition(before, after, device)


@lru_cache(maxsize=128)
def _joint_transition(before: tuple, after: tuple,
                      device: torch.device) -> Tuple[Tensor, Tensor]:
    """:func:`joint_transition`, computed."""
    order_a, inverse_a, _ = _joint_token_order(before, device)
    order_b, inverse_b, _ = _joint_token_order(after, device)
    return inverse_a[order_b], inverse_b[order_a]


def joint_block_forward(block: SwinTransformerBlock3D,
                        x: Tensor,
                        streams: Sequence[StreamWindows],
                        attention: str,
                        factors: Optional[Tensor] = None) -> Tensor:
    """One Swin block on the flat tokens of several streams.

    The per-token layers (``norm1``, ``qkv``, ``proj``, ``norm2``, MLP and
    the residuals) run once on all rows; the attention between ``qkv`` and
    ``proj`` runs per stream (:func:`~.swin3d_ops.attention_core`). The
    rows come and go in the block's window order (:func:`run_blocks`
    moves them), so the block itself gathers nothing. Under an autocast,
    rows already in its dtype are normalised in it
    (:func:`~bevt.models.utils.norm_in_autocast_dtype`).

    Args:
        block (SwinTransformerBlock3D): The block (weights).
        x (Tensor): Window rows (L, C) of every stream, stream after stream
            in the order of ``streams``, each window-major
            (:func:`joint_token_order` of ``streams``: ``tokens[order]``).
        streams (Sequence[StreamWindows]): Window, shift and mask of each
            stream in this block.
        attention (str): ``'fused'`` or ``'eager'``.
        factors (Tensor, optional): (2, L, 1) the block's drop-path
            factors (:func:`stage_drop_path_factors`); None keeps all.
            Defaults to None.

    Returns:
        Tensor: (L, C), in the same order.
    """
    if attention not in ('fused', 'eager'):
        raise ValueError(f'Invalid attention for joint streams: '
                         f"{attention!r}; expected 'fused' or 'eager'")
    rows = sum(s.tokens for s in streams)
    if rows != x.shape[0]:
        raise ValueError(f'{x.shape[0]} token rows, but the streams have '
                         f'{rows}')
    if drop_prob(block.drop_path) == 0.:
        factors = None  # e.g. nn.Identity
    attn, mlp = block.attn, block.mlp
    shortcut = x
    # the linears' weights as autocast would cast them, and the norms'
    # for a stream in the autocast dtype (norm_in_autocast_dtype), in one
    (qkv_w, qkv_b, proj_w, proj_b, fc1_w, fc1_b, fc2_w, fc2_b, norm1_w,
     norm1_b, norm2_w, norm2_b) = cast_together([
         attn.qkv.weight, attn.qkv.bias, attn.proj.weight, attn.proj.bias,
         mlp.fc1.weight, mlp.fc1.bias, mlp.fc2.weight, mlp.fc2.bias,
         *layer_norm_params(block.norm1, x),
         *layer_norm_params(block.norm2, x)
     ], x.device.type)
    # (L, 3C): window rows of every stream
    qkv = F.linear(
        norm_in_autocast_dtype(block.norm1, x, norm1_w, norm1_b), qkv_w, qkv_b)
    sizes = [s.window[0] * s.window[1] * s.window[2] for s in streams]
    biases = relative_position_biases(attn, sizes)  # one read: (nH, N, N)
    outs = []
    for s, n, bias, part in zip(streams, sizes, biases,
                                qkv.split([s.tokens for s in streams])):
        part = part.view(-1, n, qkv.shape[-1])
        outs.append(
            attention_core(attn, part, s.mask, attention, bias).flatten(0, 1))
    # split above and cat here, not slices: their backward is one cat and
    # one split, not a zero-filled copy per use
    out = outs[0] if len(outs) == 1 else torch.cat(outs)
    out = attn.proj_drop(F.linear(out, proj_w, proj_b))
    x = joint_residual_add(shortcut, out, block.drop_path,
                           None if factors is None else factors[0])
    # mmaction2's Mlp: fc1, act, drop, fc2, drop
    normed = norm_in_autocast_dtype(block.norm2, x, norm2_w, norm2_b)
    hidden = mlp.drop(mlp.act(F.linear(normed, fc1_w, fc1_b)))
    out = mlp.drop(F.linear(hidden, fc2_w, fc2_b))
    return joint_residual_add(x, out, block.drop_path,
                              None if factors is None else factors[1])


class StreamStage(NamedTuple):
    """A stream's attention settings in one stage.

    Attributes:
        window (tuple[int]): Window (Wd, Wh, Ww) in use.
        shift (tuple[int]): Shift (Sd, Sh, Sw) of the shifted blocks.
        mask (Tensor, optional): Shifted-window mask (nW, N, N), or None
            when nothing is shifted.
        mask_unshifted (bool): Apply ``mask`` in the un-shifted blocks too
            (the official image path, quirk A).
    """
    window: Tuple[int, int, int]
    shift: Tuple[int, int, int]
    mask: Optional[Tensor]
    mask_unshifted: bool

    def block_args(self, index: int) -> tuple:
        """(window, shift, mask) of block ``index`` (odd = shifted)."""
        shifted = index % 2 == 1
        return (self.window, self.shift if shifted else (0, 0, 0),
                self.mask if shifted or self.mask_unshifted else None)


def run_blocks(blocks: Sequence[SwinTransformerBlock3D],
               maps: List[Tensor],
               stages: Sequence[StreamStage],
               attention: str,
               with_cp: bool = False) -> List[Tensor]:
    """The blocks of one stage on the maps of one or more streams.

    With ``'fused'`` or ``'eager'`` attention and no padding (every side a
    multiple of its window), each block runs once on the flat tokens of
    all streams, one or several (:func:`joint_block_forward`: a single
    stream, e.g. fine-tuning, gets its cast-once weights, rows kept in
    window order and per-stage stochastic depth too); otherwise each
    stream runs the blocks on its own
    (:func:`~.swin3d_ops.swin_block_forward`).

    Args:
        blocks (Sequence[SwinTransformerBlock3D]): The stage's blocks.
        maps (list[Tensor]): Per stream (B, D, H, W, C). When the blocks
            run jointly, the list is emptied once its maps are copied into
            the flat tokens, so that they can be freed during the stage.
        stages (Sequence[StreamStage]): Per stream settings.
        attention (str): ``'fused'``, ``'eager'`` or ``'reference'``.
        with_cp (bool): Checkpoint every block when gradients are needed.
            Defaults to False.

    Returns:
        list[Tensor]: Per stream (B, D, H, W, C).
    """

    def call(fn, *args):
        if with_cp and args[1].requires_grad:
            return cp.checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    joint = attention != 'reference' and all(
        fits_windows(x.shape[1:4], s.window) for x, s in zip(maps, stages))
    if not joint:
        outs = []
        for x, stage in zip(maps, stages):
            for i, block in enumerate(blocks):
                x = call(swin_block_forward, block, x, *stage.block_args(i),
                         attention)
            outs.append(x)
        return outs
    channels = maps[0].shape[-1]
    shapes = [tuple(m.shape[:4]) for m in maps]
    x = torch.cat([m.reshape(-1, channels) for m in maps])
    maps.clear()
    layouts = [[
        StreamWindows(shape[0], shape[1:], *s.block_args(i))
        for shape, s in zip(shapes, stages)
    ] for i in range(len(blocks))]
    keys = [layout_key(streams) for streams in layouts]
    order, inverse, sample = joint_token_order(keys[0], x.device)
    # a sample's rows are consecutive in any window order: ``sample`` holds
    factors = stage_drop_path_factors(blocks, sample,
                                      sum(shape[0] for shape in shapes), x)
    # into the first block's windows, from block to block, and back: one
    # gather per change of window order
    x = GatherTokens.apply(x.unsqueeze(0), order, inverse).squeeze(0)
    for i, (block, streams) in enumerate(zip(blocks, layouts)):
        if i and keys[i] != keys[i - 1]:
            x = GatherTokens.apply(
                x.unsqueeze(0),
                *joint_transition(keys[i - 1], keys[i], x.device)).squeeze(0)
        x = call(joint_block_forward, block, x, streams, attention,
                 None if factors is None else factors[i])
    order, inverse, _ = joint_token_order(keys[-1], x.device)
    x = GatherTokens.apply(x.unsqueeze(0), inverse, order).squeeze(0)
    parts = x.split([torch.Size(shape).numel() for shape in shapes])
    return [part.view(*shape, channels) for part, shape in zip(parts, shapes)]
