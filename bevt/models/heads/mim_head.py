# Copyright (c) bevt contributors. All rights reserved.
"""Masked-image-modelling heads of BEVT: token logits and their loss."""
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from bevt.models.utils import masked_positions
from bevt.registry import MODELS
from bevt.utils.typing_utils import OptMultiConfig


def _shape(x: Tensor) -> tuple:
    """The shape of ``x`` as a plain tuple (for error messages)."""
    return tuple(x.shape)


def check_target_ids(target: Tensor, num_classes: int) -> None:
    """Check that token ids lie in [0, ``num_classes``).

    Through ``torch._assert_async``, so that the host does not wait for the
    device: on CUDA a failure is a device-side assert reported at a later
    sync; on CPU it raises at once, as a ``ValueError`` naming the ids.

    Args:
        target (Tensor): int64 ids (M, ).
        num_classes (int): Vocabulary size.
    """
    bad = (target < 0) | (target >= num_classes)
    message = (f'Masked targets must lie in [0, {num_classes}) (-1 = a '
               'frame the tokenizer skipped but the mask predicts)')
    try:
        torch._assert_async(bad.any().logical_not(), message)
    except RuntimeError:  # CPU: raised here
        raise ValueError(
            f'{message}; got {target[bad].unique().tolist()}') from None


def check_masked_inputs(feats: Tensor, target: Tensor, mask: Tensor,
                        in_channels: int, target_ndim: int) -> None:
    """Check the shapes of a masked-prediction head's inputs.

    Args:
        feats (Tensor): Tokens of shape (N, L, C).
        target (Tensor): Targets of shape (N, L) if ``target_ndim`` is 2, or
            (N, L, D) if it is 3.
        mask (Tensor): Bool, (N, L); True = masked (predicted).
        in_channels (int): The expected C.
        target_ndim (int): 2 (token ids) or 3 (feature targets).

    Raises:
        ValueError: If a shape does not match, with all shapes in the message.
    """
    shapes = (f'feats {_shape(feats)}, target {_shape(target)}, '
              f'mask {_shape(mask)}')
    if feats.dim() != 3 or feats.shape[-1] != in_channels:
        raise ValueError(f'feats must be (N, L, {in_channels}); got {shapes}')
    if target.dim() != target_ndim or target.shape[:2] != feats.shape[:2]:
        want = '(N, L)' if target_ndim == 2 else '(N, L, D)'
        raise ValueError(f'target must be {want} with (N, L) of feats; '
                         f'got {shapes}')
    if mask.shape != feats.shape[:2]:
        raise ValueError(f'mask must be (N, L) of feats; got {shapes}')


class BEVTBaseMaskedHead(BaseModule):
    """Base of BEVT's masked-prediction heads: per-stream loss weights.

    Not registered; see :class:`BEVTMIMHead` and
    :class:`BEVTRegressionHead`.

    Args:
        loss_weights (dict, optional): Weight of each stream's loss, keyed by
            stream name; the keys are the valid ``stream`` values. Defaults
            to ``dict(video=1.0, img=1.0)``.
        init_cfg (dict or List[dict], optional): Initialization config.
            Defaults to TruncNormal (std 0.02, bias 0) on ``Linear``.
    """

    def __init__(self,
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

    def loss_weight(self, stream: str) -> float:
        """The weight of ``stream``'s loss.

        Raises:
            ValueError: If ``stream`` is not a key of ``loss_weights``.
        """
        if stream not in self.loss_weights:
            raise ValueError(f'Unknown stream {stream!r}; expected one of '
                             f'{sorted(self.loss_weights)}')
        return self.loss_weights[stream]


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
            vocabulary projection (cheaper); if False, project every token
            and select afterwards, as the official code does. Both give
            the same loss and gradients. Defaults to True.
        init_cfg (dict or List[dict], optional): Initialization config.
            Defaults to TruncNormal (std 0.02, bias 0) on ``Linear``.
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int = 8192,
                 loss_weights: Optional[Dict[str, float]] = None,
                 gather_masked: bool = True,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(loss_weights=loss_weights, init_cfg=init_cfg)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.gather_masked = gather_masked
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, feats: Tensor) -> Tensor:
        """Token logits.

        Args:
            feats (Tensor): Tokens of shape (N, L, C).

        Returns:
            Tensor: Logits of shape (N, L, num_classes).
        """
        return self.fc(feats)

    def loss(self,
             feats: Tensor,
             target: Tensor,
             mask: Tensor,
             stream: str,
             positions: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Cross entropy over the masked tokens of one stream.

        The ids of the masked tokens are checked to lie in the vocabulary
        without a host sync (:func:`check_target_ids`).

        Args:
            feats (Tensor): Tokens of shape (N, L, C), L in (t, h, w) order.
            target (Tensor): Long token ids of shape (N, L); -1 (a skipped
                frame) is allowed only where ``mask`` is False.
            mask (Tensor): Bool, (N, L); True = masked (predicted).
            stream (str): A key of ``loss_weights``, e.g. 'video' or 'img'.
            positions (Tensor, optional): :func:`masked_positions` of
                ``mask``, read by the caller before it queued the forward
                (BEVT does); computed here if not given. Defaults to None.

        Returns:
            dict: ``loss_{stream}``, the weighted loss (a zero that keeps
            the graph if nothing is masked), and ``acc_{stream}``, the top-1
            accuracy over the masked tokens as a fraction in [0, 1] (0 if
            nothing is masked).
        """
        weight = self.loss_weight(stream)
        check_masked_inputs(feats, target, mask, self.in_channels, 2)
        if target.is_floating_point():
            raise TypeError('target must hold integer token ids, got '
                            f'{target.dtype} (pass ids, not logits)')
        mask = mask.to(torch.bool)
        where = masked_positions(mask) if positions is None else positions
        target = target.flatten().index_select(0, where)  # (M, )
        check_target_ids(target, self.num_classes)
        if self.gather_masked:  # (N*L, C) -> (M, C) -> (M, num_classes)
            logits = self.fc(feats.flatten(0, 1).index_select(0, where))
        else:  # the official way: (N, L, K) -> (M, K)
            logits = self.fc(feats)[mask]
        if target.numel() == 0:
            loss = logits.sum() * 0.
            acc = feats.new_zeros((), dtype=torch.float32)
        else:
            loss = F.cross_entropy(logits, target) * weight
            with torch.no_grad():
                acc = (logits.argmax(-1) == target).float().mean()
        return {f'loss_{stream}': loss, f'acc_{stream}': acc}

    @torch.no_grad()
    def predict(self, feats: Tensor) -> Tensor:
        """Predicted token ids of every token (for visualisation).

        Args:
            feats (Tensor): Tokens of shape (N, L, C).

        Returns:
            Tensor: Long ids of shape (N, L).
        """
        if feats.dim() != 3 or feats.shape[-1] != self.in_channels:
            raise ValueError(f'feats must be (N, L, {self.in_channels}); '
                             f'got {_shape(feats)}')
        return self.fc(feats).argmax(-1)
