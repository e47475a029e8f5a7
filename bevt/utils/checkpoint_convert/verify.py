# Copyright (c) bevt contributors. All rights reserved.
"""Strict verification: build the target module from the weights."""
import re
from typing import Dict, Sequence

import torch.nn as nn

from ._common import _LIST_LIMIT, _TABLE, StateDict


# architecture inference and strict verification
def infer_swin3d_kwargs(state_dict: StateDict) -> dict:
    """Constructor arguments of a Video Swin from its backbone weights.

    Args:
        state_dict (dict): Backbone weights (mmaction2 names, no prefix).

    Returns:
        dict: ``arch`` (``embed_dims`` from ``patch_embed.proj.weight``,
        ``depths`` from the block indices, ``num_heads`` from the table
        columns), ``patch_size``, ``in_channels``, ``mlp_ratio``,
        ``qkv_bias`` and ``patch_norm``.

    Raises:
        ValueError: For a 2D or incomplete checkpoint, naming the key.
    """
    kernel = state_dict.get('patch_embed.proj.weight')
    if kernel is None:
        raise ValueError('no patch_embed.proj.weight: not a Video Swin '
                         f'backbone (first keys: {list(state_dict)[:5]})')
    if kernel.dim() != 5:
        raise ValueError(
            f'patch_embed.proj.weight has shape {tuple(kernel.shape)}: a 2D '
            'checkpoint; inflate it with pretrained2d=True instead')
    blocks: Dict[int, set] = {}
    for key in state_dict:
        match = re.match(r'layers\.(\d+)\.blocks\.(\d+)\.', key)
        if match:
            blocks.setdefault(int(match[1]), set()).add(int(match[2]))
    stages = sorted(blocks)
    if not stages or stages != list(range(len(stages))):
        raise ValueError(f'stages {stages}: expected layers.0 ... layers.N')
    depths, num_heads = [], []
    for i in stages:
        if sorted(blocks[i]) != list(range(len(blocks[i]))):
            raise ValueError(f'layers.{i}: block indices {sorted(blocks[i])}')
        depths.append(len(blocks[i]))
        key = f'layers.{i}.blocks.0.attn.{_TABLE}'
        if key not in state_dict:
            raise ValueError(f'{key} missing: cannot infer the heads')
        num_heads.append(int(state_dict[key].shape[1]))
    embed_dims = int(kernel.shape[0])
    hidden = state_dict['layers.0.blocks.0.mlp.fc1.weight'].shape[0]
    return dict(
        arch=dict(embed_dims=embed_dims, depths=depths, num_heads=num_heads),
        patch_size=tuple(int(p) for p in kernel.shape[2:]),
        in_channels=int(kernel.shape[1]),
        mlp_ratio=hidden / embed_dims,
        qkv_bias='layers.0.blocks.0.attn.qkv.bias' in state_dict,
        patch_norm='patch_embed.norm.weight' in state_dict)


def _listed(keys: Sequence[str]) -> str:
    """The first ``_LIST_LIMIT`` keys, comma-separated, and a count."""
    shown = ', '.join(map(str, keys[:_LIST_LIMIT]))
    more = len(keys) - _LIST_LIMIT
    return shown + (f', ... ({more} more)' if more > 0 else '')


def load_strictly(module: nn.Module, state_dict: StateDict, what: str) -> None:
    """Load ``state_dict`` into ``module``, refusing any mismatch.

    mmengine's non-strict ``Pretrained`` load only warns about a missing
    key or a shape mismatch and leaves that weight at random init, so the
    converters check here that the target loads exactly.

    Args:
        module (nn.Module): The target.
        state_dict (dict): Weights with the target's names.
        what (str): Name of the target for the error message.

    Raises:
        ValueError: Listing the missing and unexpected keys and the shape
            mismatches (key, file shape, model shape).
    """
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = [
        f'{k} {list(state_dict[k].shape)} vs {list(own[k].shape)}' for k in own
        if k in state_dict and state_dict[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        lines = [f'the converted weights do not load strictly into {what}:']
        if missing:
            lines.append(f'missing keys ({len(missing)}): {_listed(missing)}')
        if unexpected:
            lines.append(f'unexpected keys ({len(unexpected)}): '
                         f'{_listed(unexpected)}')
        if wrong:
            lines.append(f'shape mismatches (file vs model) ({len(wrong)}): '
                         f'{_listed(wrong)}')
        raise ValueError('\n'.join(lines))
    module.load_state_dict(state_dict, strict=True)


def verify_mmaction_backbone(state_dict: StateDict,
                             window_size: Sequence[int]) -> nn.Module:
    """Build mmaction2's ``SwinTransformer3D`` and load the weights strictly.

    Args:
        state_dict (dict): Backbone weights without prefix.
        window_size (Sequence[int]): (Wd, Wh, Ww) of the target.

    Returns:
        nn.Module: The loaded ``SwinTransformer3D`` (``pretrained2d=False``,
        final norm of the last stage only).
    """
    from mmaction.models.backbones.swin import SwinTransformer3D
    kwargs = infer_swin3d_kwargs(state_dict)
    stages = len(kwargs['arch']['depths'])
    model = SwinTransformer3D(
        pretrained2d=False,
        window_size=tuple(window_size),
        drop_path_rate=0.,
        out_indices=(stages - 1, ),
        **kwargs)
    load_strictly(model, state_dict, describe_swin3d(kwargs, window_size))
    return model


def verify_bevt_backbone(state_dict: StateDict,
                         window_size: Sequence[int]) -> nn.Module:
    """Build ``BEVTSwinTransformer3D`` and load the weights strictly.

    Args:
        state_dict (dict): Backbone weights with bevt's names, no prefix.
        window_size (Sequence[int]): (Wd, Wh, Ww).

    Returns:
        nn.Module: The loaded ``BEVTSwinTransformer3D``.
    """
    from bevt.models.backbones.bevt_swin import BEVTSwinTransformer3D
    kwargs = infer_swin3d_kwargs(state_dict)
    model = BEVTSwinTransformer3D(
        window_size=tuple(window_size), drop_path_rate=0., **kwargs)
    what = 'BEVT' + describe_swin3d(kwargs, window_size)
    load_strictly(model, state_dict, what)
    return model


def describe_swin3d(kwargs: dict, window_size: Sequence[int]) -> str:
    """One-line description, e.g. for the summary and error messages."""
    arch = kwargs['arch']
    return (f'SwinTransformer3D(embed_dims={arch["embed_dims"]}, '
            f'depths={arch["depths"]}, num_heads={arch["num_heads"]}, '
            f'patch_size={kwargs["patch_size"]}, '
            f'window_size={tuple(window_size)})')
