# Copyright (c) bevt contributors. All rights reserved.
"""Which frames and cells a tokenizer call encodes: the masks' checks, the
needed frames, the frame gather and the plan that
:meth:`~.base.BEVTTokenizer.plan` reads from them on the host."""
from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor


class TokenizerPlan(NamedTuple):
    """What one :meth:`~.base.BEVTTokenizer.forward` call encodes, read from
    the masks (:meth:`~.base.BEVTTokenizer.plan`) before any encoder work is
    queued.

    Attributes:
        num_frames (int): Folded frames F of the input (N or N*T).
        chunks (tuple[Tensor]): int64 indices of the frames each chunk
            encodes.
        cells (Tensor, optional): Bool (F, h/d, w/d): the needed cells, or
            None (all).
        chunk_cells (tuple[Tensor | None]): ``cells`` of each chunk's
            frames.
        positions (tuple[Tensor | None]): What the encoder reads of each
            chunk's cells on the host
            (:meth:`~.base.BEVTTokenizer.cell_positions`).
    """
    num_frames: int
    chunks: Tuple[Tensor, ...]
    cells: Optional[Tensor]
    chunk_cells: Tuple[Optional[Tensor], ...]
    positions: Tuple[Optional[Tensor], ...]


def check_mask(name: str, mask: Optional[Tensor],
               shape: Tuple[int, ...]) -> Optional[Tensor]:
    """Validate a bool ``frame_mask`` / ``cell_mask`` of ``shape``."""
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        raise ValueError(
            f'Invalid {name} dtype: {mask.dtype}; expected torch.bool')
    if tuple(mask.shape) != shape:
        raise ValueError(f'Invalid {name} shape: {tuple(mask.shape)}; '
                         f'expected {shape}')
    return mask


def needed_frames(frame_mask: Optional[Tensor] = None,
                  cell_mask: Optional[Tensor] = None) -> Optional[Tensor]:
    """Which folded frames a tokenizer call encodes.

    Args:
        frame_mask (Tensor, optional): See
            :meth:`~.base.BEVTTokenizer.forward`.
        cell_mask (Tensor, optional): See
            :meth:`~.base.BEVTTokenizer.forward`.

    Returns:
        Tensor, optional: Bool (N*T, ), clip-major; None = every frame.
    """
    if cell_mask is not None:  # frames with at least one needed cell
        return cell_mask.flatten(cell_mask.dim() - 2).any(-1).flatten()
    return None if frame_mask is None else frame_mask.flatten()


def gather_frames(x: Tensor, index: Tensor) -> Tensor:
    """Frames ``index`` of the folded batch, without folding ``x``.

    Args:
        x (Tensor): Images (N, C, h, w) or clips (N, C, T, h, w).
        index (Tensor): int64 indices into the N (or N*T, clip-major)
            frames, of shape (B,).

    Returns:
        Tensor: The frames, of shape (B, C, h, w).
    """
    if x.dim() == 4:
        return x[index]
    num_frames = x.shape[2]
    return x[index // num_frames, :, index % num_frames]
