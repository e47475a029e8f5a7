# Copyright (c) bevt contributors. All rights reserved.
"""The tokenizer view of BEVT: a small Lanczos copy of the final frames."""
from typing import List, Sequence, Tuple, Union

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from bevt.registry import TRANSFORMS


def _size_hw(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """``size`` as ``(height, width)`` of positive ints."""
    if isinstance(size, int):
        size = (size, size)
    size = tuple(size)
    if len(size) != 2 or not all(
            isinstance(s, (int, np.integer)) and s > 0 for s in size):
        raise ValueError(f'size must be a positive int or (h, w), got {size}')
    return int(size[0]), int(size[1])


@TRANSFORMS.register_module()
class BEVTTokenizerView(BaseTransform):
    """Tokenizer view of `BEVT: BERT Pretraining of Video Transformers
    <https://arxiv.org/abs/2112.01529>`_ (the official ``CopyResize``).

    Place it after the crops and flips: it resizes a copy of the final
    model-view frames to ``size`` (112 x 112 for DALL-E on 224-px inputs),
    frame by frame with :func:`mmcv.imresize` (Lanczos by default, as BEiT's
    second view). The model view is left unchanged. Normalisation (DALL-E's
    map-pixels) happens later in ``BEVTDataPreprocessor``.

    **Required Keys:** ``keys``: a list of (H, W, 3) uint8 frames (mmaction
    convention; one frame for an image), or one (H, W, 3) array.

    **Added Keys:** ``out_key``: a list of (h, w, 3) frames of the same
    dtype (or one array, if the input was one array).

    Args:
        size (int | Sequence[int]): Output size, ``s`` or ``(h, w)``.
            Defaults to 112.
        interpolation (str): Interpolation of :func:`mmcv.imresize`.
            Defaults to ``'lanczos'``.
        keys (Sequence[str]): The keys to copy. Defaults to ``('imgs', )``.
        out_key (str | Sequence[str]): The key of each copy (one per key in
            ``keys``). Defaults to ``'tokenizer_imgs'``.
    """

    def __init__(self,
                 size: Union[int, Sequence[int]] = 112,
                 interpolation: str = 'lanczos',
                 keys: Sequence[str] = ('imgs', ),
                 out_key: Union[str,
                                Sequence[str]] = 'tokenizer_imgs') -> None:
        self.size = _size_hw(size)
        self.interpolation = interpolation
        self.keys = (keys, ) if isinstance(keys, str) else tuple(keys)
        out_keys = (out_key, ) if isinstance(out_key, str) else tuple(out_key)
        if len(out_keys) != len(self.keys) or not self.keys:
            raise ValueError(f'out_key {out_key!r} must name one output per '
                             f'key of {self.keys!r}')
        self.out_key = out_key
        self.out_keys = out_keys

    def _resize(self, frame: np.ndarray) -> np.ndarray:
        """(H, W, C) -> a new (h, w, C) array."""
        if not isinstance(frame, np.ndarray) or frame.ndim != 3:
            shape = getattr(frame, 'shape', type(frame).__name__)
            raise ValueError(f'BEVTTokenizerView expects (H, W, C) frames, '
                             f'got {shape}')
        height, width = self.size
        out = mmcv.imresize(
            frame, (width, height), interpolation=self.interpolation)
        if np.shares_memory(out, frame):  # never alias the model view
            out = out.copy()
        return out

    def transform(self, results: dict) -> dict:
        """Add the resized copies under ``out_key``.

        Args:
            results (dict): The result dict.

        Returns:
            dict: The result dict.
        """
        for key, out_key in zip(self.keys, self.out_keys):
            frames = results[key]
            if isinstance(frames, np.ndarray) and frames.ndim == 3:
                results[out_key] = self._resize(frames)
            elif isinstance(frames, (list, tuple)) and len(frames) > 0:
                resized: List[np.ndarray] = [self._resize(f) for f in frames]
                results[out_key] = resized
            else:
                raise TypeError(f'results[{key!r}] must be a non-empty list '
                                'of (H, W, C) frames or one (H, W, C) array,'
                                f' got {type(frames).__name__}')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(size={self.size}, '
                f'interpolation={self.interpolation!r}, keys={self.keys}, '
                f'out_key={self.out_key!r})')
