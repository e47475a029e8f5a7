# Copyright (c) bevt contributors. All rights reserved.
"""Which frames and cells a tokenizer call encodes: the masks' checks, the
needed frames, the frame gather, the plan that
:meth:`~.base.BEVTTokenizer.plan` reads from them on the host, and the
folding of several streams' views into one call."""
from typing import List, NamedTuple, Optional, Sequence, Tuple

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


def fold_views(views: Sequence[Tensor], cell_masks: Sequence[Optional[Tensor]]
               ) -> Tuple[Tensor, Optional[Tensor]]:
    """The tokenizer views of several streams as one batch of frames, as
    the official head encodes them (``torch.cat((imgs_3d, imgs_2d))``).

    Args:
        views (Sequence[Tensor]): Images (N, C, h, w) or clips
            (N, C, T, h, w) of one frame size.
        cell_masks (Sequence[Tensor | None]): Their bool ``cell_mask``
            (N, [T,] h/d, w/d), all given or all None.

    Returns:
        tuple[Tensor, Tensor | None]: Frames (F, C, h, w), clip-major within
        each view and the views in order, and their cells (F, h/d, w/d) or
        None.
    """
    sizes = {(v.shape[1], ) + tuple(v.shape[-2:]) for v in views}  # C, h, w
    if len(sizes) > 1:
        raise ValueError('joint_tokenizer: the streams\' tokenizer views '
                         f'differ in size ({sorted(sizes)}); they must match '
                         'to be encoded in one batch')
    if len({m is None for m in cell_masks}) > 1:
        raise ValueError('fold_views: give every view a cell mask or none')
    frames = torch.cat([
        v if v.dim() == 4 else v.transpose(1, 2).flatten(0, 1) for v in views
    ])
    if cell_masks[0] is None:
        return frames, None
    return frames, torch.cat([m.flatten(0, m.dim() - 3) for m in cell_masks])


def unfold_targets(target: Tensor, views: Sequence[Tensor]) -> List[Tensor]:
    """Split the targets of :func:`fold_views`' frames by view.

    Args:
        target (Tensor): Ids (F, h', w') or features (F, h', w', D).
        views (Sequence[Tensor]): The views handed to :func:`fold_views`.

    Returns:
        list[Tensor]: Per view, ids (N, L) or features (N, L, D), with L the
        view's (T *) h' * w' cells in (t, h, w) order.
    """
    counts = [v.shape[0] * (v.shape[2] if v.dim() == 5 else 1) for v in views]
    feature_dims = tuple(target.shape[3:])  # () for ids, (D, ) for features
    return [
        part.reshape((v.shape[0], -1) + feature_dims)
        for part, v in zip(target.split(counts), views)
    ]
