# Copyright (c) bevt contributors. All rights reserved.
"""Block (image) and tube (video) masks of BEVT, made in the data pipeline.

Polarity everywhere: **True = masked** (the token is replaced by the mask
token and its tokenizer target is predicted).

The block generator is a port of BEiT's original ``MaskingGenerator``
(microsoft/unilm, copied by BEVT): Python's :mod:`random`, inclusive
``randint`` bounds and an early exit, so a mask has *at most*
``num_masking_patches`` cells (about 97.5 of 98 on average) and any cell,
the last row and column included, can be masked. mmpretrain's
``BEiTMaskGenerator`` differs (always exactly N cells, never the last row
or column). Randomness comes from the global :mod:`random` state, which
mmengine's ``randomness`` settings (``set_random_seed``, dataloader
``worker_init_fn``) seed; there is no private seed.
"""
import math
import random
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform

from bevt.registry import TRANSFORMS

SizeType = Union[int, Sequence[int]]


def _pair(input_size: SizeType) -> Tuple[int, int]:
    """``input_size`` as ``(height, width)`` of positive ints."""
    if isinstance(input_size, int):
        input_size = (input_size, input_size)
    size = tuple(input_size)
    if len(size) != 2 or not all(
            isinstance(s, (int, np.integer)) and s > 0 for s in size):
        raise ValueError('input_size must be a positive int or (h, w), got '
                         f'{input_size!r}')
    return int(size[0]), int(size[1])


def _mask_one_block(mask: np.ndarray, budget: int, min_num_patches: float,
                    log_aspect_ratio: Tuple[float, float]) -> int:
    """Try (up to 10 times) to mask one more block; BEiT's ``_mask``.

    Args:
        mask (np.ndarray): Bool (H, W), True = masked; updated in place.
        budget (int): The most cells this block may add.
        min_num_patches (float): Lower bound of the drawn block area.
        log_aspect_ratio (Tuple[float, float]): Log of the aspect range.

    Returns:
        int: The number of newly masked cells (0 if every attempt failed).
    """
    height, width = mask.shape
    for _ in range(10):
        target_area = random.uniform(min_num_patches, budget)
        aspect_ratio = math.exp(random.uniform(*log_aspect_ratio))
        h = int(round(math.sqrt(target_area * aspect_ratio)))
        w = int(round(math.sqrt(target_area / aspect_ratio)))
        if w < width and h < height:
            top = random.randint(0, height - h)  # inclusive bounds
            left = random.randint(0, width - w)
            block = mask[top:top + h, left:left + w]  # a view
            new = h * w - int(block.sum())
            if 0 < new <= budget:
                block[...] = True
                return new
    return 0


def generate_block_mask(input_size: SizeType = 14,
                        num_masking_patches: int = 98,
                        min_num_patches: int = 16,
                        max_num_patches: Optional[int] = None,
                        min_aspect: float = 0.3,
                        max_aspect: Optional[float] = None) -> np.ndarray:
    """Draw one block-wise mask with BEiT's original ``MaskingGenerator``.

    Blocks of area ~ U(``min_num_patches``, budget) and aspect ratio
    log-uniform in [``min_aspect``, ``max_aspect``] are added while fewer
    than ``num_masking_patches`` cells are masked; the budget of a block is
    ``min(num_masking_patches - count, max_num_patches)``. If 10 attempts
    in a row add nothing, drawing stops early, so the count is at most
    ``num_masking_patches`` and can be lower.

    Args:
        input_size (int | Sequence[int]): Grid size, ``s`` or ``(h, w)``.
            Defaults to 14.
        num_masking_patches (int): The most cells to mask. Defaults to 98.
        min_num_patches (int): Smallest block area drawn. Defaults to 16.
        max_num_patches (int, optional): Largest block area; None means
            ``num_masking_patches``. Defaults to None.
        min_aspect (float): Smallest block aspect ratio. Defaults to 0.3.
        max_aspect (float, optional): Largest aspect ratio; None means
            ``1 / min_aspect``. Defaults to None.

    Returns:
        np.ndarray: Bool mask of shape (h, w); True = masked.
    """
    height, width = _pair(input_size)
    if max_num_patches is None:
        max_num_patches = num_masking_patches
    max_aspect = max_aspect or 1 / min_aspect
    log_aspect_ratio = (math.log(min_aspect), math.log(max_aspect))

    mask = np.zeros((height, width), dtype=bool)  # True = masked
    count = 0
    while count < num_masking_patches:
        budget = min(num_masking_patches - count, max_num_patches)
        delta = _mask_one_block(mask, budget, min_num_patches,
                                log_aspect_ratio)
        if delta == 0:  # early exit, as the original
            break
        count += delta
    return mask


