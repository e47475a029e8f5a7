# Copyright (c) bevt contributors. All rights reserved.
"""The BEiT v2 VQ-KD tokenizer as a frozen BEVT tokenizer."""
import copy
from typing import Optional, Union

import torch
import torch.nn.functional as F
from mmpretrain.models.selfsup.beit import VQKD
from torch import Tensor

from bevt.registry import MODELS
from bevt.utils.typing_utils import OptConfigType, OptMultiConfig
from .base import BEVTTokenizer, check_int

#: ViT-B/16 encoder of the released VQ-KD (mmpretrain's BEiT v2 configs).
VQKD_ENCODER = dict(
    arch='base',
    img_size=224,
    patch_size=16,
    in_channels=3,
    out_indices=-1,
    drop_rate=0.,
    drop_path_rate=0.,
    norm_cfg=dict(type='LN', eps=1e-6),
    final_norm=True,
    out_type='featmap',
    with_cls_token=True,
    frozen_stages=-1,
    use_abs_pos_emb=True,
    use_rel_pos_bias=False,
    use_shared_rel_pos_bias=False,
    layer_scale_init_value=0.,
    interpolate_mode='bicubic',
    patch_cfg=dict(),
    layer_cfgs=dict(),
    init_cfg=None)

_VQKD_KEYS = ('encoder_config', 'num_embed', 'embed_dims', 'decay', 'beta',
              'quantize_kmeans_init')


@MODELS.register_module()
class BEVTVQKDTokenizer(BEVTTokenizer):
    """BEiT v2 VQ-KD tokenizer giving visual-token targets for `BEVT: BERT
    Pretraining of Video Transformers <https://arxiv.org/abs/2112.01529>`_.

    Wraps mmpretrain's :class:`~mmpretrain.models.selfsup.beit.VQKD` (a
    ViT-B/16 encoder, a tanh task layer and an l2-normalised codebook of
    ``num_embed`` entries): 16x downsampling, so a 224-px view gives 14x14
    ids per image or frame.

    Input: VQKD does no normalisation of its own; like mmpretrain's BEiT v2
    (``TwoNormDataPreprocessor(second_mean=[127.5] * 3,
    second_std=[127.5] * 3)``) the data preprocessor must map the 0-255 RGB
    pixels to [-1, 1] (mean 127.5, std 127.5), on a 224-px view (bicubic in
    BEiT v2; the ViT's position embedding is interpolated for other sizes).

    Ids: the encoder and task layer of the wrapped VQKD are reused, but the
    nearest-codebook lookup is done here with the same formula as
    ``NormEMAVectorQuantizer.forward`` instead of calling
    ``VQKD.get_tokens``, because that forward (a) all-reduces code-usage
    statistics across processes in eval mode, which would hang distributed
    training when a rank has no frame to encode (frame skipping),
    and (b) k-means-initialises a codebook whose ``initted`` flag is unset
    from the first batch. The task layer and lookup run in float32 (as
    mmpretrain's VQKD does on CUDA); ``dtype`` applies to the ViT only.

    Args:
        encoder (dict, optional): Keyword arguments of ``VQKD``:
            ``encoder_config`` (merged into :data:`VQKD_ENCODER`, the
            ViT-B/16 of the released tokenizer; ``out_type`` must stay
            ``'featmap'``), ``num_embed`` (8192), ``embed_dims`` (32),
            ``decay``, ``beta``, ``quantize_kmeans_init`` (False here: a
            random codebook is a normalised Gaussian, never k-means).
            Defaults to None.
        dtype (str, optional): None, ``'float16'`` or ``'bfloat16'`` for the
            ViT; see :class:`BEVTTokenizer`. Defaults to None.
        channels_last (bool): Run the patch embedding in channels_last
            memory format. Defaults to False.
        compile (bool | dict): See :class:`BEVTTokenizer`. Defaults to
            False.
        init_cfg (dict | list[dict], optional): Handed to ``VQKD``, e.g.
            ``dict(type='Pretrained', checkpoint='vqkd_encoder.pth')`` with
            mmpretrain's converted keys (``encoder.*``,
            ``encode_task_layer.*``, ``quantize.*``), no prefix. Without it
            the tokenizer is random and :meth:`init_weights` warns.
            Defaults to None.
    """

    def __init__(self,
                 encoder: OptConfigType = None,
                 dtype: Optional[str] = None,
                 channels_last: bool = False,
                 compile: Union[bool, dict] = False,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            dtype=dtype,
            channels_last=channels_last,
            compile=compile,
            init_cfg=init_cfg)
        encoder = {} if encoder is None else encoder
        if not isinstance(encoder, dict):
            raise ValueError(f'Invalid encoder: {encoder!r}; expected a dict')
        encoder = copy.deepcopy(dict(encoder))
        unknown = set(encoder) - set(_VQKD_KEYS)
        if unknown:
            raise ValueError(f'Invalid encoder keys: {sorted(unknown)}; '
                             f'valid keys are {list(_VQKD_KEYS)}')
        vit_cfg = copy.deepcopy(VQKD_ENCODER)
        vit_cfg.update(encoder.pop('encoder_config', None) or {})
        if vit_cfg['out_type'] != 'featmap':
            raise ValueError(f'Invalid encoder.encoder_config.out_type: '
                             f"{vit_cfg['out_type']!r}; expected 'featmap'")
        patch_size = vit_cfg['patch_size']
        check_int('encoder.encoder_config.patch_size', patch_size)
        num_embed = encoder.setdefault('num_embed', 8192)
        check_int('encoder.num_embed', num_embed)
        encoder.setdefault('quantize_kmeans_init', False)
        self.encoder = VQKD(
            encoder_config=vit_cfg, **encoder, init_cfg=init_cfg)
        self.vocab_size = num_embed
        self.downsample = patch_size
        self._freeze()

    def _encode(self,
                images: Tensor,
                cells: Optional[Tensor] = None) -> Tensor:
        """Ids of a batch of images.

        Args:
            images (Tensor): Images of shape (B, 3, h, w) in [-1, 1].
            cells (Tensor, optional): Unused: every cell is computed.

        Returns:
            Tensor: int64 ids of shape (B, h/16, w/16).
        """
        vqkd = self.encoder
        feats = vqkd.encoder(images)[0]  # (B, C, h/16, w/16)
        b, _, h, w = feats.shape
        feats = feats.flatten(2).transpose(1, 2)  # (B, h/16*w/16, C)
        with torch.autocast(device_type=images.device.type, enabled=False):
            z = vqkd.encode_task_layer(feats.float())  # (B, L, embed_dims)
            z = F.normalize(z, p=2, dim=-1).flatten(0, 1)  # (B*L, dims)
            codebook = vqkd.quantize.embedding.weight  # (num_embed, dims)
            dist = z.pow(2).sum(dim=1, keepdim=True) + \
                codebook.pow(2).sum(dim=1) - 2 * \
                torch.einsum('bd,nd->bn', z, codebook)  # (B*L, num_embed)
            ids = dist.argmin(dim=1)
        return ids.view(b, h, w)
