# Copyright (c) bevt contributors. All rights reserved.
"""imgaug's RandAugment with one draw per clip (the SSv2 fine-tune).

The official SSv2 fine-tune applies ``iaa.RandAugment(n=4, m=7)`` through
mmaction's ``Imgaug`` wrapper, made deterministic per clip, so every frame
gets the same ops with the same magnitudes, signs and positions. imgaug
0.4.0 does not import on NumPy 2 (``np.sctypes`` was removed;
aleju/imgaug#855, unmaintained), so mmaction2's ``ImgAug`` cannot run here,
and pytorchvideo's wrapper is broken on current torchvision. This module
re-implements imgaug 0.4.0's RandAugment (``imgaug/augmenters/
collections.py``) op by op: the same op list, magnitudes, signs, initial
flip and crop, and the same PIL calls or arithmetic for each op, so that
each op's output equals imgaug's to the bit (tested). Only the random
streams differ (numpy's global RNG instead of imgaug's).
"""
import math
from typing import Dict, List, Sequence, Tuple

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from PIL import Image, ImageEnhance, ImageFilter

from bevt.registry import TRANSFORMS

# imgaug 0.4.0 RandAugment's main ops, in its order
IMGAUG_RANDAUGMENT_OPS = ('Identity', 'Autocontrast', 'Equalize', 'Invert',
                          'Rotate', 'Posterize', 'Solarize', 'EnhanceColor',
                          'EnhanceContrast', 'EnhanceBrightness',
                          'EnhanceSharpness', 'ShearX', 'ShearY', 'TranslateX',
                          'TranslateY', 'Cutout', 'FilterBlur', 'FilterSmooth')
# ops whose magnitude takes a random sign
SIGNED_OPS = ('Rotate', 'EnhanceColor', 'EnhanceContrast', 'EnhanceBrightness',
              'EnhanceSharpness', 'ShearX', 'ShearY', 'TranslateX',
              'TranslateY')
MAX_MAGNITUDE = 30  # imgaug's _M_MAX


def op_level(op: str, magnitude: int) -> float:
    """imgaug's value of ``op`` at ``magnitude`` (before the random sign).

    Args:
        op (str): One of :data:`IMGAUG_RANDAUGMENT_OPS`.
        magnitude (int): M in [0, 30].

    Returns:
        float: Degrees (Rotate, Shear*), kept bits (Posterize), threshold
        (Solarize), factor offset from 1 (Enhance*), fraction of the width
        or height (Translate*), side as a fraction of the height (Cutout);
        0 for ops without a magnitude.
    """

    def scaled(maxval: float) -> float:
        return magnitude * (maxval / MAX_MAGNITUDE)

    if op == 'Rotate':
        return scaled(30)
    if op == 'Posterize':
        return 8 - min(max(int(scaled(6)), 0), 6)
    if op == 'Solarize':
        return min(max(256 - int(scaled(256)), 0), 256)
    if op.startswith('Enhance'):
        return scaled(0.9)
    if op.startswith('Shear'):
        return scaled(math.degrees(0.3))
    if op.startswith('Translate'):
        return scaled(0.33)
    if op == 'Cutout':
        return min(max(scaled(20 / 32), 0.), 20 / 32)
    return 0.


