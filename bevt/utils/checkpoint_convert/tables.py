# Copyright (c) bevt contributors. All rights reserved.
"""Relative-position tables: window sizes, indices, resizing."""
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import _TABLE, DEFAULT_WINDOW, StateDict, Window


def window_rows(window_size: Sequence[int]) -> int:
    """Rows of a relative-position table: (2Wd-1)(2Wh-1)(2Ww-1)."""
    wd, wh, ww = window_size
    return (2 * wd - 1) * (2 * wh - 1) * (2 * ww - 1)


def infer_window_size(rows: int,
                      source_window: Optional[Sequence[int]] = None,
                      spatial_hint: Optional[Sequence[int]] = None) -> Window:
    """The window (Wd, Wh, Ww) of a relative-position table.

    Tried in order: ``source_window`` (then it must fit), the default
    (8, 7, 7), Wd solved for the spatial window ``spatial_hint`` (Wh, Ww),
    Wd solved for 7x7, and a cubic window.

    Args:
        rows (int): Rows of the table.
        source_window (Sequence[int], optional): The known window.
            Defaults to None.
        spatial_hint (Sequence[int], optional): (Wh, Ww) to assume.
            Defaults to None.

    Returns:
        tuple: (Wd, Wh, Ww).

    Raises:
        ValueError: If ``source_window`` does not fit or nothing does.
    """
    if source_window is not None:
        window = tuple(int(w) for w in source_window)
        if len(window) != 3 or window_rows(window) != rows:
            raise ValueError(
                f'source window {window} gives {window_rows(window)} table '
                f'rows but the tables have {rows}')
        return window
    if window_rows(DEFAULT_WINDOW) == rows:
        return DEFAULT_WINDOW
    hints = [tuple(spatial_hint)] if spatial_hint is not None else []
    for wh, ww in hints + [DEFAULT_WINDOW[1:]]:
        plane = (2 * wh - 1) * (2 * ww - 1)
        if rows % plane == 0 and (rows // plane) % 2 == 1:
            return ((rows // plane + 1) // 2, wh, ww)
    side = round(rows**(1 / 3))
    if side**3 == rows and side % 2 == 1:
        return ((side + 1) // 2, ) * 3
    raise ValueError(f'cannot infer the window of relative-position tables '
                     f'with {rows} rows; pass --source-window T H W')


def tables_window(state_dict: StateDict,
                  source_window: Optional[Sequence[int]] = None,
                  spatial_hint: Optional[Sequence[int]] = None) -> Window:
    """The common window of every relative-position table of a backbone.

    Args:
        state_dict (dict): Backbone weights.
        source_window (Sequence[int], optional): See
            :func:`infer_window_size`. Defaults to None.
        spatial_hint (Sequence[int], optional): See
            :func:`infer_window_size`. Defaults to None.

    Returns:
        tuple: (Wd, Wh, Ww).

    Raises:
        ValueError: If there is no table or the tables differ in rows.
    """
    rows = {k: v.shape[0] for k, v in state_dict.items() if k.endswith(_TABLE)}
    if not rows:
        raise ValueError('no relative_position_bias_table in the backbone')
    if len(set(rows.values())) > 1:
        raise ValueError('relative-position tables of different sizes: '
                         f'{sorted(set(rows.values()))}')
    return infer_window_size(
        next(iter(rows.values())), source_window, spatial_hint)


def relative_position_index(window_size: Sequence[int]) -> Tensor:
    """mmaction2's ``WindowAttention3D.relative_position_index`` buffer.

    Args:
        window_size (Sequence[int]): (Wd, Wh, Ww).

    Returns:
        Tensor: int64 (Wd*Wh*Ww, Wd*Wh*Ww) indices into the table rows.
    """
    wd, wh, ww = window_size
    coords = torch.stack(
        torch.meshgrid(
            torch.arange(wd),
            torch.arange(wh),
            torch.arange(ww),
            indexing='ij')).flatten(1)  # (3, Wd*Wh*Ww)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel = rel + torch.tensor([wd - 1, wh - 1, ww - 1])
    scale = torch.tensor([(2 * wh - 1) * (2 * ww - 1), 2 * ww - 1, 1])
    return (rel * scale).sum(-1)


def resize_relative_position_table(table: Tensor, src_window: Sequence[int],
                                   dst_window: Sequence[int]) -> Tensor:
    """Trilinear resize of a relative-position table to another window.

    Each head's table is a (2Wd-1, 2Wh-1, 2Ww-1) grid of offsets, resized
    with ``F.interpolate(mode='trilinear', align_corners=False)`` as the
    official window-16 fine-tuning does.

    Args:
        table (Tensor): (window_rows(src_window), nH).
        src_window (Sequence[int]): (Wd, Wh, Ww) of ``table``.
        dst_window (Sequence[int]): The new window.

    Returns:
        Tensor: (window_rows(dst_window), nH), the dtype of ``table``.
    """
    rows, heads = table.shape
    if rows != window_rows(src_window):
        raise ValueError(f'table with {rows} rows is not made for window '
                         f'{tuple(src_window)}')
    grid = [2 * w - 1 for w in src_window]
    size = [2 * w - 1 for w in dst_window]
    x = table.float().t().reshape(1, heads, *grid)  # (1, nH, 2Wd-1, ...)
    x = F.interpolate(x, size=size, mode='trilinear', align_corners=False)
    return x.reshape(heads, -1).t().to(table.dtype)  # (rows', nH)


def _attention_prefixes(state_dict: StateDict) -> List[str]:
    """The ``...attn.`` prefixes of the blocks that own a table."""
    return [k[:-len(_TABLE)] for k in state_dict if k.endswith(_TABLE)]
