# Copyright (c) bevt contributors. All rights reserved.
"""The image stream's own patch embedding."""
from typing import Dict, Optional, Sequence

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor


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
        """Embed images.

        Args:
            x (Tensor): Images of shape (B, C, H, W).

        Returns:
            Tensor: Channels-last patches (B, H/Ph, W/Pw, embed_dims).
        """
        ph, pw = self.patch_size
        x = F.pad(x, (0, -x.shape[-1] % pw, 0, -x.shape[-2] % ph))
        x = self.proj(x).permute(0, 2, 3, 1)  # (B, Hp, Wp, C)
        return self.norm(x) if self.norm is not None else x