def _pil_affine(
    img: np.ndarray,
    fill: int,
    rotate: float = 0.,
    shear: Tuple[float, float] = (0., 0.),
    translate: Tuple[float, float] = (0., 0.),
    center: Tuple[float, float] = (0., 0.)
) -> np.ndarray:
    """imgaug's ``pillike.warp_affine``: PIL's affine warp (nearest).

    The forward map is: move ``center`` (fractions of (W, H)) to the origin,
    rotate by ``rotate`` degrees (counter-clockwise), shear by
    ``tanh(radians(shear))`` (imgaug 0.4.0 takes the tanh, not the tan, of
    the angle), translate by ``translate`` pixels (x, y), move back. PIL
    samples the inverse map, as imgaug does (same float32 matrices).

    Args:
        img (np.ndarray): Frame of shape (H, W, 3), uint8.
        fill (int): Value of the pixels that come from outside the frame.
        rotate (float): Degrees. Defaults to 0.
        shear (tuple[float, float]): (x, y) shear angles in degrees.
            Defaults to (0., 0.).
        translate (tuple[float, float]): (x, y) shift in pixels. Defaults to
            (0., 0.).
        center (tuple[float, float]): (x, y) centre as fractions of the
            width and height. Defaults to the top-left corner.

    Returns:
        np.ndarray: The frame, (H, W, 3) uint8.
    """
    h, w = img.shape[:2]
    cx, cy = w * center[0], h * center[1]
    rot, shear_x, shear_y = np.deg2rad([rotate, shear[0], shear[1]])
    rot = -rot
    steps = [
        [[1, 0, -cx], [0, 1, -cy], [0, 0, 1]],
        [[np.cos(rot), np.sin(rot), 0], [-np.sin(rot),
                                         np.cos(rot), 0], [0, 0, 1]],
        [[1, np.tanh(shear_x), 0], [np.tanh(shear_y), 1, 0], [0, 0, 1]],
        [[1, 0, translate[0]], [0, 1, translate[1]], [0, 0, 1]],
        [[1, 0, cx], [0, 1, cy], [0, 0, 1]],
    ]
    matrix = np.eye(3, dtype=np.float32)
    for step in steps:
        matrix = np.matmul(np.array(step, dtype=np.float32), matrix)
    inverse = np.linalg.inv(matrix)[:2].flat
    return np.array(
        Image.fromarray(img).transform((w, h),
                                       Image.AFFINE,
                                       tuple(inverse),
                                       fillcolor=(fill, ) * 3))


ENHANCERS = dict(
    EnhanceColor=ImageEnhance.Color,
    EnhanceContrast=ImageEnhance.Contrast,
    EnhanceBrightness=ImageEnhance.Brightness,
    EnhanceSharpness=ImageEnhance.Sharpness)
FILTERS = dict(FilterBlur=ImageFilter.BLUR, FilterSmooth=ImageFilter.SMOOTH)


def _cutout(img: np.ndarray, side: float, center: Tuple[float, float],
            fill: int) -> np.ndarray:
    """imgaug's ``Cutout(squared=True)``: a square of ``side`` x H pixels
    centred at ``center`` ((y, x) fractions), corners truncated to int and
    clipped to the frame."""
    h, w = img.shape[:2]
    cy, cx = center
    y1, y2 = (cy - side / 2) * h, (cy + side / 2) * h
    x1, x2 = (cx - side / 2) * w, (cx + side / 2) * w
    half, x_center = (y2 - y1) / 2, x1 + (x2 - x1) / 2
    x1, x2 = x_center - half, x_center + half
    y1, y2 = (min(max(int(v), 0), h) for v in (y1, y2))
    x1, x2 = (min(max(int(v), 0), w) for v in (x1, x2))
    img = img.copy()
    img[y1:y2, x1:x2] = fill
    return img


