# Copyright (c) bevt contributors. All rights reserved.
"""Checkpoint knowledge of :class:`~.bevt_swin.BEVTSwinTransformer3D`:
official key names, 2D->3D inflation, and one checked load.

The converters (:mod:`bevt.utils.checkpoint_convert`) import this module;
it imports no converter.
"""
import re
from typing import Callable, Dict, Optional

import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import _load_checkpoint
from torch import Tensor

#: official BEVT (``SwinTransformerBEVT``) state-dict names -> ours
OFFICIAL_KEY_RENAMES = (
    (r'^lm_down\.', 'image_decoder.reduce.'),
    (r'^fpn\.0\.', 'image_decoder.upsample_spatial.'),
    (r'^lm_down_st\.0\.', 'video_decoder.reduce.'),
    (r'^fpn_s\.0\.', 'video_decoder.upsample_spatial.'),
    (r'^fpn_t\.0\.', 'video_decoder.upsample_temporal.'),
)


def rename_official_keys(state_dict: Dict[str, Tensor],
                         final_norm: str = 'norm3') -> Dict[str, Tensor]:
    """Map official BEVT backbone keys (no ``backbone.`` prefix) to ours.

    The fusion decoders get descriptive names and the final ``norm``
    becomes mmaction2's ``norm{last stage}``; everything else (patch
    embeddings, blocks, merging layers, ``mask_token``) keeps its name.

    Args:
        state_dict (dict): Backbone state dict in the official layout.
        final_norm (str): Our name of the final norm. Defaults to 'norm3'.

    Returns:
        dict: The renamed state dict (a new dict, same tensors).
    """
    renamed = {}
    for key, value in state_dict.items():
        for pattern, new in OFFICIAL_KEY_RENAMES:
            key = re.sub(pattern, new, key)
        key = re.sub(r'^norm\.', f'{final_norm}.', key)
        renamed[key] = value
    return renamed


def checkpoint_weights(checkpoint: dict,
                       path: str = '<checkpoint>',
                       note: Optional[Callable[[str], None]] = None
                       ) -> Dict[str, Tensor]:
    """The weights of a loaded checkpoint, ``module.`` prefixes stripped.

    Args:
        checkpoint (dict): A checkpoint with a ``state_dict``, ``model`` or
            ``module`` entry (tried in this order), or a plain state dict.
        path (str): File name for error messages. Defaults to
            '<checkpoint>'.
        note (callable, optional): Told which entry held the weights and
            how many ``module.`` prefixes were stripped. Defaults to None.

    Returns:
        dict: Tensor values by key.

    Raises:
        ValueError: If no dict of tensors is found (naming the top-level
            keys), or the state dict holds values that are not tensors.
    """
    state_dict = checkpoint
    for key in ('state_dict', 'model', 'module'):
        if isinstance(checkpoint.get(key), dict):
            state_dict = checkpoint[key]
            if note is not None:
                note(f'weights taken from the {key!r} entry')
            break
    tensors = {k: v for k, v in state_dict.items() if isinstance(v, Tensor)}
    if not tensors:
        raise ValueError(f'{path}: no state dict found (top-level keys: '
                         f'{sorted(map(str, checkpoint))[:10]})')
    others = sorted(set(state_dict) - set(tensors))
    if others:
        raise ValueError(f'{path}: non-tensor values in the state dict: '
                         f'{others[:10]}')
    stripped, count = {}, 0
    for key, value in tensors.items():
        bare = re.sub(r'^(module\.)+', '', key)
        count += (len(key) - len(bare)) // len('module.')
        stripped[bare] = value
    if count and note is not None:
        note(f'stripped the DDP prefix "module." from {count} keys')
    return stripped


def read_backbone_state_dict(path: str) -> Dict[str, Tensor]:
    """The backbone weights of a checkpoint file.

    The weights of :func:`checkpoint_weights`; only the ``backbone.*`` keys
    when there are any (prefix removed), ``encoder.`` stripped, and without
    the buffers that are rebuilt for this model
    (``relative_position_index``, ``attn_mask``).
    """
    state_dict = checkpoint_weights(
        _load_checkpoint(path, map_location='cpu'), path)
    if any(k.startswith('backbone.') for k in state_dict):
        state_dict = {
            k[len('backbone.'):]: v
            for k, v in state_dict.items() if k.startswith('backbone.')
        }
    return {
        re.sub(r'^encoder\.', '', k): v
        for k, v in state_dict.items()
        if 'relative_position_index' not in k and 'attn_mask' not in k
    }


def load_checked(model: nn.Module, state_dict: Dict[str, Tensor],
                 path: str) -> None:
    """Non-strict load that refuses shape mismatches and logs the rest.

    mmengine's non-strict load only warns on a shape mismatch and leaves
    the parameter at random init, which would train silently.
    """
    own = model.state_dict()
    wrong = [(k, tuple(v.shape), tuple(own[k].shape))
             for k, v in state_dict.items()
             if k in own and v.shape != own[k].shape]
    if wrong:
        raise ValueError(f'{path}: shapes do not match this backbone '
                         f'(key, file, model): {wrong[:5]}')
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    MMLogger.get_current_instance().info(
        f'loaded {path} into {type(model).__name__}; missing keys: '
        f'{missing}; unexpected keys: {unexpected}')


def load_3d_checkpoint(model: nn.Module, path: str) -> None:
    """Load a 3D checkpoint of the backbone (ours or official BEVT)."""
    state_dict = rename_official_keys(
        read_backbone_state_dict(path), model.final_norm_name)
    load_checked(model, state_dict, path)


def inflate_2d_checkpoint(model: nn.Module, path: str) -> None:
    """Initialise the backbone from a 2D (stage-1 image-stream or Swin)
    checkpoint, by the official 2D->3D rules.

    Prefixes ``module.``, ``backbone.`` and ``encoder.`` stripped;
    ``relative_position_index`` / ``attn_mask`` dropped; ``fc_norm`` copied
    to ``norm``; the 2D patch embedding copied into ``patch_embed_2d``; the
    3D kernel inflated by repeating it Pt times over time and dividing by
    Pt; every relative-position table resized (bicubic) to
    (2Wh-1)(2Ww-1) rows if needed and tiled (2Wd-1) times over the temporal
    offset; non-strict load.

    Args:
        model (BEVTSwinTransformer3D): The backbone.
        path (str): Local checkpoint file.
    """
    state_dict = read_backbone_state_dict(path)
    if 'fc_norm.weight' in state_dict:
        state_dict['norm.weight'] = state_dict.pop('fc_norm.weight')
        state_dict['norm.bias'] = state_dict.pop('fc_norm.bias')
    state_dict = rename_official_keys(state_dict, model.final_norm_name)
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
        pt = model.patch_size[0]
        state_dict['patch_embed.proj.weight'] = \
            kernel.unsqueeze(2).repeat(1, 1, pt, 1, 1) / pt
    wd, wh, ww = model.window_size
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
    load_checked(model, state_dict, path)
