# Copyright (c) bevt contributors. All rights reserved.
"""The DALL-E dVAE encoder as a frozen BEVT tokenizer."""
from typing import Optional

from mmpretrain.models.selfsup.cae import DALLEEncoder
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
    (registered there as ``'DALL-E'``) and returns the argmax over the
    vocabulary of its logits: 8x downsampling, so a 112-px view gives 14x14
    ids per image or frame.

    Input: the data preprocessor must give DALL-E's ``map_pixels`` values,
    x / 255 * 0.8 + 0.1 in [0.1, 0.9], i.e. normalisation of the 0-255
    pixels with ``mean=[-31.875] * 3`` and ``std=[318.75] * 3`` (no ImageNet
    normalisation), on the 112-px Lanczos tokenizer view.

    Precision: on CUDA, mmpretrain's DALL-E ``Conv2d`` casts its input and
    weights to float16 itself for every convolution except the final 1x1
    one (as OpenAI's code does), whatever ``dtype`` is; ``dtype`` then
    decides the precision of the final convolution (and, for
    ``'bfloat16'``, autocast re-casts the other convolutions to bfloat16).
    On CPU, ``dtype=None`` is full float32. CPU and GPU ids can differ
    slightly.

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
        chunk_size (int): Frames encoded at once; a chunk of B frames of
            112 px holds B x 8192 x 14 x 14 logits. Defaults to 64.
        init_cfg (dict | list[dict], optional): Handed to ``DALLEEncoder``,
            e.g. ``dict(type='Pretrained', checkpoint='dalle_encoder.pth')``
            with mmpretrain's converted keys (``blocks.input.w``, ...), no
            prefix. Without it the encoder is random and
            :meth:`init_weights` warns. Defaults to None.
    """

    downsample = 8

    def __init__(self,
                 encoder: OptConfigType = None,
                 dtype: Optional[str] = None,
                 channels_last: bool = False,
                 chunk_size: int = 64,
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
        for key in _DALLE_KEYS[:-1]:
            check_int(f'encoder.{key}', encoder.get(key, 1))
        self.encoder = DALLEEncoder(
            **encoder, requires_grad=False, init_cfg=init_cfg)
        self.vocab_size = encoder.get('vocab_size', 8192)
        self._freeze()

    def _encode(self, images: Tensor) -> Tensor:
        """Ids of one chunk of images.

        Args:
            images (Tensor): Images of shape (B, 3, h, w) in [0.1, 0.9].

        Returns:
            Tensor: int64 ids of shape (B, h/8, w/8).
        """
        logits = self.encoder(images)  # (B, vocab_size, h/8, w/8)
        return logits.argmax(dim=1)
