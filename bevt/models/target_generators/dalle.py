# Copyright (c) bevt contributors. All rights reserved.
"""The DALL-E dVAE encoder as a frozen BEVT tokenizer."""
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.selfsup.cae import Conv2d, DALLEEncoder, EncoderBlock
from torch import Tensor

from bevt.models.utils import masked_positions
from bevt.registry import MODELS
from bevt.utils.typing_utils import OptConfigType, OptMultiConfig
from .base import BEVTTokenizer, check_int
from .dalle_ops import (AutocastWeights, dalle_conv, encoder_block_inplace,
                        stage_batch)

__all__ = [
    'BEVTDALLETokenizer', 'AutocastWeights', 'dalle_conv',
    'encoder_block_inplace', 'stage_batch'
]

_DALLE_KEYS = ('group_count', 'n_hid', 'n_blk_per_group', 'input_channels',
               'vocab_size', 'device')


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
