# Copyright (c) bevt contributors. All rights reserved.
"""The BEVT backbone: a masked Video Swin shared by an image and a video
stream, with the two fusion decoders of the official model."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmaction.models.backbones.swin import PatchMerging, SwinTransformer3D
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor

from bevt.registry import MODELS
from .fusion_decoder import FusionDecoder
from .joint_streams import StreamStage, run_blocks
from .patch_embed_2d import PatchEmbed2D
from .swin3d_ops import shift_attention_mask, stream_window_and_shift
from .swin_checkpoints import SwinCheckpointMixin
from .window_tokens import merge_patches

DEFAULT_INIT_CFG = [
    dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.),
    dict(type='Constant', layer='LayerNorm', val=1., bias=0.)
]


@MODELS.register_module()
class BEVTSwinTransformer3D(SwinCheckpointMixin, SwinTransformer3D):
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
            (see :meth:`inflate_2d_checkpoint`); otherwise it is a 3D
            checkpoint of this backbone. Defaults to True.
        patch_size (Sequence[int]): Video patch (Pt, Ph, Pw); the image
            patch is (Ph, Pw). Defaults to (2, 4, 4).
        window_size (Sequence[int]): Window. Defaults to (8, 7, 7).
        drop_path_rate (float): Stochastic depth. Defaults to 0.3.
        with_cp (bool): Gradient checkpointing of every block, on both
            streams. Defaults to False.
        official_image_path (bool): Reproduce the official image-path
            quirks A and B. Defaults to True.
        fused_attention (bool | str): True: window attention through
            ``scaled_dot_product_attention``; False: the eager formula
            (:func:`~bevt.models.backbones.swin3d_ops.eager_window_attention`,
            mmaction2's with a cheaper bias gradient); ``'auto'``: the
            fused kernel on CUDA, eager elsewhere (on CPU, SDPA with a
            relative-position bias that needs a gradient falls back to its
            math kernel, slower than the eager formula); ``'reference'``:
            mmaction2's own ``WindowAttention3D.forward``, the official
            code's formula (for benchmarks). All give the same result up to
            float rounding. Defaults to 'auto'.
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
                 fused_attention: Union[bool, str] = 'auto',
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None,
                 **kwargs) -> None:
        for key in ('out_indices', 'out_after_downsample'):
            if key in kwargs:
                raise TypeError(f'BEVTSwinTransformer3D fixes {key}')
        if isinstance(patch_size, int) or len(patch_size) != 3:
            raise ValueError(f'patch_size must be (Pt, Ph, Pw), got '
                             f'{patch_size}')
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
        if fused_attention not in (True, False, 'auto', 'reference'):
            raise ValueError(f'Invalid fused_attention: {fused_attention!r}; '
                             "expected True, False, 'auto' or 'reference'")
        self.fused_attention = fused_attention
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
            self.inflate_2d_checkpoint(self.pretrained)
        else:
            self.load_3d_checkpoint(self.pretrained)

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
    def _blend_mask(self, x: Tensor, mask: Optional[Tensor]) -> Tensor:
        """Replace masked patches by the mask token.

        Args:
            x (Tensor): Patches (B, D, Hp, Wp, C), channels-last.
            mask (Tensor, optional): Bool (B, D, Hp/s, Wp/s), True = masked,
                s = ``self.mask_scale`` (4 for Swin-B: the stride-16 grid).

        Returns:
            Tensor: (B, D, Hp, Wp, C).
        """
        if mask is None:
            return x
        B, D, Hp, Wp, _ = x.shape
        s = self.mask_scale
        grid = (B, D, -(-Hp // s), -(-Wp // s))
        if tuple(mask.shape) != grid:
            raise ValueError(
                f'input_mask has shape {tuple(mask.shape)} but the token '
                f'grid of this input is {grid} (N, T/{self.patch_size[0]}, '
                f'H/{self.patch_size[1] * s}, W/{self.patch_size[2] * s})')
        m = mask.repeat_interleave(s, dim=-2).repeat_interleave(s, dim=-1)
        m = m[:, :, :Hp, :Wp].unsqueeze(-1).to(x.dtype)
        return x * (1. - m) + self.mask_token.to(x.dtype) * m

    def attention_kind(self, device: torch.device) -> str:
        """The window-attention path on ``device``: 'fused', 'eager' or
        'reference' (see ``fused_attention``)."""
        if self.fused_attention == 'reference':
            return 'reference'
        fused = device.type == 'cuda' if self.fused_attention == 'auto' \
            else self.fused_attention
        return 'fused' if fused else 'eager'

    def _run_stage(self, layer: nn.Module, x: Tensor, image: bool) -> Tensor:
        """The blocks of one stage (no merging) on a channels-last map."""
        return self._run_stage_streams(layer, [x], [image])[0]

    def _run_stage_streams(self, layer: nn.Module, maps: List[Tensor],
                           images: List[bool]) -> List[Tensor]:
        """The blocks of one stage on the maps of several streams, jointly
        where possible (:func:`~.joint_streams.run_blocks`)."""
        stages = [
            self._stream_stage(layer, x, image)
            for x, image in zip(maps, images)
        ]
        return run_blocks(layer.blocks, maps, stages,
                          self.attention_kind(maps[0].device), self.with_cp)

    def _stream_stage(self, layer: nn.Module, x: Tensor,
                      image: bool) -> StreamStage:
        """Window, shift and shift mask of one stream's map in ``layer``."""
        quirks = image and self.official_image_path
        size = tuple(x.shape[1:4])
        window, shift = stream_window_and_shift(size, layer.window_size,
                                                layer.shift_size, quirks)
        mask = shift_attention_mask(size, window, shift, x.device)
        return StreamStage(window, shift, mask, quirks)

    def _encode(self, x: Tensor, image: bool) -> Tuple[Tensor, Tensor]:
        """Stages 1..n on patches; returns (stage n-1 map, stage n map)."""
        lows, highs = self._encode_streams([x], [image])
        return lows[0], highs[0]

    def _encode_streams(self, maps: List[Tensor], images: List[bool]
                        ) -> Tuple[List[Tensor], List[Tensor]]:
        """:meth:`_encode` of several streams, stage by stage (``maps`` is
        emptied when the blocks run jointly, see
        :func:`~.joint_streams.run_blocks`)."""
        maps[:] = [self.pos_drop(x) for x in maps]
        lows: List[Tensor] = []
        for i, layer in enumerate(self.layers):
            maps = self._run_stage_streams(layer, maps, images)
            if i == self.num_layers - 2:
                lows = maps  # before merging
            if layer.downsample is not None:
                maps = self._merge(layer.downsample, maps)
        return lows, maps

    def _merge(self, merging: nn.Module, maps: List[Tensor]) -> List[Tensor]:
        """The stage's ``downsample`` of each map: mmaction2's
        ``PatchMerging`` by one gather, all maps at once
        (:func:`~.window_tokens.merge_patches`) unless the attention is
        ``'reference'``."""
        if type(merging) is PatchMerging and \
                self.attention_kind(maps[0].device) != 'reference':
            return merge_patches(merging, maps)
        return [merging(x) for x in maps]

    def _check_input(self, x: Tensor) -> None:
        pt, ph, pw = self.patch_size
        step_h, step_w = ph * self.mask_scale, pw * self.mask_scale
        H, W = x.shape[-2:]
        if H % step_h or W % step_w:
            raise ValueError(
                f'inputs of size {H}x{W} are not divisible by patch x '
                f'{self.mask_scale} = {step_h}x{step_w}')
        if x.dim() == 5 and x.shape[2] % pt:
            raise ValueError(f'clips of {x.shape[2]} frames are not '
                             f'divisible by the temporal patch {pt}')

    def forward(
        self,
        x: Union[Tensor, Sequence[Tensor]],
        mask: Union[Optional[Tensor], Sequence[Optional[Tensor]]] = None
    ) -> Union[Tensor, Tuple[Tensor, ...]]:
        """Token features of a masked clip or image batch, or of several.

        Given a sequence of batches (e.g. BEVT's clips and images), each
        block runs once for all of them where their windows allow it
        (:mod:`~bevt.models.backbones.joint_streams`): the same features as
        one call per batch, up to float rounding, with fewer operators (the
        per-token layers run once for all batches).

        Args:
            x (Tensor | Sequence[Tensor]): Clips (N, 3, T, H, W) (video
                stream) or images (N, 3, H, W) (image stream), or a
                sequence of such batches.
            mask (Tensor | Sequence[Tensor], optional): Bool, True = masked.
                Clips: (N, T/2, H/16, W/16); images: (N, H/16, W/16) (for
                Swin-B's patch (2, 4, 4) and four stages); one per batch
                (or None) for a sequence. Defaults to None.

        Returns:
            Tensor | tuple[Tensor]: (N, L, C) in (t, h, w) order:
            L = T*(H/16)*(W/16) for clips (time upsampled back to T),
            (H/16)*(W/16) for images; a tuple for a sequence.
        """
        if isinstance(x, Tensor):
            return self._forward_streams([x], [mask])[0]
        masks = [None] * len(x) if mask is None else list(mask)
        if len(masks) != len(x) or not x:
            raise ValueError(f'got {len(x)} input batches and {len(masks)} '
                             'masks; expected one mask (or None) per batch')
        return tuple(self._forward_streams(list(x), masks))

    def _forward_streams(self, batches: List[Tensor],
                         masks: List[Optional[Tensor]]) -> List[Tensor]:
        """:meth:`forward` of a list of batches."""
        images = [x.dim() == 4 for x in batches]
        maps = [self._embed(x, mask) for x, mask in zip(batches, masks)]
        lows, highs = self._encode_streams(maps, images)
        outs = []
        for low, high, image in zip(lows, highs, images):
            decoder = self.image_decoder if image else self.video_decoder
            x = decoder(low, high)  # (N, T or 1, H/16, W/16, C)
            outs.append(getattr(self, self.final_norm_name)(x).flatten(1, 3))
        return outs

    def _embed(self, x: Tensor, mask: Optional[Tensor]) -> Tensor:
        """Patch embedding and mask token of one batch: clips
        (N, 3, T, H, W) -> (N, T/2, H/4, W/4, C), images (N, 3, H, W) ->
        (N, 1, H/4, W/4, C) (Swin-B's patch)."""
        if x.dim() not in (4, 5):
            raise ValueError(
                'BEVTSwinTransformer3D takes clips (N, 3, T, H, '
                f'W) or images (N, 3, H, W), got {tuple(x.shape)}')
        self._check_input(x)
        if x.dim() == 4:
            x = self.patch_embed_2d(x).unsqueeze(1)  # (N, 1, Hp, Wp, C)
            mask = mask.unsqueeze(1) if mask is not None else None
        else:
            x = self.patch_embed(x).permute(0, 2, 3, 4, 1)  # (N,Tp,Hp,Wp,C)
        return self._blend_mask(x, mask)
