# Copyright (c) bevt contributors. All rights reserved.
"""Pack one BEVT sample (video clip or image) for the data preprocessor."""
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmaction.structures import ActionDataSample
from mmcv.transforms import BaseTransform

from bevt.registry import TRANSFORMS

MASK_KEYS = ('input_mask', 'target_mask')
Frames = Union[Sequence[np.ndarray], np.ndarray]


def frames_to_cthw(frames: Frames, name: str) -> np.ndarray:
    """Frames in any supported layout -> one (3, T, H, W) array.

    Args:
        frames (list | np.ndarray): A list of (H, W, 3) frames (mmaction2's
            convention before ``FormatShape``), one (H, W, 3) image, an NCHW
            (T, 3, H, W) or NHWC (T, H, W, 3) stack, or an NCTHW
            (1, 3, T, H, W) clip.
        name (str): The key, for error messages.

    Returns:
        np.ndarray: Contiguous (3, T, H, W) array of the input dtype.
    """
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise ValueError(f'{name} is an empty list')
        shapes = sorted({np.shape(f) for f in frames})
        if len(shapes) > 1 or len(shapes[0]) != 3 or shapes[0][-1] != 3:
            raise ValueError(f'{name} must be (H, W, 3) frames of one shape,'
                             f' got shapes {shapes}')
        out = np.stack(frames).transpose(3, 0, 1, 2)  # (3, T, H, W)
    elif isinstance(frames, np.ndarray):
        shape = frames.shape
        if frames.ndim == 3 and shape[-1] == 3:  # (H, W, 3)
            out = frames.transpose(2, 0, 1)[:, None]
        elif frames.ndim == 4 and shape[1] == 3:  # NCHW (T, 3, H, W)
            out = frames.transpose(1, 0, 2, 3)
        elif frames.ndim == 4 and shape[-1] == 3:  # NHWC (T, H, W, 3)
            out = frames.transpose(3, 0, 1, 2)
        elif frames.ndim == 5 and shape[:2] == (1, 3):  # NCTHW, 1 clip
            out = frames[0]
        else:
            raise ValueError(f'{name} must be (H, W, 3), (T, 3, H, W), '
                             f'(T, H, W, 3) or (1, 3, T, H, W), got {shape}')
    else:
        raise TypeError(f'{name} must be a list of frames or an ndarray, '
                        f'got {type(frames).__name__}')
    if out.dtype != np.uint8:
        raise TypeError(f'{name} must stay uint8 until BEVTDataPreprocessor '
                        f'normalises it (drop Normalize from the pipeline), '
                        f'got {out.dtype}')
    return np.ascontiguousarray(out)


def _as_bool_mask(mask: Union[np.ndarray, torch.Tensor],
                  name: str) -> np.ndarray:
    """A bool or 0/1 integer mask as a contiguous bool array."""
    mask = np.asarray(mask)
    if mask.dtype != bool and not np.issubdtype(mask.dtype, np.integer):
        raise TypeError(f'{name} must be bool (True = masked), got '
                        f'{mask.dtype}')
    return np.ascontiguousarray(mask.astype(bool))