def apply_op(img: np.ndarray, op: str, value: float, fill: int,
             center: Tuple[float, float]) -> np.ndarray:
    """Apply one RandAugment op with fixed parameters to one frame, as
    imgaug 0.4.0 does (the same PIL calls, or the same arithmetic).

    Args:
        img (np.ndarray): Frame of shape (H, W, 3), uint8, RGB.
        op (str): One of :data:`IMGAUG_RANDAUGMENT_OPS`.
        value (float): The signed level (see :func:`op_level`).
        fill (int): Fill value of new pixels (affine ops, Cutout).
        center (tuple[float, float]): Cutout centre (y, x) as fractions.

    Returns:
        np.ndarray: The frame, (H, W, 3) uint8.
    """
    h, w = img.shape[:2]
    if op == 'Identity':
        return img
    if op == 'Autocontrast':
        return mmcv.auto_contrast(img, cutoff=0)
    if op == 'Equalize':
        return mmcv.imequalize(img)
    if op == 'Invert':
        return mmcv.iminvert(img)
    if op == 'Rotate':  # about the centre
        return _pil_affine(img, fill, rotate=value, center=(0.5, 0.5))
    if op == 'Posterize':
        return mmcv.posterize(img, int(value))
    if op == 'Solarize':
        return mmcv.solarize(img, value)
    if op in ENHANCERS:
        factor = min(max(1. + value, 0.1), 1.9)
        pil = Image.fromarray(img)
        return np.array(ENHANCERS[op](pil).enhance(factor))
    if op == 'ShearX':  # about the top-left corner
        return _pil_affine(img, fill, shear=(value, 0.))
    if op == 'ShearY':
        return _pil_affine(img, fill, shear=(0., value))
    if op == 'TranslateX':
        return _pil_affine(img, fill, translate=(value * w, 0.))
    if op == 'TranslateY':
        return _pil_affine(img, fill, translate=(0., value * h))
    if op == 'Cutout':
        return _cutout(img, value, center, fill)
    if op in FILTERS:
        return np.array(Image.fromarray(img).filter(FILTERS[op]))
    raise ValueError(f'Invalid RandAugment op: {op}')


