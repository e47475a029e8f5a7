# Copyright (c) bevt contributors. All rights reserved.
"""The DALL-E dVAE encoder as a frozen BEVT tokenizer."""
from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.selfsup.cae import Conv2d, DALLEEncoder, EncoderBlock
from torch import Tensor

from bevt.models.utils import masked_positions
from bevt.registry import MODELS
from bevt.utils.typing_utils import OptConfigType, OptMultiConfig
from .base import BEVTTokenizer, check_int

_DALLE_KEYS = ('group_count', 'n_hid', 'n_blk_per_group', 'input_channels',
               'vocab_size', 'device')


class AutocastWeights:
    """The frozen DALL-E weights cast once to the autocast dtype.

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
        self._casts: Dict[int, Tuple[tuple, Tensor]] = {}

    def __call__(self, tensor: Tensor, dtype: torch.dtype) -> Tensor:
        """``tensor.to(dtype)``, computed once per version of ``tensor``.

        Args:
            tensor (Tensor): A frozen weight, the module's own tensor (its
                identity is the key: not a view made per call).
            dtype (torch.dtype): The autocast dtype.

        Returns:
            Tensor: ``tensor`` cast to ``dtype``.
        """
        stamp = (tensor.data_ptr(), tensor.device, tensor._version, dtype)
        cached = self._casts.get(id(tensor))
        if cached is None or cached[0] != stamp:
            cached = (stamp, tensor.detach().to(dtype))
            self._casts[id(tensor)] = cached
        return cached[1]

    def of(self, conv: Conv2d, device_type: str) -> Tuple[Tensor, Tensor]:
        """``conv``'s weight and bias cast to the active autocast dtype of
        ``device_type``."""
        dtype = torch.get_autocast_dtype(device_type)
        return self(conv.w, dtype), self(conv.b, dtype)


def dalle_conv(conv: Conv2d,
               x: Tensor,
               weights: Optional[AutocastWeights] = None) -> Tensor:
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

    Returns:
        Tensor: Shape (B, C_out, h, w).
    """
    device_type = x.device.type
    if not torch.is_autocast_enabled(device_type):
        return conv(x)
    if weights is None:
        w, b = conv.w, conv.b
    else:
        w, b = weights.of(conv, device_type)
    return F.conv2d(x, w, b, padding=(conv.kw - 1) // 2)


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
    2-core CPU).

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
    out = dalle_conv(res.conv_4, out, weights).mul_(block.post_gain)
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