@TRANSFORMS.register_module()
class PackBEVTInputs(BaseTransform):
    """Pack one sample of `BEVT: BERT Pretraining of Video Transformers
    <https://arxiv.org/abs/2112.01529>`_ for ``BEVTDataPreprocessor``.

    The same transform ends the video and the image pipeline; a sample is a
    clip if it has more than one frame or ``results['clip_len'] > 1``.
    Pixels stay uint8 (the preprocessor normalises both views), so no
    ``Normalize`` or ``FormatShape`` is needed.

    **Required Keys:** imgs (list of (H, W, 3) uint8 frames, or an already
    formatted NCTHW / NCHW ndarray of one clip) or img (one (H, W, 3)
    image).

    **Optional Keys:** tokenizer_imgs (as imgs, (h, w) frames), input_mask,
    target_mask (bool, True = masked), label or gt_label, ``meta_keys``.

    Packed result: ``dict(inputs=dict(imgs, tokenizer_imgs),
    data_samples=ActionDataSample)`` with

    - imgs: uint8 Tensor, clip (3, T, H, W) or image (3, H, W);
    - tokenizer_imgs: uint8 Tensor, (3, T, h, w) or (3, h, w);
    - data sample fields ``input_mask``: bool, clip (T/p, H/16, W/16) or
      image (H/16, W/16), and ``target_mask``: bool, clip (T, H/16, W/16)
      or image (H/16, W/16); True = masked; ``gt_label`` if a label is
      given; metainfo from ``meta_keys``.

    Missing tokenizer view or masks are left out.

    Args:
        meta_keys (Sequence[str]): Keys copied to the metainfo when
            present. Defaults to ``('filename', 'img_path', 'frame_inds',
            'img_shape', 'flip', 'num_clips', 'clip_len')``.
    """

    def __init__(
        self,
        meta_keys: Sequence[str] = ('filename', 'img_path', 'frame_inds',
                                    'img_shape', 'flip', 'num_clips',
                                    'clip_len')
    ) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack the sample.

        Args:
            results (dict): The result dict.

        Returns:
            dict: ``dict(inputs=dict(imgs, [tokenizer_imgs]),
            data_samples=ActionDataSample)``.
        """
        key = 'imgs' if 'imgs' in results else 'img'
        if key not in results:
            raise KeyError('PackBEVTInputs needs results["imgs"] (or '
                           'results["img"])')
        if results.get('num_clips', 1) != 1:
            raise ValueError('PackBEVTInputs packs one clip per sample, got '
                             f'num_clips={results["num_clips"]}')
        imgs = frames_to_cthw(results[key], key)  # (3, T, H, W)
        num_frames = imgs.shape[1]
        clip_len = results.get('clip_len')
        if clip_len is not None and clip_len != num_frames:
            raise ValueError(f'{key} has {num_frames} frames but clip_len is '
                             f'{clip_len}')
        is_clip = num_frames > 1 or (clip_len or 1) > 1

        inputs = dict(imgs=self._to_tensor(imgs, is_clip))
        if results.get('tokenizer_imgs') is not None:
            view = frames_to_cthw(results['tokenizer_imgs'], 'tokenizer_imgs')
            if view.shape[1] != num_frames:
                raise ValueError(f'tokenizer_imgs has {view.shape[1]} frames,'
                                 f' {key} has {num_frames}')
            inputs['tokenizer_imgs'] = self._to_tensor(view, is_clip)

        data_sample = ActionDataSample()
        for name, mask in self._masks(results, is_clip, num_frames):
            data_sample.set_field(
                torch.from_numpy(mask), name, dtype=torch.Tensor)
        label = results.get('label', results.get('gt_label'))
        if label is not None:
            data_sample.set_gt_label(label)
        data_sample.set_metainfo(
            {k: results[k]
             for k in self.meta_keys if k in results})
        return dict(inputs=inputs, data_samples=data_sample)

    @staticmethod
    def _to_tensor(cthw: np.ndarray, is_clip: bool) -> torch.Tensor:
        """(3, T, H, W) -> a clip (3, T, H, W) or an image (3, H, W)."""
        return torch.from_numpy(cthw if is_clip else cthw[:, 0].copy())

    @staticmethod
    def _masks(results: dict, is_clip: bool,
               num_frames: int) -> List[Tuple[str, np.ndarray]]:
        """Check the present masks against each other and the frames.

        Returns:
            list: ``(key, bool mask)`` pairs; a clip's ``target_mask`` is
            (T, h, w) and its ``input_mask`` (T/p, h, w); an image's masks
            are (h, w).
        """
        masks = [(k, _as_bool_mask(results[k], k)) for k in MASK_KEYS
                 if results.get(k) is not None]
        shapes = {k: m.shape for k, m in masks}
        ndim = 3 if is_clip else 2
        kind = f'a clip of {num_frames} frames' if is_clip else 'an image'
        if any(len(s) != ndim for s in shapes.values()):
            raise ValueError(f'masks of {kind} must be {ndim}-D, got '
                             f'{shapes}')
        if len({s[-2:] for s in shapes.values()}) > 1:
            raise ValueError(f'input_mask and target_mask must have one '
                             f'spatial size, got {shapes}')
        if is_clip:
            target: Optional[tuple] = shapes.get('target_mask')
            if target is not None and target[0] != num_frames:
                raise ValueError(f'target_mask must have one slice per frame '
                                 f'of {kind}, got {target}')
            slots = shapes.get('input_mask', (1, ))[0]
            if slots == 0 or num_frames % slots:
                raise ValueError(f'input_mask of {kind} must have a divisor '
                                 f'of {num_frames} slots, got {slots}')
        return masks

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
