# Copyright (c) bevt contributors. All rights reserved.
"""Feature-regression head for MaskFeat-style (e.g. HOG) targets."""
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from bevt.models.utils import masked_positions
from bevt.registry import MODELS
from bevt.utils.typing_utils import OptMultiConfig
from .mim_head import BEVTBaseMaskedHead, check_masked_inputs


@MODELS.register_module()
class BEVTRegressionHead(BEVTBaseMaskedHead):
    """Masked-feature regression head for `BEVT: BERT Pretraining of Video
    Transformers <https://arxiv.org/abs/2112.01529>`_ with continuous (e.g.
    HOG, as in MaskFeat) targets instead of visual tokens.

    The masked tokens are gathered, projected by ``self.fc`` (a
    ``Linear(in_channels, target_dims)`` shared by the streams), and the
    loss is the MSE against the target, averaged over the masked tokens and
    the target dims, times the stream's weight.

    Args:
        in_channels (int): Channels C of the backbone tokens.
        target_dims (int): Dims D of one token's target.
        loss_weights (dict, optional): Weight of each stream's loss, keyed by
            stream name. Defaults to ``dict(video=1.0, img=1.0)``.
        init_cfg (dict or List[dict], optional): Initialization config.
            Defaults to TruncNormal (std 0.02, bias 0) on ``Linear``.
    """

    def __init__(self,
                 in_channels: int,
                 target_dims: int,
                 loss_weights: Optional[Dict[str, float]] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(loss_weights=loss_weights, init_cfg=init_cfg)
        self.in_channels = in_channels
        self.target_dims = target_dims
        self.fc = nn.Linear(in_channels, target_dims)

    def loss(self,
             feats: Tensor,
             target: Tensor,
             mask: Tensor,
             stream: str,
             positions: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """MSE over the masked tokens of one stream.

        Args:
            feats (Tensor): Tokens of shape (N, L, C).
            target (Tensor): Float targets of shape (N, L, D).
            mask (Tensor): Bool, (N, L); True = masked (predicted).
            stream (str): A key of ``loss_weights``, e.g. 'video' or 'img'.
            positions (Tensor, optional): :func:`masked_positions` of
                ``mask``, read by the caller; computed here if not given.
                Defaults to None.

        Returns:
            dict: ``loss_{stream}``, the weighted loss (a zero that keeps
            the graph if nothing is masked).
        """
        weight = self.loss_weight(stream)
        check_masked_inputs(feats, target, mask, self.in_channels, 3)
        if target.shape[-1] != self.target_dims:
            raise ValueError(f'target must be (N, L, {self.target_dims}); '
                             f'got {tuple(target.shape)}')
        where = masked_positions(mask.to(torch.bool)) \
            if positions is None else positions  # (M, )
        pred = self.fc(feats.flatten(0, 1).index_select(0, where))  # (M, D)
        target = target.flatten(0, 1).index_select(0, where)  # (M, D)
        if target.shape[0] == 0:
            loss = pred.sum() * 0.
        else:
            # in float32, also under autocast
            loss = F.mse_loss(pred.float(), target.float()) * weight
        return {f'loss_{stream}': loss}

    @torch.no_grad()
    def predict(self, feats: Tensor) -> Tensor:
        """Predicted target features of every token (for visualisation).

        Args:
            feats (Tensor): Tokens of shape (N, L, C).

        Returns:
            Tensor: Features of shape (N, L, D).
        """
        if feats.dim() != 3 or feats.shape[-1] != self.in_channels:
            raise ValueError(f'feats must be (N, L, {self.in_channels}); '
                             f'got {tuple(feats.shape)}')
        return self.fc(feats)
