# Copyright (c) bevt contributors. All rights reserved.
"""LayerNorm of features already in the autocast dtype, run in that dtype.

CUDA's autocast runs ``layer_norm`` in float32 (CPU's leaves it alone): a
bfloat16 residual stream (Swin stages 2-4, whose stream starts at the
patch merging's linear) is cast up for each norm, the float32 output is
cast down again by the next linear, and the backward casts both gradients:
four casts of an activation per norm (22 blocks x 2 norms of Swin-B: ~180
of a stage-2 step's ~2,200 CUDA operators), and a float32 copy of each norm
input kept for the backward. CUDA's LayerNorm has no mixed-dtype kernel
(its weights must be in the input's dtype; the CPU's takes float32 weights
with a bfloat16 input), so :func:`norm_in_autocast_dtype` takes the weights
already cast (:func:`layer_norm_params` listed with the linears' weights
in one :func:`~.cast_together.cast_together`: no cast of their own).
"""
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def _in_autocast_dtype(norm: nn.Module, x: Tensor) -> bool:
    """Whether ``norm`` is a plain LayerNorm and ``x`` is in the dtype of
    an autocast active on its device."""
    device_type = x.device.type
    return type(norm) is nn.LayerNorm and \
        torch.is_autocast_enabled(device_type) and \
        x.dtype == torch.get_autocast_dtype(device_type)


def layer_norm_params(norm: nn.Module, x: Tensor) -> List[Optional[Tensor]]:
    """``[weight, bias]`` of ``norm`` (None where it has none) if
    :func:`norm_in_autocast_dtype` would run it on ``x`` in the autocast
    dtype, else ``[None, None]`` (nothing to cast, so no zero gradients of
    unused casts either): what to cast for it."""
    if _in_autocast_dtype(norm, x):
        return [norm.weight, norm.bias]
    return [None, None]


def norm_in_autocast_dtype(norm: nn.Module, x: Tensor,
                           weight: Optional[Tensor],
                           bias: Optional[Tensor]) -> Tensor:
    """``norm(x)``; under an autocast, a plain LayerNorm of ``x`` already in
    the autocast dtype runs in that dtype with the given ``weight`` and
    ``bias`` (the norm's, cast to it), outside autocast's float32 policy.

    The kernels compute the statistics and the normalisation in float32 on
    CPU and CUDA alike and round the output once, as the cast after
    autocast's float32 norm does; the weights are the norm's rounded to
    the autocast dtype (as autocast rounds a linear's), so the outputs
    differ from autocast's by about an ulp of the autocast dtype. CUDA's
    kernel sums the weights' gradients in float32 and rounds them once to
    the autocast dtype (as a linear's); the CPU's, bf16 or mixed (what
    CPU's autocast runs), sum them less precisely alike (about 1 % off).

    Args:
        norm (nn.Module): The norm (e.g. a block's ``norm1``).
        x (Tensor): Features (..., C).
        weight (Tensor, optional): ``norm.weight`` in the autocast dtype
            (e.g. from :func:`~.cast_together.cast_together` of
            :func:`layer_norm_params`); None if it has none.
        bias (Tensor, optional): ``norm.bias`` likewise.

    Returns:
        Tensor: (..., C): in ``x``'s dtype when run in it, else whatever
        ``norm(x)`` gives (float32 under CUDA's autocast).
    """
    if not _in_autocast_dtype(norm, x):
        return norm(x)
    for given, own in ((weight, norm.weight), (bias, norm.bias)):
        if (given is None) != (own is None) or \
                (given is not None and given.dtype != x.dtype):
            return norm(x)  # not cast: autocast's policy
    with torch.autocast(x.device.type, enabled=False):
        return F.layer_norm(x, norm.normalized_shape, weight, bias, norm.eps)
