# Copyright (c) bevt contributors. All rights reserved.
"""OpenAI's pickled DALL-E encoder -> mmpretrain's ``DALLEEncoder``."""
import os.path as osp
import re
from typing import Dict

import torch
import torch.nn as nn

from ._common import StateDict, extract_state_dict
from .verify import load_strictly


def infer_dalle_encoder_cfg(state_dict: StateDict) -> dict:
    """``DALLEEncoder`` sizes from its weights (mmpretrain / OpenAI names).

    Args:
        state_dict (dict): Keys ``blocks.input.w``, ``blocks.group_*...``,
            ``blocks.output.conv.w`` (``.w`` / ``.b`` parameters).

    Returns:
        dict: ``group_count``, ``n_hid``, ``n_blk_per_group``,
        ``input_channels`` and ``vocab_size``.

    Raises:
        ValueError: If a key is missing or the layout differs from
            mmpretrain's four groups.
    """
    for key in ('blocks.input.w', 'blocks.output.conv.w'):
        if key not in state_dict:
            raise ValueError(f'{key} missing: not a DALL-E encoder (first '
                             f'keys: {list(state_dict)[:5]})')
    groups: Dict[int, set] = {}
    for key in state_dict:
        match = re.match(r'blocks\.group_(\d+)\.block_(\d+)\.', key)
        if match:
            groups.setdefault(int(match[1]), set()).add(int(match[2]))
    if sorted(groups) != [1, 2, 3, 4]:
        raise ValueError(f'groups {sorted(groups)}: mmpretrain\'s '
                         'DALLEEncoder has exactly group_1 ... group_4')
    counts = {len(blocks) for blocks in groups.values()}
    if len(counts) != 1:
        raise ValueError(f'groups with different block counts: {groups}')
    stem = state_dict['blocks.input.w']
    return dict(
        group_count=4,
        n_hid=int(stem.shape[0]),
        n_blk_per_group=counts.pop(),
        input_channels=int(stem.shape[1]),
        vocab_size=int(state_dict['blocks.output.conv.w'].shape[0]))


def verify_dalle_encoder(state_dict: StateDict) -> nn.Module:
    """Load DALL-E weights strictly into mmpretrain's ``DALLEEncoder``.

    Args:
        state_dict (dict): Encoder weights (``blocks.*.w`` / ``.b``).

    Returns:
        nn.Module: The loaded ``DALLEEncoder`` of the inferred sizes.
    """
    from mmpretrain.models.selfsup.cae import DALLEEncoder
    cfg = infer_dalle_encoder_cfg(state_dict)
    encoder = DALLEEncoder(**cfg)
    args = ', '.join(f'{k}={v}' for k, v in cfg.items())
    load_strictly(encoder, state_dict, f'DALLEEncoder({args})')
    return encoder


def load_pickled_dalle_encoder(path: str,
                               trust_pickle: bool = False) -> StateDict:
    """The weights of OpenAI's pickled DALL-E encoder (``encoder.pkl``).

    The file is a pickled ``dall_e.encoder.Encoder`` module: unpickling it
    imports the ``DALL-E`` package and can run any code the file holds.

    Args:
        path (str): The pickle.
        trust_pickle (bool): Must be True: confirms the file is trusted.
            Defaults to False.

    Returns:
        dict: The encoder's state dict (float tensors on CPU).

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        PermissionError: Without ``trust_pickle``.
        ModuleNotFoundError: If the classes it names cannot be imported.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'encoder pickle {path} not found')
    if not trust_pickle:
        raise PermissionError(
            f'{path} is a pickled Python object: unpickling it can run '
            'arbitrary code. Convert only a file you trust (OpenAI\'s '
            'encoder.pkl) and pass --trust-pickle to proceed.')
    try:
        obj = torch.load(path, map_location='cpu', weights_only=False)
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            f'{path} needs the module {e.name!r} to unpickle; for OpenAI\'s '
            'encoder.pkl run `pip install DALL-E`') from e
    if isinstance(obj, nn.Module):
        state_dict = obj.state_dict()
    elif isinstance(obj, dict):
        state_dict = extract_state_dict(obj, path)
    else:
        raise ValueError(f'{path}: expected a pickled module or a state '
                         f'dict, got {type(obj).__name__}')
    return {k: v.detach().float().cpu() for k, v in state_dict.items()}
