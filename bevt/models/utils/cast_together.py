# Copyright (c) bevt contributors. All rights reserved.
"""Weights cast to the autocast dtype together: one cast per step, not per
weight."""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor


class _CastTogether(torch.autograd.Function):
    """Float32 tensors to ``dtype`` by one ``cat`` and one cast, and their
    gradients back to float32 the same way.

    The outputs are views of one flat buffer; so are the gradients it
    returns, which ``AccumulateGrad`` keeps as they are (the
    ``param.grad`` tensors are views of one flat float32 buffer per call).
    """

    @staticmethod
    def forward(ctx, dtype: torch.dtype, *tensors: Tensor) -> Tuple[Tensor]:
        ctx.shapes = [t.shape for t in tensors]
        ctx.source = tensors[0].dtype
        flat = torch.cat([t.reshape(-1) for t in tensors]).to(dtype)
        return tuple(
            part.view(shape) for part, shape in zip(
                flat.split([t.numel() for t in tensors]), ctx.shapes))

    @staticmethod
    def backward(ctx, *grads: Tensor) -> Tuple[Optional[Tensor], ...]:
        # unused outputs come as zeros (materialised by autograd)
        flat = torch.cat([g.reshape(-1) for g in grads]).to(ctx.source)
        parts = flat.split([shape.numel() for shape in ctx.shapes])
        return (None, ) + tuple(
            part.view(shape) if wanted else None for part, shape, wanted in
            zip(parts, ctx.shapes, ctx.needs_input_grad[1:]))


def cast_together(tensors: Sequence[Optional[Tensor]],
                  device_type: str) -> Tuple[Optional[Tensor], ...]:
    """``tensors`` as the active autocast of ``device_type`` would cast
    them for a matrix product, all in one cast.

    Under an autocast every ``F.linear`` casts its float32 weight and bias
    to the autocast dtype, and the backward casts their gradients back: two
    operators per tensor and use (on CUDA, two kernel launches).
    Autocast's cache, which keeps a weight's cast for its next use in the
    same forward, does not help where each weight is used once (the joint
    Swin block, :mod:`~bevt.models.backbones.joint_streams`: 16 casts per
    block and step). Here the tensors are concatenated and cast by one
    operator, and their gradients go back by one (the block's 16 casts
    become a ``cat`` and a cast each way). The values are the same as
    autocast's casts, bitwise; so are the gradients.

    Args:
        tensors (Sequence[Tensor | None]): E.g. the weights and biases of a
            block's linears (None, e.g. a missing bias, stays None).
        device_type (str): Device type of the autocast, e.g. ``'cuda'``.

    Returns:
        tuple[Tensor | None]: ``tensors`` in the autocast dtype, or
        ``tensors`` themselves outside an autocast, or when one of them is
        not float32 (autocast casts those per use, as usual).
    """
    present = [t for t in tensors if t is not None]
    if not present or not torch.is_autocast_enabled(device_type):
        return tuple(tensors)
    dtype = torch.get_autocast_dtype(device_type)
    if any(t.dtype != torch.float32
           for t in present) or dtype == torch.float32:
        return tuple(tensors)
    cast = iter(_CastTogether.apply(dtype, *present))
    return tuple(None if t is None else next(cast) for t in tensors)
