# Copyright (c) bevt contributors. All rights reserved.
"""The BEVT backbone: a masked Video Swin shared by an image and a video
stream, with the two fusion decoders of the official model."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmaction.models.backbones.swin import SwinTransformer3D
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from mmengine.runner.checkpoint import _load_checkpoint
from torch import Tensor

from bevt.registry import MODELS
from bevt.utils.checkpoint_convert import (extract_state_dict,
                                           rename_official_keys)
from .fusion_decoder import FusionDecoder
from .patch_embed_2d import PatchEmbed2D
from .swin3d_ops import (shift_attention_mask, stream_window_and_shift,
                         swin_block_forward)

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

    @staticmethod
    def _read_state_dict(path: str) -> Dict[str, Tensor]:
        """The backbone state dict of a checkpoint file, prefixes removed."""
        state_dict = extract_state_dict(
            _load_checkpoint(path, map_location='cpu'), path)
        if any(k.startswith('backbone.') for k in state_dict):
            state_dict = {
                k[len('backbone.'):]: v
                for k, v in state_dict.items() if k.startswith('backbone.')
            }
        cleaned = {}
        for key, value in state_dict.items():
            if key.startswith('encoder.'):
                key = key[len('encoder.'):]
            if 'relative_position_index' in key or 'attn_mask' in key:
                continue
            cleaned[key] = value
        return cleaned

    def _load_checked(self, state_dict: Dict[str, Tensor], path: str) -> None:
        """Non-strict load that refuses shape mismatches and logs the rest.

        mmengine's non-strict load only warns on a shape mismatch and leaves
        the parameter at random init, which would train silently.
        """
        own = self.state_dict()
        wrong = [(k, tuple(v.shape), tuple(own[k].shape))
                 for k, v in state_dict.items()
                 if k in own and v.shape != own[k].shape]
        if wrong:
            raise ValueError(f'{path}: shapes do not match this backbone '
                             f'(key, file, model): {wrong[:5]}')
        missing, unexpected = self.load_state_dict(state_dict, strict=False)
        logger = MMLogger.get_current_instance()
        logger.info(f'loaded {path} into {type(self).__name__}; missing '
                    f'keys: {missing}; unexpected keys: {unexpected}')

    def load_3d_checkpoint(self, path: str) -> None:
        """Load a 3D checkpoint of this backbone (ours or official BEVT)."""
        state_dict = rename_official_keys(
            self._read_state_dict(path), self.final_norm_name)
        self._load_checked(state_dict, path)

    def inflate_2d_checkpoint(self, path: str) -> None:
        """Initialise from a 2D (stage-1 image-stream) checkpoint.

        The official 2D->3D rules: prefixes ``module.``, ``backbone.`` and
        ``encoder.`` stripped; ``relative_position_index`` / ``attn_mask``
        dropped; ``fc_norm`` copied to ``norm``; the 2D patch embedding
        copied into ``patch_embed_2d``; the 3D kernel inflated by repeating
        it Pt times over time and dividing by Pt; every relative-position
        table resized (bicubic) to (2Wh-1)(2Ww-1) rows if needed and tiled
        (2Wd-1) times over the temporal offset; non-strict load.

        Args:
            path (str): Local checkpoint file.
        """
        state_dict = self._read_state_dict(path)
        if 'fc_norm.weight' in state_dict:
            state_dict['norm.weight'] = state_dict.pop('fc_norm.weight')
            state_dict['norm.bias'] = state_dict.pop('fc_norm.bias')
        state_dict = rename_official_keys(state_dict, self.final_norm_name)
        names = ('proj.weight', 'proj.bias', 'norm.weight', 'norm.bias')
        if 'patch_embed_2d.proj.weight' in state_dict:
            # a checkpoint of this model's image stream (our stage 1): its
            # video embedding was never trained, inflate the image one
            for name in names:
                if f'patch_embed_2d.{name}' in state_dict:
                    state_dict[f'patch_embed.{name}'] = \
                        state_dict[f'patch_embed_2d.{name}']
        for name in names:
            if f'patch_embed.{name}' in state_dict:
                state_dict.setdefault(f'patch_embed_2d.{name}',
                                      state_dict[f'patch_embed.{name}'])
        kernel = state_dict.get('patch_embed.proj.weight')
        if kernel is not None and kernel.dim() == 4:
            pt = self.patch_size[0]
            state_dict['patch_embed.proj.weight'] = \
                kernel.unsqueeze(2).repeat(1, 1, pt, 1, 1) / pt
        wd, wh, ww = self.window_size
        rows_2d = (2 * wh - 1) * (2 * ww - 1)
        for key, table in list(state_dict.items()):
            if not key.endswith('relative_position_bias_table'):
                continue
            if table.shape[0] == rows_2d * (2 * wd - 1):
                continue  # already 3D
            if table.shape[0] != rows_2d:
                side = int(table.shape[0]**0.5)
                table = F.interpolate(
                    table.t().reshape(1, -1, side, side),
                    size=(2 * wh - 1, 2 * ww - 1),
                    mode='bicubic').reshape(-1, rows_2d).t()
            state_dict[key] = table.repeat(2 * wd - 1, 1)
        self._load_checked(state_dict, path)

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
        quirks = image and self.official_image_path
        size = tuple(x.shape[1:4])
        window, shift = stream_window_and_shift(size, layer.window_size,
                                                layer.shift_size, quirks)
        mask = shift_attention_mask(size, window, shift, x.device)
        attention = self.attention_kind(x.device)
        no_shift = (0, 0, 0)
        for i, block in enumerate(layer.blocks):
            shifted = i % 2 == 1
            args = (block, x, window, shift if shifted else no_shift,
                    mask if shifted or quirks else None, attention)
            if self.with_cp and x.requires_grad:
                x = cp.checkpoint(
                    swin_block_forward, *args, use_reentrant=False)
            else:
                x = swin_block_forward(*args)
        return x

    def _encode(self, x: Tensor, image: bool) -> Tuple[Tensor, Tensor]:
        """Stages 1..n on patches; returns (stage n-1 map, stage n map)."""
        x = self.pos_drop(x)
        low = None
        for i, layer in enumerate(self.layers):
            x = self._run_stage(layer, x, image)
            if i == self.num_layers - 2:
                low = x  # before merging
            if layer.downsample is not None:
                x = layer.downsample(x)
        return low, x

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
        if x.dim() not in (4, 5):
            raise ValueError('BEVTSwinTransformer3D takes clips (N, 3, T, '
                             f'H, W) or images (N, 3, H, W), got {x.shape}')
        self._check_input(x)
        image = x.dim() == 4
        if image:
            x = self.patch_embed_2d(x).unsqueeze(1)  # (N, 1, Hp, Wp, C)
            mask = mask.unsqueeze(1) if mask is not None else None
        else:
            x = self.patch_embed(x).permute(0, 2, 3, 4, 1)  # (N,Tp,Hp,Wp,C)
        x = self._blend_mask(x, mask)
        low, high = self._encode(x, image)
        decoder = self.image_decoder if image else self.video_decoder
        x = decoder(low, high)  # (N, T or 1, H/16, W/16, C)
        x = getattr(self, self.final_norm_name)(x)
        return x.flatten(1, 3)
