# Copyright (c) bevt contributors. All rights reserved.
"""The BEVT backbone: a masked Video Swin shared by an image and a video
stream, with the two fusion decoders of the official model.

Read top to bottom, as mmaction2's ``swin.py``: the window helpers, the
window attention (the one place where the device matters), one Swin block
for both streams, the image stream's patch embedding, the fusion decoder,
and the registered :class:`BEVTSwinTransformer3D`. The weights are
mmaction2's modules (``SwinTransformerBlock3D``, ``PatchMerging``, ...) with
their state-dict names; the functions here only drive them with a window,
shift and mask chosen per stream (the official image path differs from the
video path). Checkpoint loading lives in :mod:`.bevt_swin_weights`.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmaction.models.backbones.swin import (SwinTransformer3D,
                                            SwinTransformerBlock3D,
                                            WindowAttention3D, compute_mask,
                                            window_partition, window_reverse)
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor

from bevt.registry import MODELS
from .bevt_swin_weights import inflate_2d_checkpoint, load_3d_checkpoint

Size3 = Tuple[int, int, int]

#: Window-attention formulas (see ``attention`` of the backbone)
ATTENTIONS = ('auto', 'sdpa', 'eager', 'reference')


# ----------------------------------------------------------------------
# windows
def window_and_shift(size: Sequence[int], window_size: Sequence[int],
                     shift_size: Sequence[int],
                     keep_shift_at_window_size: bool) -> Tuple[Size3, Size3]:
    """The window and shift a stage uses for a (D, H, W) map.

    As mmaction2's ``get_window_size``: a side no larger than the window is
    one window and is not shifted. With ``keep_shift_at_window_size`` (the
    official image path, quirk B) a side *equal* to the window keeps its
    shift; only smaller ones are clamped.
    """
    window, shift = list(window_size), list(shift_size)
    for i, s in enumerate(size):
        if s < window_size[i] or (s == window_size[i]
                                  and not keep_shift_at_window_size):
            window[i], shift[i] = s, 0
    return tuple(window), tuple(shift)


def shift_mask(size: Sequence[int],
               window: Size3,
               shift: Size3,
               device: torch.device,
               exact_zeros: bool = True) -> Optional[Tensor]:
    """The additive shifted-window mask (nW, N, N) of a (D, H, W) map
    (padded to whole windows), or None if nothing shifts.

    mmaction2's mask is 0 / -100; its softmax weights e^-100 are denormal
    floats, which x86 CPUs multiply far slower than normal ones (see
    docs/performance.md). With ``exact_zeros`` the masked pairs get -inf:
    weights of exactly 0, the same outputs to float32 rounding (every token
    sees itself, so no row is all -inf).
    """
    if not any(shift):
        return None
    padded = [-(-s // w) * w for s, w in zip(size, window)]
    mask = compute_mask(*padded, window, shift, device)
    if exact_zeros:
        mask = mask.masked_fill(mask != 0, float('-inf'))
    return mask


# ----------------------------------------------------------------------
# window attention
def relative_position_bias(attn: WindowAttention3D, N: int) -> Tensor:
    """mmaction2's relative-position bias of the first ``N`` window
    positions, (nH, N, N).

    Read along the transposed table: the values of
    ``table[index[:N, :N]].permute(2, 0, 1)``, with an ``index_add`` as
    backward instead of ``index_put``'s serial accumulation (several times
    faster on CPU) and no permuted copy.
    """
    index = attn.relative_position_index[:N, :N].reshape(-1)
    table = attn.relative_position_bias_table  # (T, nH)
    return table.t().index_select(1, index).view(-1, N, N)


def window_attention(attn: WindowAttention3D,
                     x: Tensor,
                     mask: Optional[Tensor],
                     kind: str = 'eager') -> Tensor:
    """Biased window attention of mmaction2's ``WindowAttention3D``.

    ``kind`` picks the formula, all equal up to float rounding:
    ``'sdpa'``: ``scaled_dot_product_attention`` with the bias plus shift
    mask as its additive mask (a memory-efficient kernel on CUDA);
    ``'eager'``: mmaction2's formula with the bias read by
    :func:`relative_position_bias`; ``'reference'``:
    ``WindowAttention3D.forward`` itself (the official code).

    Args:
        attn (WindowAttention3D): The block's attention (weights).
        x (Tensor): Windows (B*nW, N, C); one sample's nW are consecutive.
        mask (Tensor, optional): Additive shift mask (nW, N, N).
        kind (str): 'sdpa', 'eager' or 'reference'. Defaults to 'eager'.

    Returns:
        Tensor: (B*nW, N, C).
    """
    if kind == 'reference':
        return attn(x, mask=mask)
    BnW, N, C = x.shape
    heads, dims = attn.num_heads, C // attn.num_heads
    qkv = attn.qkv(x).view(BnW, N, 3, heads, dims)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B*nW, nH, N, C/nH)
    bias = relative_position_bias(attn, N)  # (nH, N, N)
    nW = 1 if mask is None else mask.shape[0]
    dropout = attn.attn_drop.p if attn.training else 0.
    if kind == 'sdpa' and (nW == 1 or nW == BnW):
        # the bias (plus mask) broadcasts over the windows as they come
        if mask is not None:
            bias = bias + mask.unsqueeze(1)  # (nW, nH, N, N)
        out = F.scaled_dot_product_attention(
            q, k, v, bias.to(q.dtype), dropout, scale=attn.scale)
    elif kind == 'sdpa':
        # (B, nW*nH, N, C/nH) (one copy): one bias-plus-mask slice per
        # window and head, broadcast over the batch, not repeated B times
        bias = (bias + mask.unsqueeze(1)).view(1, nW * heads, N, N)
        q, k, v = (t.reshape(-1, nW * heads, N, dims) for t in (q, k, v))
        out = F.scaled_dot_product_attention(
            q, k, v, bias.to(q.dtype), dropout, scale=attn.scale)
        out = out.reshape(BnW, heads, N, dims)
    else:
        # mmaction2's formula
        scores = (q * attn.scale) @ k.transpose(-2, -1) + bias
        if mask is not None:  # (B, nW, nH, N, N) + (nW, 1, N, N)
            scores = scores.view(-1, nW, heads, N, N) + mask.unsqueeze(1)
            scores = scores.view(-1, heads, N, N)
        out = attn.attn_drop(attn.softmax(scores)) @ v
    out = out.transpose(1, 2).reshape(BnW, N, C)
    return attn.proj_drop(attn.proj(out))


# ----------------------------------------------------------------------
# block
def swin_block(block: SwinTransformerBlock3D,
               x: Tensor,
               window: Size3,
               shift: Size3,
               mask: Optional[Tensor],
               attention: str = 'eager') -> Tensor:
    """``SwinTransformerBlock3D.forward`` with the window, shift and shift
    mask given by the caller (the official image path applies the mask in
    un-shifted blocks too).

    Args:
        block (SwinTransformerBlock3D): The block (weights).
        x (Tensor): Map (B, D, H, W, C).
        window (tuple[int]): Window (Wd, Wh, Ww).
        shift (tuple[int]): Cyclic shift (Sd, Sh, Sw); zeros for W-MSA.
        mask (Tensor, optional): Additive shift mask (nW, N, N).
        attention (str): See :func:`window_attention`. Defaults to 'eager'.

    Returns:
        Tensor: (B, D, H, W, C).
    """
    B, D, H, W, C = x.shape
    shortcut = x
    x = block.norm1(x)
    pads = [(w - s % w) % w for s, w in zip((D, H, W), window)]
    x = F.pad(x, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
    _, Dp, Hp, Wp, _ = x.shape
    if any(shift):
        x = torch.roll(x, shifts=[-s for s in shift], dims=(1, 2, 3))
    windows = window_partition(x, window)  # (B*nW, Wd*Wh*Ww, C)
    windows = window_attention(block.attn, windows, mask, attention)
    x = window_reverse(windows.view(-1, *window, C), window, B, Dp, Hp, Wp)
    if any(shift):
        x = torch.roll(x, shifts=list(shift), dims=(1, 2, 3))
    x = shortcut + block.drop_path(x[:, :D, :H, :W])
    return x + block.drop_path(block.mlp(block.norm2(x)))


# ----------------------------------------------------------------------
# modules
class PatchEmbed2D(BaseModule):
    """Image to patch embedding of the image stream (Conv2d + norm).

    Args:
        patch_size (Sequence[int]): Patch (Ph, Pw). Defaults to (4, 4).
        in_channels (int): Input channels. Defaults to 3.
        embed_dims (int): Embedding channels. Defaults to 96.
        norm_cfg (dict, optional): Norm after the projection.
            Defaults to None.
    """

    def __init__(self,
                 patch_size: Sequence[int] = (4, 4),
                 in_channels: int = 3,
                 embed_dims: int = 96,
                 norm_cfg: Optional[Dict] = None) -> None:
        super().__init__()
        self.patch_size = tuple(patch_size)
        self.proj = nn.Conv2d(
            in_channels, embed_dims, kernel_size=patch_size, stride=patch_size)
        self.norm = build_norm_layer(norm_cfg, embed_dims)[1] \
            if norm_cfg is not None else None

    def forward(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> channels-last patches (B, H/Ph, W/Pw,
        embed_dims)."""
        ph, pw = self.patch_size
        x = F.pad(x, (0, -x.shape[-1] % pw, 0, -x.shape[-2] % ph))
        x = self.proj(x).permute(0, 2, 3, 1)  # (B, Hp, Wp, C)
        return self.norm(x) if self.norm is not None else x