def tube_mask(mask: np.ndarray, num_slots: int,
              tube_range: Tuple[float, float]) -> np.ndarray:
    """Repeat a 2D mask over a random, wrapping run of temporal slots.

    As BEVT's ``MaskedPositionGenerate``: start s ~ U{0..T-1}, then length
    L ~ U{int(lo*T)..int(hi*T)}, both clamped to [1, T]; slots s..s+L-1
    (mod T) carry ``mask``, the other slots nothing.

    Args:
        mask (np.ndarray): Bool (H, W); True = masked.
        num_slots (int): T, the number of temporal tokens.
        tube_range (Tuple[float, float]): ``(lo, hi)`` fractions of T.

    Returns:
        np.ndarray: Bool (T, H, W); True = masked.
    """
    lo = max(int(tube_range[0] * num_slots), 1)
    hi = min(max(int(tube_range[1] * num_slots), lo), num_slots)
    start = random.randint(0, num_slots - 1)
    length = random.randint(lo, hi)
    slots = (start + np.arange(length)) % num_slots  # wraps around
    tube = np.zeros((num_slots, ) + mask.shape, dtype=bool)  # (T, H, W)
    tube[slots] = mask
    return tube


@TRANSFORMS.register_module()
class BEVTBlockMaskGenerator(BaseTransform):
    """Block-wise image mask of `BEVT: BERT Pretraining of Video Transformers
    <https://arxiv.org/abs/2112.01529>`_ (``Masked2DPositionGenerate``).

    One mask per image, drawn by :func:`generate_block_mask` (BEiT's
    original semantics). The backbone input mask and the loss (target) mask
    are the same array.

    **Added Keys:**

    - input_mask (np.ndarray): Bool (H, W); True = masked.
    - target_mask (np.ndarray): The same array as ``input_mask``.

    Args:
        input_size (int | Sequence[int]): Token grid, ``s`` or ``(h, w)``.
            Defaults to 14.
        num_masking_patches (int): The most tokens to mask. Defaults to 98.
        min_num_patches (int): Smallest block area. Defaults to 16.
        max_num_patches (int, optional): Largest block area; None means
            ``num_masking_patches``. Defaults to None.
        min_aspect (float): Smallest block aspect ratio. Defaults to 0.3.
        max_aspect (float, optional): Largest aspect ratio; None means
            ``1 / min_aspect``. Defaults to None.
    """

    def __init__(self,
                 input_size: SizeType = 14,
                 num_masking_patches: int = 98,
                 min_num_patches: int = 16,
                 max_num_patches: Optional[int] = None,
                 min_aspect: float = 0.3,
                 max_aspect: Optional[float] = None) -> None:
        self.input_size = _pair(input_size)
        num_patches = self.input_size[0] * self.input_size[1]
        if not 0 <= num_masking_patches <= num_patches:
            raise ValueError('num_masking_patches must be in [0, '
                             f'{num_patches}], got {num_masking_patches}')
        if min_num_patches <= 0:
            raise ValueError('min_num_patches must be positive, got '
                             f'{min_num_patches}')
        if max_num_patches is not None and max_num_patches <= 0:
            raise ValueError('max_num_patches must be positive or None, got '
                             f'{max_num_patches}')
        if min_aspect <= 0 or (max_aspect is not None and max_aspect <= 0):
            raise ValueError('min_aspect and max_aspect must be positive, '
                             f'got {min_aspect} and {max_aspect}')
        self.num_masking_patches = num_masking_patches
        self.min_num_patches = min_num_patches
        self.max_num_patches = max_num_patches
        self.min_aspect = min_aspect
        self.max_aspect = max_aspect

    def generate(self) -> np.ndarray:
        """Draw one 2D mask.

        Returns:
            np.ndarray: Bool (H, W); True = masked.
        """
        return generate_block_mask(self.input_size, self.num_masking_patches,
                                   self.min_num_patches, self.max_num_patches,
                                   self.min_aspect, self.max_aspect)

    def transform(self, results: dict) -> dict:
        """Add ``input_mask`` and ``target_mask``, bool (H, W), True = masked.

        Args:
            results (dict): The result dict.

        Returns:
            dict: The result dict with the two (identical) masks.
        """
        mask = self.generate()  # (H, W), True = masked
        results['input_mask'] = mask
        results['target_mask'] = mask
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'input_size={self.input_size}, '
                f'num_masking_patches={self.num_masking_patches}, '
                f'min_num_patches={self.min_num_patches}, '
                f'max_num_patches={self.max_num_patches}, '
                f'min_aspect={self.min_aspect}, '
                f'max_aspect={self.max_aspect})')