@TRANSFORMS.register_module()
class BEVTClipRandAugment(BaseTransform):
    """imgaug's ``RandAugment(n, m)``, drawn once per clip.

    The clip-consistent RandAugment of the SSv2 fine-tune of `BEVT: BERT
    Pretraining of Video Transformers <https://arxiv.org/abs/2112.01529>`_
    (official: mmaction's ``Imgaug`` with ``RandAugment(n=4, m=7)``, made
    deterministic per clip). All random choices are drawn once per clip and
    applied to every frame:

    1. imgaug's fixed first steps: a horizontal flip with ``hflip_prob``
       (imgaug's ``Fliplr(0.5)``: the official SSv2 run therefore flipped
       half of its clips although its pipeline has no ``Flip``), then, if
       ``crop``, a crop of U(0, M)/224 of the size from each side, resized
       back (bilinear);
    2. ``num_ops`` distinct ops from ``ops`` (default: imgaug's 18), in
       random order, at magnitude M of 30 (:func:`op_level`); Rotate,
       Enhance*, Shear* and Translate* take a random sign, Cutout a random
       centre.

    Each op is computed as imgaug 0.4.0 computes it: PIL's ``AFFINE``
    transform (nearest, fill 128 on every channel) for Rotate (about the
    centre), Shear* (about the top-left corner, with imgaug's
    ``tanh(angle)`` for the shear factor) and Translate*; PIL's
    ``ImageEnhance`` and BLUR / SMOOTH filters; mmcv's ``auto_contrast``,
    ``imequalize``, ``iminvert``, ``posterize`` and ``solarize`` (PIL's
    definitions); imgaug's Cutout corners (truncated to int). The initial
    crop is resized back with OpenCV's bilinear resize, as imgaug's
    ``KeepSizeByResize(interpolation='linear')``.

    **Required Keys:** ``imgs``: a list of (H, W, 3) uint8 RGB frames.

    **Modified Keys:** ``imgs`` (same sizes).

    Args:
        num_ops (int): N, ops per clip. Defaults to 2.
        magnitude (int): M in [0, 30]. Defaults to 9.
        hflip_prob (float): Probability of imgaug's initial flip.
            Defaults to 0.5 (imgaug).
        crop (bool): Whether to apply imgaug's initial crop. Defaults to
            True (imgaug).
        fill (int): Value of pixels created by the affine ops and Cutout.
            Defaults to 128 (imgaug's ``cval``).
        ops (Sequence[str], optional): The op pool. Defaults to
            :data:`IMGAUG_RANDAUGMENT_OPS`.
    """

    def __init__(self,
                 num_ops: int = 2,
                 magnitude: int = 9,
                 hflip_prob: float = 0.5,
                 crop: bool = True,
                 fill: int = 128,
                 ops: Sequence[str] = IMGAUG_RANDAUGMENT_OPS) -> None:
        ops = tuple(ops)
        unknown = [op for op in ops if op not in IMGAUG_RANDAUGMENT_OPS]
        if unknown:
            raise ValueError(f'Invalid RandAugment ops {unknown}; valid ops '
                             f'are {list(IMGAUG_RANDAUGMENT_OPS)}')
        if not (isinstance(num_ops, int) and 0 <= num_ops <= len(ops)):
            raise ValueError(
                f'num_ops must be an int in [0, {len(ops)}], got {num_ops}')
        if not (isinstance(magnitude, int)
                and 0 <= magnitude <= MAX_MAGNITUDE):
            raise ValueError('magnitude must be an int in [0, '
                             f'{MAX_MAGNITUDE}], got {magnitude}')
        if not 0. <= hflip_prob <= 1.:
            raise ValueError(f'hflip_prob must be in [0, 1], got {hflip_prob}')
        self.num_ops = num_ops
        self.magnitude = magnitude
        self.hflip_prob = hflip_prob
        self.crop = crop
        self.fill = fill
        self.ops = ops

    @cache_randomness
    def sample(self) -> Dict:
        """Draw the random choices of one clip.

        Returns:
            dict: ``flip`` (bool), ``crop`` (top, right, bottom, left
            fractions) and ``ops``: a list of ``(op, signed value, cutout
            centre (y, x))``.
        """
        flip = bool(np.random.rand() < self.hflip_prob)
        crop = tuple(np.random.uniform(0, self.magnitude, 4) /
                     224) if self.crop else (0., ) * 4
        ops = []
        for idx in np.random.choice(len(self.ops), self.num_ops, False):
            op = self.ops[idx]
            value = op_level(op, self.magnitude)
            if op in SIGNED_OPS and np.random.rand() < 0.5:
                value = -value
            center = tuple(np.random.uniform(0, 1, 2))
            ops.append((op, value, center))
        return dict(flip=flip, crop=crop, ops=ops)

    def apply(self, img: np.ndarray, draw: Dict) -> np.ndarray:
        """Apply one clip's draw to one frame.

        Args:
            img (np.ndarray): Frame of shape (H, W, 3), uint8, RGB.
            draw (dict): The output of :meth:`sample`.

        Returns:
            np.ndarray: The frame, (H, W, 3) uint8.
        """
        h, w = img.shape[:2]
        if draw['flip']:
            img = mmcv.imflip(img, 'horizontal')
        top, right, bottom, left = draw['crop']
        box = (int(round(top * h)), h - int(round(bottom * h)),
               int(round(left * w)), w - int(round(right * w)))
        if box != (0, h, 0, w):
            img = mmcv.imresize(img[box[0]:box[1], box[2]:box[3]], (w, h))
        for op, value, center in draw['ops']:
            img = apply_op(img, op, value, self.fill, center)
        return np.ascontiguousarray(img)

    def transform(self, results: Dict) -> Dict:
        """Apply one draw to every frame of ``results['imgs']``.

        Args:
            results (dict): With ``imgs``, a list of (H, W, 3) uint8 frames.

        Returns:
            dict: ``results`` with the augmented frames.
        """
        imgs: List[np.ndarray] = list(results['imgs'])
        for img in imgs:
            if img.dtype != np.uint8:
                raise TypeError(f'Frames must be uint8, got {img.dtype}')
        draw = self.sample()
        results['imgs'] = [self.apply(img, draw) for img in imgs]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_ops={self.num_ops}, '
                f'magnitude={self.magnitude}, hflip_prob={self.hflip_prob}, '
                f'crop={self.crop}, fill={self.fill}, ops={self.ops})')