class FusionDecoder(BaseModule):
    """BEVT's fusion decoder: stage-3 ⊕ upsampled stage-4 -> Linear.

    Official names: ``fpn`` / ``lm_down`` (images) and ``fpn_s`` /
    ``lm_down_st`` / ``fpn_t`` (video). There is no activation.

    Args:
        low_dims (int): Channels of the stage-3 map (before merging).
        high_dims (int): Channels of the stage-4 map (and of the output).
        video (bool): Video decoder (3D transposed convs) or image decoder.
        temporal_stride (int): Temporal upsampling of the video decoder
            (the temporal patch size); 1 disables it. Defaults to 1.
    """

    def __init__(self,
                 low_dims: int,
                 high_dims: int,
                 video: bool,
                 temporal_stride: int = 1) -> None:
        super().__init__()
        self.video = video
        if video:
            self.upsample_spatial = nn.ConvTranspose3d(
                high_dims, high_dims, (1, 2, 2), stride=(1, 2, 2))
        else:
            self.upsample_spatial = nn.ConvTranspose2d(
                high_dims, high_dims, 2, stride=2)
        self.reduce = nn.Linear(low_dims + high_dims, high_dims)
        self.upsample_temporal = None
        if video and temporal_stride > 1:
            kernel = (temporal_stride, 1, 1)
            self.upsample_temporal = nn.ConvTranspose3d(
                high_dims, high_dims, kernel, stride=kernel)

    def forward(self, low: Tensor, high: Tensor) -> Tensor:
        """Fuse two stages.

        Args:
            low (Tensor): Stage-3 map (B, D, H3, W3, C3), channels-last.
            high (Tensor): Stage-4 map (B, D, H4, W4, C4), H4 = ceil(H3/2).

        Returns:
            Tensor: (B, D*temporal_stride, H3, W3, C4), channels-last.
        """
        B, D, H3, W3, _ = low.shape
        if self.video:
            high = self.upsample_spatial(high.permute(0, 4, 1, 2, 3))
            high = high.permute(0, 2, 3, 4, 1)
        else:  # images run with D == 1
            high = self.upsample_spatial(high[:, 0].permute(0, 3, 1, 2))
            high = high.permute(0, 2, 3, 1).unsqueeze(1)
        high = high[:, :, :H3, :W3]  # odd stage-3 sizes were padded
        x = self.reduce(torch.cat([low, high], dim=-1))  # (B,D,H3,W3,C4)
        if self.upsample_temporal is not None:
            x = self.upsample_temporal(x.permute(0, 4, 1, 2, 3))
            x = x.permute(0, 2, 3, 4, 1)
        return x


