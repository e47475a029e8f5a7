# Copyright (c) bevt contributors. All rights reserved.
"""Masked-image-modelling heads of BEVT: token logits and their loss."""
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from bevt.registry import MODELS
from bevt.utils.typing_utils import OptMultiConfig


class BEVTBaseMaskedHead(BaseModule):
    """Base of BEVT's masked-prediction heads: a ``Linear`` shared by the
    streams (``self.fc``), the per-stream loss weights and the input checks.

    Not registered; see :class:`BEVTMIMHead` and
    :class:`BEVTRegressionHead`.

    Args:
        in_channels (int): Channels C of the backbone tokens.
        out_channels (int): Outputs of ``self.fc`` per token.
        loss_weights (dict, optional): Weight of each stream's loss, keyed by
            stream name; the keys are the valid ``stream`` values. Defaults
            to ``dict(video=1.0, img=1.0)``.
        init_cfg (dict or List[dict], optional): Initialization config.
            Defaults to TruncNormal (std 0.02, bias 0) on ``Linear``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 loss_weights: Optional[Dict[str, float]] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        if init_cfg is None:
            init_cfg = dict(
                type='TruncNormal', layer='Linear', std=0.02, bias=0)
        super().__init__(init_cfg=init_cfg)
        if loss_weights is None:
            loss_weights = dict(video=1.0, img=1.0)
        if not isinstance(loss_weights, dict) or not loss_weights:
            raise ValueError('loss_weights must be a non-empty dict, got '
                             f'{loss_weights!r}')
        self.loss_weights = {k: float(v) for k, v in loss_weights.items()}
        self.in_channels = in_channels
        self.fc = nn.Linear(in_channels, out_channels)

    def forward(self, feats: Tensor) -> Tensor:
        """Per-token outputs of ``self.fc``.

        Args:
            feats (Tensor): Tokens of shape (N, L, C).

        Returns:
            Tensor: Shape (N, L, out_channels).
        """
        return self.fc(feats)

    def _check(self,
               feats: Tensor,
               target: Optional[Tensor] = None,
               mask: Optional[Tensor] = None,
               stream: Optional[str] = None) -> None:
        """Raise a ``ValueError`` naming the shapes (or the stream) of
        inputs that do not fit: feats (N, L, C), target (N, L[, D]),
        mask (N, L)."""
        shapes = f'feats {tuple(feats.shape)}'
        if target is not None:
            shapes += (f', target {tuple(target.shape)}, '
                       f'mask {tuple(mask.shape)}')
        if feats.dim() != 3 or feats.shape[-1] != self.in_channels:
            raise ValueError(
                f'feats must be (N, L, {self.in_channels}); got {shapes}')
        if target is not None and (target.shape[:2] != feats.shape[:2]
                                   or mask.shape != feats.shape[:2]):
            raise ValueError(
                f'target and mask must start with (N, L) of feats; got '
                f'{shapes}')
        if stream is not None and stream not in self.loss_weights:
            raise ValueError(f'Unknown stream {stream!r}; expected one of '
                             f'{sorted(self.loss_weights)}')


@MODELS.register_module()
class BEVTMIMHead(BEVTBaseMaskedHead):
    """Visual-token prediction head of `BEVT: BERT Pretraining of Video
    Transformers <https://arxiv.org/abs/2112.01529>`_.

    One ``Linear(in_channels, num_classes)`` (``self.fc``, the official
    ``cls_head.lm_head``) is shared by the video and the image stream. The
    loss is the cross entropy (mean reduction) over the masked tokens of
    one stream, times that stream's weight.

    Args:
        in_channels (int): Channels C of the backbone tokens.
        num_classes (int): Tokenizer vocabulary size. Defaults to 8192.
        loss_weights (dict, optional): See :class:`BEVTBaseMaskedHead`.
            Defaults to ``dict(video=1.0, img=1.0)``.
        gather_masked (bool): If True, gather the masked tokens before the
            vocabulary projection (less work); if False, project every
            token and select afterwards, as the official code does. Both
            give the same loss and gradients. Defaults to True.
        init_cfg (dict or List[dict], optional): Initialization config.
            Defaults to TruncNormal (std 0.02, bias 0) on ``Linear``.
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int = 8192,
                 loss_weights: Optional[Dict[str, float]] = None,
                 gather_masked: bool = True,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(in_channels, num_classes, loss_weights, init_cfg)
        self.num_classes = num_classes
        self.gather_masked = gather_masked

    def loss(self, feats: Tensor, target: Tensor, mask: Tensor,
             stream: str) -> Dict[str, Tensor]:
        """Cross entropy over the masked tokens of one stream.

        Args:
            feats (Tensor): Tokens of shape (N, L, C), L in (t, h, w) order.
            target (Tensor): Long token ids of shape (N, L); -1 (a cell the
                tokenizer skipped) is allowed only where ``mask`` is False.
            mask (Tensor): Bool, (N, L); True = masked (predicted).
            stream (str): A key of ``loss_weights``, e.g. 'video' or 'img'.

        Returns:
            dict: ``loss_{stream}``, the weighted loss (a zero that keeps
            the graph if nothing is masked), and ``acc_{stream}``, the top-1
            accuracy over the masked tokens in [0, 1] (0 if nothing is
            masked).
        """
        self._check(feats, target, mask, stream)
        if target.dim() != 2 or target.is_floating_point():
            raise TypeError('target must be (N, L) integer token ids, got '
                            f'{target.dtype} {tuple(target.shape)}')
        mask = mask.bool()
        target = target[mask]  # (M, )
        bad = (target < 0) | (target >= self.num_classes)
        if bad.any():
            raise ValueError(
                f'Masked targets must lie in [0, {self.num_classes}) (-1 = '
                'a cell the tokenizer skipped but the mask predicts); got '
                f'{target[bad].unique().tolist()}')
        if self.gather_masked:  # (M, C) -> (M, num_classes)
            logits = self.fc(feats[mask])
        else:  # the official way: (N, L, num_classes) -> (M, num_classes)
            logits = self.fc(feats)[mask]
        if target.numel() == 0:
            return {
                f'loss_{stream}': logits.sum() * 0.,
                f'acc_{stream}': feats.new_zeros((), dtype=torch.float32)
            }
        loss = F.cross_entropy(logits, target) * self.loss_weights[stream]
        acc = (logits.detach().argmax(-1) == target).float().mean()
        return {f'loss_{stream}': loss, f'acc_{stream}': acc}

    @torch.no_grad()
    def predict(self, feats: Tensor) -> Tensor:
        """Predicted token ids of every token (for visualisation).

        Args:
            feats (Tensor): Tokens of shape (N, L, C).

        Returns:
            Tensor: Long ids of shape (N, L).
        """
        self._check(feats)
        return self(feats).argmax(-1)
