# Copyright (c) bevt contributors. All rights reserved.
"""The DALL-E encoder's layers as :class:`BEVTDALLETokenizer` runs them:
weights cast once, in-place blocks, sub-batches per stage."""
import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.selfsup.cae import Conv2d, EncoderBlock
from torch import Tensor


class AutocastWeights:
    """The frozen DALL-E weights cast once to the autocast dtype (or
    scaled once, :func:`dalle_conv`).

    Under an autocast every convolution (and the vocabulary projection)
    casts its float32 weight and bias to the autocast dtype on every call:
    autocast caches its casts only for leaf tensors that require a
    gradient, and the tokenizer's do not. That is two cast kernels per
    convolution and chunk (72 of the 181 operators of a chunk through the
    DALL-E encoder) and a 64 MB read of the 8192 x 2048 projection weight.
    This keeps each cast until its source changes (another device or
    dtype, an in-place update such as ``load_state_dict``: the tensor's
    version counter) and gives the same values as autocast's own cast. The
    casts stay in memory: half the float32 weights in bfloat16 (~110 MB for
    the DALL-E sizes).
    """

    def __init__(self) -> None:
        self._casts: Dict[Tuple[int, float], Tuple[tuple, Tensor]] = {}

    def __call__(self,
                 tensor: Tensor,
                 dtype: torch.dtype,
                 scale: float = 1.) -> Tensor:
        """``tensor.to(dtype) * scale``, computed once per version of
        ``tensor``.

        Args:
            tensor (Tensor): A frozen weight, the module's own tensor (its
                identity is the key: not a view made per call).
            dtype (torch.dtype): The dtype (the autocast's, or the
                convolution's without one).
            scale (float): A factor. Defaults to 1.

        Returns:
            Tensor: ``tensor`` cast to ``dtype``, times ``scale``.
        """
        stamp = (tensor.data_ptr(), tensor.device, tensor._version, dtype)
        key = (id(tensor), scale)
        cached = self._casts.get(key)
        if cached is None or cached[0] != stamp:
            cast = tensor.detach().to(dtype)
            cached = (stamp, cast if scale == 1. else cast * scale)
            self._casts[key] = cached
        return cached[1]

    def of(self,
           conv: Conv2d,
           device_type: str,
           scale: float = 1.,
           dtype: Optional[torch.dtype] = None) -> Tuple[Tensor, Tensor]:
        """``conv``'s weight and bias cast to ``dtype`` (default: the
        active autocast dtype of ``device_type``), times ``scale``."""
        dtype = dtype or torch.get_autocast_dtype(device_type)
        return self(conv.w, dtype, scale), self(conv.b, dtype, scale)


def conv_dtype(conv: Conv2d, x: Tensor) -> torch.dtype:
    """The dtype ``conv`` computes in on ``x``: the autocast's, else as
    mmpretrain's ``Conv2d.forward`` (float16 on CUDA, else float32)."""
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    if conv.use_float16 and conv.w.device.type == 'cuda':
        return torch.float16
    return torch.float32


def exact_scale(scale: float, dtype: torch.dtype) -> bool:
    """Whether multiplying a convolution's weights and bias by ``scale``
    gives bitwise its output times ``scale``: for a power of two in
    float32 or bfloat16 (each product and partial sum is then scaled
    exactly, and so is the rounding), not in float16, whose subnormals
    begin at 6e-5."""
    return math.frexp(scale)[0] == 0.5 and dtype in (torch.float32,
                                                     torch.bfloat16)


