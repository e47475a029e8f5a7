# Copyright (c) bevt contributors. All rights reserved.
"""BEVT's fusion decoders (stage 3 + upsampled stage 4)."""
import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor


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
