# Copyright (c) bevt contributors. All rights reserved.
"""Stochastic depth on the flat tokens of several streams.

mmcv's ``DropPath`` keeps or drops a residual branch per sample, one draw
per call. In the joint block (:mod:`.joint_streams`) the rows of all
samples of both streams are one (L, C) tensor, so the factors are drawn
per sample and spread to its rows; here for every block of a stage at once.
"""
from functools import lru_cache
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmaction.models.backbones.swin import SwinTransformerBlock3D
from mmcv.cnn.bricks import DropPath
from torch import Tensor


def drop_prob(drop_path: nn.Module) -> float:
    """The probability that ``drop_path`` drops a sample's branch now: its
    ``drop_prob`` for a training mmcv ``DropPath``, else 0."""
    if isinstance(drop_path, DropPath) and drop_path.training:
        return drop_path.drop_prob
    return 0.


def keep_probabilities(probs: Tuple[float, ...],
                       device: torch.device) -> Tensor:
    """float32 (blocks, 1, 1, 1) column of ``1 - p``, cached per ``probs``
    and device (made on the device once, not at every step). Under
    ``torch.compile`` it is made in the graph (a cached tensor returned
    through ``assume_constant_result`` at every stage made AOTAutograd
    fail: one constant source for several values)."""
    if torch.compiler.is_compiling():
        return _keep_column(probs, device)
    return _cached_keep_column(probs, device)


def _keep_column(probs: Tuple[float, ...], device: torch.device) -> Tensor:
    """:func:`keep_probabilities`, computed."""
    return torch.tensor([1. - p for p in probs],
                        device=device).view(-1, 1, 1, 1)


_cached_keep_column = lru_cache(maxsize=128)(_keep_column)


def stage_drop_path_factors(blocks: Sequence[SwinTransformerBlock3D],
                            sample: Tensor, samples: int,
                            like: Tensor) -> Optional[Tensor]:
    """The keep (1) or drop (0) factors of both residual branches of every
    block of a stage, in one draw.

    As mmcv's ``DropPath`` draws them (``floor(keep + rand)``, one per
    sample and branch, ``rand`` in the features' dtype), for all blocks and
    both branches at once (5 operators per stage, not 4 per block),
    spread to the tokens of each sample by ``sample`` (``DropPath`` itself
    would take each row of the flat tokens for a sample).

    Args:
        blocks (Sequence[SwinTransformerBlock3D]): The stage's blocks.
        sample (Tensor): Sample of each row, int64 (L, ).
        samples (int): Number of samples.
        like (Tensor): The features (dtype of the draw, device).

    Returns:
        Tensor, optional: (blocks, 2, L, 1) in ``like``'s dtype (the
        residual stream keeps its dtype): per block the
        attention branch's and the MLP branch's; None when no block drops
        anything (:func:`drop_prob`).
    """
    probs = tuple(drop_prob(block.drop_path) for block in blocks)
    if not any(probs):
        return None
    draw = torch.rand((len(blocks), 2, samples, 1),
                      dtype=like.dtype,
                      device=like.device)
    # as mmcv's keep + rand: the sum in float32, rounded to the draw's dtype
    keep = keep_probabilities(probs, like.device)
    return (draw + keep).to(like.dtype).floor_().index_select(2, sample)


class _DropPathResidual(torch.autograd.Function):
    """``addcmul(shortcut, x.div(keep), factor)`` with a backward of two
    operators for ``x`` (``grad * factor``, ``/ keep``; autograd's has a
    third, ``factor * 1``); bitwise autograd's gradients."""

    @staticmethod
    def forward(ctx, shortcut: Tensor, x: Tensor, factor: Tensor,
                keep: float) -> Tensor:
        ctx.save_for_backward(factor)
        ctx.keep, ctx.dtype = keep, x.dtype
        return torch.addcmul(shortcut, x.div(keep), factor)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple:
        factor, = ctx.saved_tensors
        grad_x = None
        if ctx.needs_input_grad[1]:
            grad_x = (grad * factor).to(ctx.dtype).div(ctx.keep)
        return grad if ctx.needs_input_grad[0] else None, grad_x, None, None


def joint_residual_add(shortcut: Tensor, x: Tensor, drop_path: nn.Module,
                       factor: Optional[Tensor]) -> Tensor:
    """``shortcut + drop_path(x)`` on the flat tokens of several samples.

    As :func:`~.swin3d_ops.residual_add` (scaling and sum in one
    ``addcmul``, exact since the factor is 0 or 1), with the factor of
    each row from :func:`stage_drop_path_factors`.

    Args:
        shortcut (Tensor): Residual input (L, C).
        x (Tensor): Branch output (L, C).
        drop_path (nn.Module): The block's ``drop_path``.
        factor (Tensor, optional): (L, 1) keep factors; None = keep all.

    Returns:
        Tensor: (L, C).
    """
    if factor is None:
        return shortcut + drop_path(x)  # identity here
    return _DropPathResidual.apply(shortcut, x, factor,
                                   1 - drop_path.drop_prob)
