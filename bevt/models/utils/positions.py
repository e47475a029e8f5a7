# Copyright (c) bevt contributors. All rights reserved.
"""Positions of the masked entries of a bool mask, for ``index_select``."""
from torch import Tensor


def masked_positions(mask: Tensor) -> Tensor:
    """Flat positions of the True entries of ``mask``, for ``index_select``.

    One ``nonzero`` serves every gather (and scatter) by the mask: a bool
    index makes the host wait for the device on CUDA at each use, and once
    more in its backward (an ``index_put`` with the mask), an
    ``index_select`` with these positions in neither. The heads use it for
    the masked tokens, the DALL-E tokenizer for the cells it projects.

    Args:
        mask (Tensor): Bool of any shape, e.g. (N, L); True = masked.

    Returns:
        Tensor: int64 (M, ), positions in ``mask.flatten()``.
    """
    return mask.flatten().nonzero().squeeze(1)
