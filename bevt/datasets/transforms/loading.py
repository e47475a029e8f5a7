# Copyright (c) bevt contributors. All rights reserved.
"""Image loading for BEVT's image stream, in mmaction2's clip convention."""
from typing import Optional

import mmcv
import mmengine.fileio as fileio
from mmcv.transforms import BaseTransform

from bevt.registry import TRANSFORMS


@TRANSFORMS.register_module()
class BEVTLoadImage(BaseTransform):
    """Load one image for the image stream of `BEVT: BERT Pretraining of
    Video Transformers <https://arxiv.org/abs/2112.01529>`_.

    Decodes the file as RGB uint8 and, with ``to_clip=True``, stores it as a
    one-frame clip, so mmaction2's ``RandomRescale``, ``RandomCrop``,
    ``Flip`` and ``ColorJitter`` and bevt's ``BEVTTokenizerView`` and
    ``PackBEVTInputs`` work on it as on video frames. The path comes from
    ``img_path`` (mmpretrain datasets such as ``mmpretrain.ImageNet`` or
    ``mmpretrain.CustomDataset``) or ``filename`` (mmaction2's
    ``VideoDataset`` over an image list, as the official IN-1K list).

    A missing, empty or undecodable file raises an error that names the
    file (``OSError`` or ``ValueError``), so that a fault-tolerant dataset
    wrapper can skip it.

    **Required Keys:** img_path or filename.

    **Added Keys** (``to_clip=True``): imgs (list of one (H, W, 3) uint8
    RGB array), img_shape, original_shape, modality (``'RGB'``),
    num_clips (1), clip_len (1). With ``to_clip=False``, mmcv's image
    convention instead: img ((H, W, 3) uint8 RGB), img_shape, ori_shape.

    Args:
        to_clip (bool): Write mmaction2's clip keys (else mmcv's image
            keys). Defaults to True.
        imdecode_backend (str): Decoding backend of
            :func:`mmcv.imfrombytes`. Defaults to ``'cv2'``.
        backend_args (dict, optional): Arguments of the file backend of
            :func:`mmengine.fileio.get`. Defaults to None.
    """

    def __init__(self,
                 to_clip: bool = True,
                 imdecode_backend: str = 'cv2',
                 backend_args: Optional[dict] = None) -> None:
        self.to_clip = to_clip
        self.imdecode_backend = imdecode_backend
        self.backend_args = None if backend_args is None else dict(
            backend_args)

    def transform(self, results: dict) -> dict:
        """Load the image.

        Args:
            results (dict): The result dict with ``img_path`` or
                ``filename``.

        Returns:
            dict: The result dict.

        Raises:
            KeyError: If neither ``img_path`` nor ``filename`` is given.
            OSError: If the file cannot be read.
            ValueError: If it is empty or cannot be decoded.
        """
        filename = results.get('img_path', results.get('filename'))
        if filename is None:
            raise KeyError('BEVTLoadImage needs results["img_path"] or '
                           'results["filename"]')
        try:
            img_bytes = fileio.get(filename, backend_args=self.backend_args)
        except OSError as err:
            if str(filename) in str(err):
                raise
            raise OSError(f'Cannot read image file {filename}: {err}') \
                from err
        if not img_bytes:
            raise ValueError(f'Empty image file: {filename}')
        try:
            img = mmcv.imfrombytes(
                img_bytes,
                flag='color',
                channel_order='rgb',
                backend=self.imdecode_backend)
        except Exception as err:  # cv2.error, PIL errors, ...
            raise ValueError(
                f'Cannot decode image file {filename}: {err}') from err
        if img is None:
            raise ValueError(f'Cannot decode image file {filename}')

        if self.to_clip:
            results['imgs'] = [img]  # one (H, W, 3) RGB frame
            results['original_shape'] = img.shape[:2]
            results['modality'] = 'RGB'
            results['num_clips'] = 1
            results['clip_len'] = 1
        else:
            results['img'] = img
            results['ori_shape'] = img.shape[:2]
        results['img_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(to_clip={self.to_clip}, '
                f'imdecode_backend={self.imdecode_backend!r}, '
                f'backend_args={self.backend_args})')