def dalle_conv(conv: Conv2d,
               x: Tensor,
               weights: Optional[AutocastWeights] = None,
               scale: float = 1.) -> Tensor:
    """mmpretrain's DALL-E ``Conv2d`` on ``x``, without its casts under an
    autocast.

    That ``Conv2d`` casts its input and weights on every call: to float16 on
    CUDA, to float32 elsewhere. Inside an autocast of another dtype (the
    tokenizer's ``dtype='bfloat16'``) autocast then casts them once more,
    so each convolution copies its whole input twice. Under an autocast
    this convolves ``x`` directly, so autocast casts once, straight to its
    dtype (with ``weights``, the weights come cast already); without one it
    is the module's own forward (float16 convolutions on CUDA, as OpenAI's
    code). On an H200 the 96 views of a BEVT step (4 clips + 32 images,
    112 px) took 25 ms instead of 37 ms (the official float16 way: 34 ms).
    On CPU the result is bitwise the module's (bfloat16 -> float32 ->
    bfloat16 is exact); on CUDA the weights are rounded to bfloat16 once
    rather than through float16.

    Args:
        conv (Conv2d): mmpretrain's DALL-E convolution (``w``, ``b``,
            ``kw``).
        x (Tensor): Input of shape (B, C_in, h, w).
        weights (AutocastWeights, optional): Cast-once weights. Defaults
            to None (autocast casts them per call).
        scale (float): Multiply the output by this, through the weights and
            bias (no pass over the output); only where that is bitwise
            exact (:func:`exact_scale`), else by a ``mul_`` after the
            convolution. Defaults to 1.

    Returns:
        Tensor: Shape (B, C_out, h, w).
    """
    dtype = None if scale == 1. else conv_dtype(conv, x)  # scaled only
    if dtype is not None and not exact_scale(scale, dtype):
        return dalle_conv(conv, x, weights).mul_(scale)
    padding = (conv.kw - 1) // 2
    if torch.is_autocast_enabled(x.device.type):
        if weights is not None:
            w, b = weights.of(conv, x.device.type, scale)
        elif scale == 1.:
            w, b = conv.w, conv.b  # autocast casts them
        else:
            w, b = conv.w * scale, conv.b * scale
        return F.conv2d(x, w, b, padding=padding)
    if scale == 1.:
        return conv(x)
    # mmpretrain's forward, scaled weights
    if weights is not None:
        w, b = weights.of(conv, x.device.type, scale, dtype)
    else:
        w, b = conv.w.to(dtype) * scale, conv.b.to(dtype) * scale
    return F.conv2d(x.to(dtype), w, b, padding=padding)


def encoder_block_inplace(block: EncoderBlock,
                          x: Tensor,
                          weights: Optional[AutocastWeights] = None) -> Tensor:
    """``EncoderBlock.forward`` with in-place ReLUs and residual add.

    mmpretrain's block computes ``id(x) + post_gain * res(x)`` with a new
    tensor for every ReLU, the scaling and the sum: at 112 px and 256
    channels each is a full (B, 256, 112, 112) pass of memory. Here the
    ReLUs after the convolutions, the scaling and the sum reuse the
    convolution outputs; the operations and their order are unchanged, so
    the result is bitwise the same (12% less time for the DALL-E trunk on a
    2-core CPU). The scaling by ``post_gain`` (1/64 in DALL-E, a power of
    two) goes into ``conv_4``'s weights and bias where that is exact in the
    convolution's dtype (float32, bfloat16: :func:`exact_scale`), which
    saves one pass over the block's output.

    Args:
        block (EncoderBlock): The block (weights).
        x (Tensor): Input of shape (B, C_in, h, w).
        weights (AutocastWeights, optional): See :func:`dalle_conv`.

    Returns:
        Tensor: Shape (B, C_out, h, w).
    """
    res = block.res_path
    out = dalle_conv(res.conv_1, res.relu_1(x), weights).relu_()
    out = dalle_conv(res.conv_2, out, weights).relu_()
    out = dalle_conv(res.conv_3, out, weights).relu_()
    out = dalle_conv(res.conv_4, out, weights, block.post_gain)
    shortcut = dalle_conv(block.id_path, x, weights) if isinstance(
        block.id_path, Conv2d) else block.id_path(x)  # or nn.Identity
    if torch.result_type(shortcut, out) != out.dtype:  # e.g. fp16 + fp32
        return shortcut + out
    return out.add_(shortcut)


def stage_batch(stage: nn.Module, x: Tensor, max_bytes: int) -> int:
    """Images per sub-batch of ``stage`` so that its widest activation
    stays within ``max_bytes``.

    A stage (the stem or a group) keeps its input's spatial size until its
    final pooling, so its widest activation per image is
    ``max(C_in, widest conv output) x h x w`` elements.

    Args:
        stage (nn.Module): ``blocks.input`` or ``blocks.group_k``.
        x (Tensor): The stage's input, of shape (B, C_in, h, w).
        max_bytes (int): Byte budget of one activation.

    Returns:
        int: Images per sub-batch, at least 1.
    """
    width = max([x.shape[1]] + [
        module.w.shape[0]
        for module in stage.modules() if isinstance(module, Conv2d)
    ])
    per_image = width * x.shape[2] * x.shape[3] * x.element_size()
    return max(1, max_bytes // per_image)
