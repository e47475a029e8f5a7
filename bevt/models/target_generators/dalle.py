# Copyright (c) bevt contributors. All rights reserved.
"""The DALL-E dVAE encoder as a frozen BEVT tokenizer."""
from typing import Optional, Union

import torch
import torch.nn.functional as F
from mmpretrain.models.selfsup.cae import Conv2d, DALLEEncoder
from torch import Tensor

from bevt.registry import MODELS
from bevt.utils.typing_utils import OptConfigType, OptMultiConfig
from .base import BEVTTokenizer, check_int

_DALLE_KEYS = ('group_count', 'n_hid', 'n_blk_per_group', 'input_channels',
               'vocab_size', 'device')


@MODELS.register_module()
class BEVTDALLETokenizer(BEVTTokenizer):
    """DALL-E dVAE encoder giving the visual-token targets of `BEVT: BERT
    Pretraining of Video Transformers <https://arxiv.org/abs/2112.01529>`_.

    Wraps mmpretrain's :class:`~mmpretrain.models.selfsup.cae.DALLEEncoder`
    (``'DALL-E'`` there) and returns the argmax over the vocabulary of its
    logits: 8x downsampling, so a 112-px view gives 14x14 ids per image or
    frame. The final ReLU + 1x1 projection to the vocabulary runs as a
    matrix product on the needed cells only, in float32 as in DALL-E.

    Input: DALL-E's ``map_pixels`` values, x / 255 * 0.8 + 0.1 in
    [0.1, 0.9], i.e. the data preprocessor normalises the 0-255 pixels of
    the 112-px Lanczos tokenizer view with ``mean=[-31.875] * 3`` and
    ``std=[318.75] * 3``.

    Precision: ``dtype`` decides on every device; ``'float16'`` is that of
    OpenAI's DALL-E (float16 convolutions, the projection in float32).
    mmpretrain's ``Conv2d`` casts to float16 on CUDA by itself: that cast
    is kept for ``'float16'`` and ``'auto'`` (autocast then has nothing to
    cast) and switched off otherwise.

    Args:
        encoder (dict, optional): Keyword arguments of ``DALLEEncoder``:
            ``group_count`` (4), ``n_hid`` (256), ``n_blk_per_group`` (2),
            ``input_channels`` (3), ``vocab_size`` (8192), ``device``.
            Defaults to None (the DALL-E sizes).
        dtype (str, optional): See :class:`BEVTTokenizer`. Defaults to
            None.
        channels_last (bool): Convolutions in channels_last memory format.
            Defaults to False.
        compile (bool | dict): See :class:`BEVTTokenizer`. Defaults to
            False.
        init_cfg (dict | list[dict], optional): Handed to ``DALLEEncoder``,
            e.g. ``dict(type='Pretrained', checkpoint='dalle_encoder.pth')``
            with mmpretrain's keys (``blocks.input.w``, ...). Defaults to
            None (random weights; :meth:`init_weights` warns).
    """

    downsample = 8

    def __init__(self,
                 encoder: OptConfigType = None,
                 dtype: Optional[str] = None,
                 channels_last: bool = False,
                 compile: Union[bool, dict] = False,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(dtype, channels_last, compile, init_cfg)
        encoder = {} if encoder is None else encoder
        if not isinstance(encoder, dict):
            raise ValueError(f'Invalid encoder: {encoder!r}; expected a dict')
        unknown = set(encoder) - set(_DALLE_KEYS)
        if unknown:
            raise ValueError(f'Invalid encoder keys: {sorted(unknown)}; '
                             f'valid keys are {list(_DALLE_KEYS)}')
        for key in _DALLE_KEYS[:-1]:
            check_int(f'encoder.{key}', encoder.get(key, 1))
        self.encoder = DALLEEncoder(
            **encoder, requires_grad=False, init_cfg=init_cfg)
        self.vocab_size = encoder.get('vocab_size', 8192)
        for module in self.encoder.modules():
            if isinstance(module, Conv2d):  # its own float16 cast on CUDA
                module.use_float16 = dtype in ('float16', 'auto')
        self._freeze()

    def _encode(self,
                images: Tensor,
                cells: Optional[Tensor] = None) -> Tensor:
        """Ids of a batch of images.

        Args:
            images (Tensor): Images of shape (B, 3, h, w) in [0.1, 0.9].
            cells (Tensor, optional): Bool (B, h/8, w/8): project only these
                cells to the vocabulary; the others get -1. Defaults to None
                (all).

        Returns:
            Tensor: int64 ids of shape (B, h/8, w/8).
        """
        blocks = self.encoder.blocks
        feats = blocks[:-1](images).permute(0, 2, 3, 1)  # (B, h/8, w/8, C)
        if cells is not None:
            feats = feats[cells]  # (M, C)
        conv = blocks.output.conv  # 1x1 convolution: w (K, C, 1, 1), b (K, )
        with torch.autocast(images.device.type, enabled=False):
            logits = F.linear(
                blocks.output.relu(feats.float()), conv.w.flatten(1), conv.b)
        ids = logits.argmax(-1)  # (B, h/8, w/8) or (M, )
        if cells is None:
            return ids
        return ids.new_full(cells.shape, -1).masked_scatter_(cells, ids)