@MODELS.register_module()
class BEVTDALLETokenizer(BEVTTokenizer):
    """DALL-E dVAE encoder giving the visual-token targets of `BEVT: BERT
    Pretraining of Video Transformers <https://arxiv.org/abs/2112.01529>`_.

    Wraps mmpretrain's :class:`~mmpretrain.models.selfsup.cae.DALLEEncoder`
    (registered there as ``'DALL-E'``) and returns the argmax over the
    vocabulary of its logits: 8x downsampling, so a 112-px view gives 14x14
    ids per image or frame.

    Input: the data preprocessor must give DALL-E's ``map_pixels`` values,
    x / 255 * 0.8 + 0.1 in [0.1, 0.9], i.e. normalisation of the 0-255
    pixels with ``mean=[-31.875] * 3`` and ``std=[318.75] * 3`` (no ImageNet
    normalisation), on the 112-px Lanczos tokenizer view.

    Precision: with ``dtype=None`` mmpretrain's DALL-E ``Conv2d`` decides:
    on CUDA it casts its input and weights to float16 for every
    convolution except the final 1x1 one (as OpenAI's code does), on CPU
    everything is float32. With a ``dtype`` the convolutions run in that
    dtype under autocast, cast once (:func:`dalle_conv`; with
    ``inplace=False`` the module's casts stay and autocast re-casts after
    them). CPU and GPU ids can differ slightly.

    Speed: the blocks run with in-place ReLUs and residual adds
    (:func:`encoder_block_inplace`, bitwise the same ids), and when
    :meth:`forward` gets a ``cell_mask`` the final 1x1 projection to the
    vocabulary runs only on the needed cells (a (M, C) x (C, 8192) matrix
    product instead of the convolution over every cell; ~10% of the
    encoder's FLOPs, ~60% of which BEVT's masks skip). Off CUDA each stage
    runs on sub-batches sized to its activations (``stage_bytes``).

    Args:
        encoder (dict, optional): Keyword arguments of ``DALLEEncoder``:
            ``group_count`` (4), ``n_hid`` (256), ``n_blk_per_group`` (2),
            ``input_channels`` (3), ``vocab_size`` (8192), ``device``. Tests
            use e.g. ``dict(n_hid=16, vocab_size=64)``. Defaults to None
            (the DALL-E sizes).
        dtype (str, optional): None, ``'float16'`` or ``'bfloat16'``; see
            :class:`BEVTTokenizer`. Defaults to None.
        channels_last (bool): Run the convolutions in channels_last memory
            format. Defaults to False.
        chunk_size (int | str): Frames encoded at once (the unit that
            bounds the memory of the features). ``'auto'``: 64 on CUDA, 16
            elsewhere. Defaults to 'auto'.
        stage_bytes (int | str, optional): Within a chunk, run each stage
            (stem, group 1, ...) in sub-batches whose widest activation
            holds at most this many bytes (:func:`stage_batch`); None runs
            every stage on the whole chunk. ``'auto'``: 32 MiB off CUDA
            (at 112 px: 2 frames through the stem and group 1, 4 through
            group 2, 8 through group 3, 16 through group 4), None on CUDA.
            On a 2-core CPU the tokenizer is 5% (20 frames alone) to 8%
            (inside the joint step, ``benchmark.py --compare``) faster than
            with chunks of 4 frames through every stage, which were 10-15%
            faster than one chunk of 20: the 112-px activations (12.8 MB per
            frame) stay small enough for glibc to reuse heap memory instead
            of mapping fresh pages (its largest mmap threshold is 32 MiB)
            and the low-resolution groups, whose cost is reading their
            weights (the 2048 -> 512 3x3 conv has 38 MB), see many frames at
            once. Like ``chunk_size``, it changes only the batch a convolution
            sees: the features agree to float32 rounding (bitwise, and the
            same ids, for 20 frames of the DALL-E sizes measured here).
            Defaults to 'auto'.
        inplace (bool): Run the blocks with :func:`encoder_block_inplace`
            rather than mmpretrain's ``forward`` (the official way).
            Defaults to True.
        init_cfg (dict | list[dict], optional): Handed to ``DALLEEncoder``,
            e.g. ``dict(type='Pretrained', checkpoint='dalle_encoder.pth')``
            with mmpretrain's converted keys (``blocks.input.w``, ...), no
            prefix. Without it the encoder is random and
            :meth:`init_weights` warns. Defaults to None.
    """

    downsample = 8
    cpu_chunk_size = 16
    #: int: Bytes of ``stage_bytes='auto'`` off CUDA.
    cpu_stage_bytes = 32 * 1024**2

    def __init__(self,
                 encoder: OptConfigType = None,
                 dtype: Optional[str] = None,
                 channels_last: bool = False,
                 chunk_size: Union[int, str] = 'auto',
                 stage_bytes: Union[int, str, None] = 'auto',
                 inplace: bool = True,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            dtype=dtype,
            channels_last=channels_last,
            chunk_size=chunk_size,
            init_cfg=init_cfg)
        encoder = {} if encoder is None else encoder
        if not isinstance(encoder, dict):
            raise ValueError(f'Invalid encoder: {encoder!r}; expected a dict')
        unknown = set(encoder) - set(_DALLE_KEYS)
        if unknown:
            raise ValueError(f'Invalid encoder keys: {sorted(unknown)}; '
                             f'valid keys are {list(_DALLE_KEYS)}')
        if not isinstance(inplace, bool):
            raise ValueError(f'Invalid inplace: {inplace!r}; expected a bool')
        if stage_bytes not in (None, 'auto'):
            check_int('stage_bytes', stage_bytes)
        self.inplace = inplace
        self.stage_bytes = stage_bytes
        #: AutocastWeights, optional: the cast-once weights of the in-place
        #: path (``inplace=False`` runs mmpretrain's forward, which casts
        #: per call; None: autocast casts per call)
        self.autocast_weights = AutocastWeights()
        for key in _DALLE_KEYS[:-1]:
            check_int(f'encoder.{key}', encoder.get(key, 1))
        self.encoder = DALLEEncoder(
            **encoder, requires_grad=False, init_cfg=init_cfg)
        self.vocab_size = encoder.get('vocab_size', 8192)
        self._freeze()

    def resolved_stage_bytes(self, device_type: str) -> Optional[int]:
        """``self.stage_bytes`` on ``device_type``, 'auto' resolved."""
        if self.stage_bytes != 'auto':
            return self.stage_bytes
        return None if device_type == 'cuda' else self.cpu_stage_bytes

    def _run_stage(self, name: str, stage: nn.Module, x: Tensor) -> Tensor:
        """One stage (stem or group) on a batch of shape (B, C, h, w)."""
        if not self.inplace:
            return stage(x)
        if isinstance(stage, Conv2d):  # the stem
            return dalle_conv(stage, x, self.autocast_weights)
        for layer in stage.children():  # block_1, ..., [pool]
            x = encoder_block_inplace(layer, x,
                                      self.autocast_weights) if isinstance(
                                          layer, EncoderBlock) else layer(x)
        return x

    def _features(self, images: Tensor) -> Tensor:
        """The encoder up to (not including) its output ReLU + projection.

        With ``stage_bytes``, each stage runs on sub-batches of
        :func:`stage_batch` images; consecutive stages with the same
        sub-batch size run back to back on it, so the 112-px activations
        never exist for more than one sub-batch.

        Args:
            images (Tensor): Images of shape (B, 3, h, w) in [0.1, 0.9].

        Returns:
            Tensor: Features of shape (B, 8 * n_hid, h/8, w/8).
        """
        max_bytes = self.resolved_stage_bytes(images.device.type)
        pieces, size = [images], images.shape[0]
        for name, stage in self.encoder.blocks.named_children():
            if name == 'output':
                break
            if max_bytes is not None:
                wanted = stage_batch(stage, pieces[0], max_bytes)
                if wanted != size:
                    whole = pieces[0] if len(pieces) == 1 else torch.cat(
                        pieces)
                    pieces, size = list(whole.split(wanted)), wanted
            pieces = [self._run_stage(name, stage, x) for x in pieces]
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces)

    def cell_positions(self, cells: Tensor) -> Tensor:
        """Flat positions of a chunk's needed cells, for the gather and the
        scatter of the vocabulary projection (:func:`masked_positions`).

        Args:
            cells (Tensor): Bool (B, h/8, w/8).

        Returns:
            Tensor: int64 (M, ) positions in the (B*h/8*w/8, ) cells.
        """
        return masked_positions(cells)

    def _encode(self,
                images: Tensor,
                cells: Optional[Tensor] = None,
                positions: Optional[Tensor] = None) -> Tensor:
        """Ids of one chunk of images.

        Args:
            images (Tensor): Images of shape (B, 3, h, w) in [0.1, 0.9].
            cells (Tensor, optional): Bool (B, h/8, w/8): project only
                these cells to the vocabulary; the others get -1. Defaults
                to None (all cells, through the 1x1 convolution).
            positions (Tensor, optional): :meth:`cell_positions` of
                ``cells`` (read by :meth:`plan` before any chunk was
                queued); computed here if not given. Defaults to None.

        Returns:
            Tensor: int64 ids of shape (B, h/8, w/8).
        """
        output = self.encoder.blocks.output  # ReLU + 1x1 conv to the vocab
        if cells is not None:
            # read before the convolutions are queued (on CUDA the host
            # waits for the device here)
            where = positions if positions is not None \
                else self.cell_positions(cells)  # (M, )
        feats = self._features(images)  # (B, C, h/8, w/8)
        if cells is None:  # (B, vocab_size, h/8, w/8) logits
            logits = dalle_conv(output.conv, output.relu(feats),
                                self.autocast_weights) \
                if self.inplace else output(feats)
            return logits.argmax(dim=1)
        ids = torch.full(
            cells.shape, -1, dtype=torch.long, device=images.device)
        picked = output.relu(
            feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1]).index_select(
                0, where))  # (M, C)
        conv = output.conv  # mmpretrain's Conv2d: w (vocab, C, 1, 1), b
        w, b = conv.w, conv.b
        device_type = images.device.type
        if not torch.is_autocast_enabled(device_type):
            picked = picked.float()  # e.g. mmpretrain's float16 on CUDA
        elif self.inplace and self.autocast_weights is not None:
            w, b = self.autocast_weights.of(conv, device_type)
        logits = F.linear(picked, w.flatten(1), b)
        ids.view(-1).index_copy_(0, where, logits.argmax(dim=-1))  # (M, )
        return ids
