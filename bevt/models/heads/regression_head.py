# Copyright (c) bevt contributors. All rights reserved.
"""Feature-regression head for MaskFeat-style (e.g. HOG) targets."""
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from bevt.registry import MODELS
from bevt.utils.typing_utils import OptMultiConfig
from .mim_head import BEVTBaseMaskedHead


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
        super().__init__(in_channels, target_dims, loss_weights, init_cfg)
        self.target_dims = target_dims

    def loss(self, feats: Tensor, target: Tensor, mask: Tensor,
             stream: str) -> Dict[str, Tensor]:
        """MSE over the masked tokens of one stream.

        Args:
            feats (Tensor): Tokens of shape (N, L, C).
            target (Tensor): Float targets of shape (N, L, D).
            mask (Tensor): Bool, (N, L); True = masked (predicted).
            stream (str): A key of ``loss_weights``, e.g. 'video' or 'img'.

        Returns:
            dict: ``loss_{stream}``, the weighted loss (a zero that keeps
            the graph if nothing is masked).
        """
        self._check(feats, target, mask, stream)
        if target.dim() != 3 or target.shape[-1] != self.target_dims:
            raise ValueError(f'target must be (N, L, {self.target_dims}); '
                             f'got {tuple(target.shape)}')
        mask = mask.bool()
        pred = self.fc(feats[mask])  # (M, D)
        if not mask.any():
            return {f'loss_{stream}': pred.sum() * 0.}
        # in float32, also under autocast
        loss = F.mse_loss(pred.float(), target[mask].float())
        return {f'loss_{stream}': loss * self.loss_weights[stream]}

    @torch.no_grad()
    def predict(self, feats: Tensor) -> Tensor:
        """Predicted target features of every token (for visualisation).

        Args:
            feats (Tensor): Tokens of shape (N, L, C).

        Returns:
            Tensor: Features of shape (N, L, D).
        """
        self._check(feats)
        return self(feats)