@TRANSFORMS.register_module()
class BEVTTubeMaskGenerator(BEVTBlockMaskGenerator):
    """Tube mask of a clip of `BEVT: BERT Pretraining of Video Transformers
    <https://arxiv.org/abs/2112.01529>`_ (``MaskedPositionGenerate``).

    One 2D block mask M (as :class:`BEVTBlockMaskGenerator`) is repeated
    over a tube of temporal slots: with T = ``clip_len // temporal_patch``
    slots, the tube starts at s ~ U{0..T-1} and has L ~
    U{int(lo*T)..int(hi*T)} slots (clamped to [1, T]); slots s..s+L-1 taken
    mod T (so a tube can wrap around to slot 0) all get the same M, the
    others nothing. The loss mask repeats each slot ``temporal_patch``
    times in time: frames 2k and 2k+1 are targets iff slot k is masked.

    **Required Keys:** clip_len (only if ``clip_len`` is None; set by
    mmaction's ``SampleFrames``).

    **Added Keys:**

    - input_mask (np.ndarray): Bool (T, H, W), e.g. (8, 14, 14);
      True = masked.
    - target_mask (np.ndarray): Bool (clip_len, H, W), e.g. (16, 14, 14);
      ``input_mask`` repeated ``temporal_patch`` times in time.

    Args:
        input_size (int | Sequence[int]): Token grid, ``s`` or ``(h, w)``.
            Defaults to 14.
        num_masking_patches (int): The most tokens of M. Defaults to 98.
        min_num_patches (int): Smallest block area. Defaults to 16.
        max_num_patches (int, optional): Largest block area; None means
            ``num_masking_patches``. Defaults to None.
        min_aspect (float): Smallest block aspect ratio. Defaults to 0.3.
        max_aspect (float, optional): Largest aspect ratio; None means
            ``1 / min_aspect``. Defaults to None.
        clip_len (int, optional): Frames per clip; None reads
            ``results['clip_len']``. Defaults to 16.
        temporal_patch (int): Frames per temporal token. Defaults to 2.
        tube_range (Tuple[float, float]): Range of the tube length as
            fractions of T. Defaults to (0.5, 1.0).
    """

    def __init__(
        self,
        input_size: SizeType = 14,
        num_masking_patches: int = 98,
        min_num_patches: int = 16,
        max_num_patches: Optional[int] = None,
        min_aspect: float = 0.3,
        max_aspect: Optional[float] = None,
        clip_len: Optional[int] = 16,
        temporal_patch: int = 2,
        tube_range: Tuple[float, float] = (0.5, 1.0)
    ) -> None:
        super().__init__(input_size, num_masking_patches, min_num_patches,
                         max_num_patches, min_aspect, max_aspect)
        if not isinstance(temporal_patch, int) or temporal_patch <= 0:
            raise ValueError('temporal_patch must be a positive int, got '
                             f'{temporal_patch!r}')
        if clip_len is not None:
            self._num_slots(clip_len, temporal_patch)
        lo, hi = tube_range
        if not 0 <= lo <= hi <= 1:
            raise ValueError('tube_range must satisfy 0 <= lo <= hi <= 1, '
                             f'got {tube_range!r}')
        self.clip_len = clip_len
        self.temporal_patch = temporal_patch
        self.tube_range = (float(lo), float(hi))

    @staticmethod
    def _num_slots(clip_len: int, temporal_patch: int) -> int:
        """T = clip_len // temporal_patch; clip_len must be a multiple."""
        if not isinstance(clip_len, (int, np.integer)) or clip_len <= 0 \
                or clip_len % temporal_patch:
            raise ValueError(f'clip_len must be a positive multiple of '
                             f'temporal_patch={temporal_patch}, got '
                             f'{clip_len!r}')
        return int(clip_len) // temporal_patch

    def transform(self, results: dict) -> dict:
        """Add ``input_mask`` (T, H, W) and ``target_mask`` (clip_len, H, W).

        Args:
            results (dict): The result dict; ``clip_len`` is read from it if
                the transform has none.

        Returns:
            dict: The result dict with bool masks, True = masked.
        """
        clip_len = self.clip_len
        if clip_len is None:
            if 'clip_len' not in results:
                raise KeyError('BEVTTubeMaskGenerator(clip_len=None) needs '
                               'results["clip_len"] (set by SampleFrames)')
            clip_len = results['clip_len']
        num_slots = self._num_slots(clip_len, self.temporal_patch)
        mask = self.generate()  # (H, W), True = masked
        input_mask = tube_mask(mask, num_slots, self.tube_range)  # (T, H, W)
        # (T * temporal_patch, H, W): frames 2k, 2k+1 <- slot k
        target_mask = np.repeat(input_mask, self.temporal_patch, axis=0)
        results['input_mask'] = input_mask
        results['target_mask'] = target_mask
        return results

    def __repr__(self) -> str:
        return (super().__repr__()[:-1] + f', clip_len={self.clip_len}, '
                f'temporal_patch={self.temporal_patch}, '
                f'tube_range={self.tube_range})')