DEFAULT_INIT_CFG = [
    dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.),
    dict(type='Constant', layer='LayerNorm', val=1., bias=0.)
]


@MODELS.register_module()
class BEVTSwinTransformer3D(SwinTransformer3D):
    """Masked Video Swin shared by BEVT's image and video streams.

    `BEVT: BERT Pretraining of Video Transformers
    <https://arxiv.org/abs/2112.01529>`_

    Built on mmaction2's :class:`SwinTransformer3D` (same blocks, merging
    layers and state-dict names, final norm ``norm3``), it adds:

    - a ``mask_token`` shared by both streams, blended in right after the
      patch embedding: ``x * (1 - m) + mask_token * m``, the mask
      nearest-upsampled from the token grid (stride 16) to the patch grid;
    - ``patch_embed_2d``: the image stream's own 2D patch embedding; images
      then run through the same blocks and merging layers with D = 1;
    - the fusion decoders (:class:`FusionDecoder`): stage-3 output (before
      merging) ⊕ upsampled stage-4 output -> Linear -> (video: temporal
      x2 transposed conv) -> the final norm, at stride 16.

    The official image path differs from the video path in two ways, both
    reproduced while ``official_image_path=True`` (the default):
    quirk A, un-shifted image blocks still apply the shifted-window mask;
    quirk B, a stage whose map equals the window (7x7 at stage 4) keeps its
    shift. ``official_image_path=False`` gives standard Swin behaviour
    (the image as a one-frame clip through the 3D logic).

    Args:
        arch (str | dict): As :class:`SwinTransformer3D`. Defaults to
            'base'. At least two stages.
        pretrained (str, optional): Local checkpoint loaded by
            :meth:`init_weights`. Defaults to None (random init).
        pretrained2d (bool): ``pretrained`` is a 2D (stage-1 image-stream
            or Swin) checkpoint, inflated by the official 2D->3D rules
            (:func:`~.bevt_swin_weights.inflate_2d_checkpoint`); otherwise
            a 3D checkpoint of this backbone. Defaults to True.
        patch_size (Sequence[int]): Video patch (Pt, Ph, Pw); the image
            patch is (Ph, Pw). Defaults to (2, 4, 4).
        window_size (Sequence[int]): Window. Defaults to (8, 7, 7).
        drop_path_rate (float): Stochastic depth. Defaults to 0.3.
        with_cp (bool): Gradient checkpointing of every block, on both
            streams. Defaults to False.
        official_image_path (bool): Reproduce the official image-path
            quirks A and B. Defaults to True.
        attention (str): Window-attention formula (:func:`window_attention`):
            'sdpa', 'eager', 'reference' (mmaction2's own, the official
            code's), or 'auto': 'sdpa' on CUDA, 'eager' elsewhere (on CPU,
            SDPA with a bias that needs a gradient runs its math kernel,
            slower). Defaults to 'auto'.
        init_cfg (dict | list[dict], optional): Defaults to trunc-normal
            Linear (std 0.02) and unit LayerNorm, as mmaction2.
        **kwargs: Other :class:`SwinTransformer3D` arguments
            (``in_channels``, ``mlp_ratio``, ``qkv_bias``, ``qk_scale``,
            ``drop_rate``, ``attn_drop_rate``, ``act_cfg``, ``norm_cfg``,
            ``patch_norm``, ``frozen_stages``).
    """

    def __init__(self,
                 arch: Union[str, Dict] = 'base',
                 pretrained: Optional[str] = None,
                 pretrained2d: bool = True,
                 patch_size: Sequence[int] = (2, 4, 4),
                 window_size: Sequence[int] = (8, 7, 7),
                 drop_path_rate: float = 0.3,
                 with_cp: bool = False,
                 official_image_path: bool = True,
                 attention: str = 'auto',
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None,
                 **kwargs) -> None:
        for key in ('out_indices', 'out_after_downsample'):
            if key in kwargs:
                raise TypeError(f'BEVTSwinTransformer3D fixes {key}')
        if isinstance(patch_size, int) or len(patch_size) != 3:
            raise ValueError(f'patch_size must be (Pt, Ph, Pw), got '
                             f'{patch_size}')
        if attention not in ATTENTIONS:
            raise ValueError(f'Invalid attention: {attention!r}; expected '
                             f'one of {ATTENTIONS}')
        settings = self.arch_zoo.get(arch.lower(), {}) if isinstance(
            arch, str) else arch
        num_stages = len(settings.get('depths',
                                      ())) if isinstance(settings, dict) else 0
        if num_stages < 2:
            raise ValueError('BEVTSwinTransformer3D needs an arch with at '
                             f'least two stages, got arch={arch}')
        super().__init__(
            arch=arch,
            pretrained=None,
            pretrained2d=False,
            patch_size=tuple(patch_size),
            window_size=tuple(window_size),
            drop_path_rate=drop_path_rate,
            with_cp=False,
            out_indices=(num_stages - 1, ),
            out_after_downsample=False,
            init_cfg=init_cfg if init_cfg is not None else DEFAULT_INIT_CFG,
            **kwargs)
        self.pretrained = pretrained
        self.pretrained2d = pretrained2d
        self.with_cp = with_cp
        self.official_image_path = official_image_path
        self.attention = attention
        self.final_norm_name = f'norm{num_stages - 1}'
        # mask grid (stride 16 for 4 stages) -> patch grid
        self.mask_scale = 2**(num_stages - 2)
        self.out_channels = self.num_features[-1]

        norm_cfg = kwargs.get('norm_cfg', dict(type='LN'))
        self.patch_embed_2d = PatchEmbed2D(
            patch_size=self.patch_size[1:],
            in_channels=kwargs.get('in_channels', 3),
            embed_dims=self.embed_dims,
            norm_cfg=norm_cfg if kwargs.get('patch_norm', True) else None)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))
        low, high = self.num_features[-2], self.num_features[-1]
        self.image_decoder = FusionDecoder(low, high, video=False)
        self.video_decoder = FusionDecoder(
            low, high, video=True, temporal_stride=self.patch_size[0])
        self._freeze_stages()

    # ------------------------------------------------------------------
    # initialisation
    def init_weights(self) -> None:
        """Random init (or ``init_cfg``), then ``pretrained`` if given.

        mmaction2's ``pretrained2d=True`` crashes without a checkpoint;
        here no checkpoint simply means random init.
        """
        pretrained_cfg = isinstance(self.init_cfg, dict) and \
            self.init_cfg.get('type') == 'Pretrained'
        BaseModule.init_weights(self)
        if not pretrained_cfg:
            trunc_normal_(self.mask_token, std=.02)
        if self.pretrained is None:
            return
        if self.pretrained2d:
            inflate_2d_checkpoint(self, self.pretrained)
        else:
            load_3d_checkpoint(self, self.pretrained)

    def _freeze_stages(self) -> None:
        """Freeze as mmaction2 does, the image patch embedding included."""
        super()._freeze_stages()
        if self.frozen_stages >= 0 and hasattr(self, 'patch_embed_2d'):
            self.patch_embed_2d.eval()
            for param in self.patch_embed_2d.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'BEVTSwinTransformer3D':
        """Train mode with frozen stages kept; returns self (mmaction2's
        ``train`` returns None, which breaks ``model.eval()`` chains)."""
        super().train(mode)
        return self

    # ------------------------------------------------------------------
    # forward
    def attention_kind(self, device: torch.device) -> str:
        """The window-attention formula on ``device`` ('auto' resolved)."""
        if self.attention != 'auto':
            return self.attention
        return 'sdpa' if device.type == 'cuda' else 'eager'

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Token features of a masked clip or image batch.

        Args:
            x (Tensor): Clips (N, 3, T, H, W) (video stream) or images
                (N, 3, H, W) (image stream).
            mask (Tensor, optional): Bool, True = masked. Clips:
                (N, T/2, H/16, W/16); images: (N, H/16, W/16) (for Swin-B's
                patch (2, 4, 4) and four stages). Defaults to None.

        Returns:
            Tensor: (N, L, C) in (t, h, w) order: L = T*(H/16)*(W/16) for
            clips (time upsampled back to T), (H/16)*(W/16) for images.
        """
        decoder = self.image_decoder if x.dim() == 4 else self.video_decoder
        low, x = self._stages(x, mask)
        x = decoder(low, x)  # (N, T or 1, H/16, W/16, C)
        return getattr(self, self.final_norm_name)(x).flatten(1, 3)

    def forward_encoder(self, x: Tensor) -> Tensor:
        """Tokens of unmasked clips or images after the last stage and the
        final norm, without the fusion decoders.

        For clips these are the features that mmaction2's
        ``SwinTransformer3D`` computes from the converted weights (what a
        fine-tuned recognizer starts from); the kNN monitor pools them.

        Args:
            x (Tensor): Clips (N, 3, T, H, W) or images (N, 3, H, W).

        Returns:
            Tensor: (N, L, C) in (t, h, w) order: L = T/2*(H/32)*(W/32) for
            clips, (H/32)*(W/32) for images (Swin-B's patch and four
            stages).
        """
        x = self._stages(x, None)[1]  # (N, D, H/32, W/32, C)
        return getattr(self, self.final_norm_name)(x).flatten(1, 3)

    def _stages(self, x: Tensor,
                mask: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """Patch embedding (mask tokens in) and the four stages.

        Returns:
            tuple[Tensor, Tensor]: The stage-3 map before merging
            (N, D, H/16, W/16, 4C) and the stage-4 map (N, D, H/32, W/32,
            8C), with C = ``embed_dims`` and D = T/2 for clips, 1 for images.
        """
        image = x.dim() == 4
        x = self.pos_drop(self._embed(x, mask))  # (N, D, H/4, W/4, C)
        for i, layer in enumerate(self.layers):
            x = self._run_stage(layer, x, image)
            if i == self.num_layers - 2:
                low = x  # stage 3, before merging
            if layer.downsample is not None:
                x = layer.downsample(x)
        return low, x

    def _run_stage(self, layer: nn.Module, x: Tensor, image: bool) -> Tensor:
        """The blocks of one stage (no merging) on a map (B, D, H, W, C).

        Odd blocks are shifted. The official image path (quirk A) applies
        the shift mask in the un-shifted blocks too.
        """
        quirks = image and self.official_image_path
        window, shift = window_and_shift(x.shape[1:4], layer.window_size,
                                         layer.shift_size, quirks)
        attention = self.attention_kind(x.device)
        # mmaction2's -100 for its own formula, -inf (exact zeros) otherwise
        exact_zeros = attention != 'reference'
        mask = shift_mask(x.shape[1:4], window, shift, x.device, exact_zeros)
        for i, block in enumerate(layer.blocks):
            shifted = i % 2 == 1
            args = (block, x, window, shift if shifted else
                    (0, 0, 0), mask if shifted or quirks else None, attention)
            if self.with_cp and x.requires_grad:
                x = cp.checkpoint(swin_block, *args, use_reentrant=False)
            else:
                x = swin_block(*args)
        return x

    def _embed(self, x: Tensor, mask: Optional[Tensor]) -> Tensor:
        """Patch embedding and mask token: clips (N, 3, T, H, W) ->
        (N, T/2, H/4, W/4, C), images (N, 3, H, W) -> (N, 1, H/4, W/4, C)
        (Swin-B's patch); masked patches replaced by the mask token."""
        if x.dim() not in (4, 5):
            raise ValueError(
                'BEVTSwinTransformer3D takes clips (N, 3, T, H, '
                f'W) or images (N, 3, H, W), got {tuple(x.shape)}')
        pt, ph, pw = self.patch_size
        s = self.mask_scale
        H, W = x.shape[-2:]
        if H % (ph * s) or W % (pw * s):
            raise ValueError(
                f'inputs of size {H}x{W} are not divisible by patch x '
                f'{s} = {ph * s}x{pw * s}')
        if x.dim() == 5 and x.shape[2] % pt:
            raise ValueError(f'clips of {x.shape[2]} frames are not '
                             f'divisible by the temporal patch {pt}')
        if x.dim() == 4:
            x = self.patch_embed_2d(x).unsqueeze(1)  # (N, 1, Hp, Wp, C)
            mask = mask.unsqueeze(1) if mask is not None else None
        else:
            x = self.patch_embed(x).permute(0, 2, 3, 4, 1)  # (N,Tp,Hp,Wp,C)
        if mask is None:
            return x
        N, D, Hp, Wp, _ = x.shape
        if tuple(mask.shape) != (N, D, Hp // s, Wp // s):
            raise ValueError(
                f'input_mask has shape {tuple(mask.shape)} but the token '
                f'grid of this input is {(N, D, Hp // s, Wp // s)} (N, '
                f'T/{pt}, H/{ph * s}, W/{pw * s})')
        # (N, D, H/16, W/16) -> (N, D, H/4, W/4, 1): True = masked
        m = mask.repeat_interleave(s, dim=-2).repeat_interleave(s, dim=-1)
        m = m.unsqueeze(-1).to(x.dtype)
        return x * (1. - m) + self.mask_token.to(x.dtype) * m
