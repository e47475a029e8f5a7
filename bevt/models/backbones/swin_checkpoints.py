# Copyright (c) bevt contributors. All rights reserved.
"""Checkpoint loading of :class:`~.bevt_swin.BEVTSwinTransformer3D`: its own
3D checkpoints, official BEVT ones, and 2D (stage-1 or Swin) checkpoints
inflated to 3D by the official rules."""
from typing import Dict

import torch.nn.functional as F
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import _load_checkpoint
from torch import Tensor

from bevt.utils.checkpoint_convert import (extract_state_dict,
                                           rename_official_keys)


class SwinCheckpointMixin:
    """``load_3d_checkpoint`` and ``inflate_2d_checkpoint`` for a Video Swin
    with BEVT's parts (``patch_embed_2d``, ``final_norm_name``,
    ``patch_size``, ``window_size``)."""

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
