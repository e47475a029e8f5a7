# Copyright (c) bevt contributors. All rights reserved.
"""A small, generated dataset: real mp4 clips whose class is a motion.

Used by ``make demo``, the smoke configs and the tests (nothing is
downloaded). A clip shows one shape on a grey background with faint
noise; its class is how the shape moves, so a single frame cannot tell the
class: a model must use time. Images (one shape per image, class = shape)
feed the image stream.

Layout written under ``root`` (the ``BEVT_DATA`` layout of the smoke
configs)::

    videos/{train,val}/<motion>_<index>.mp4
    videos_{train,val}.txt      "<motion>_<index>.mp4 <label>" (VideoDataset)
    images/{train,val}/<shape>/<index>.png
    images_{train,val}.txt      "<shape>/<index>.png <label>" (CustomDataset)
    classes_videos.txt, classes_images.txt
    synthetic_motion.json       the generator version and arguments
"""
import argparse
import json
import os
import os.path as osp
from typing import Dict, Sequence

import cv2
import numpy as np

MOTIONS = ('left', 'right', 'up', 'down', 'rotate_cw', 'rotate_ccw', 'grow',
           'shrink')
SHAPES = ('triangle', 'square', 'circle', 'cross')
#: Bumped whenever the same arguments would draw different files.
GENERATOR_VERSION = 1
INFO_FILE = 'synthetic_motion.json'
#: Default sizes, per class and split.
VIDEOS_PER_CLASS = dict(train=160, val=16)
IMAGES_PER_CLASS = dict(train=64, val=8)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A plain grey with faint noise, (size, size, 3) uint8.

    A strongly textured background made the motion classes unlearnable for
    the nano models in a CPU budget (top-1 at chance after 12 epochs); on a
    plain one the motion is what differs between clips.
    """
    noise = rng.integers(0, 24, (size, size, 3))
    return (96 + noise).astype(np.uint8)


def _shape_points(shape: str, center: np.ndarray, radius: float,
                  angle: float) -> np.ndarray:
    """Polygon vertices of a shape, (K, 2) float, in (x, y) pixels."""
    if shape == 'circle':
        # a circle with a notch, so that rotation is visible
        ts = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        rs = np.where(ts < 0.6, 0.45, 1.0) * radius
    elif shape == 'triangle':
        ts = np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
        rs = np.array([1.3, 1.0, 1.0]) * radius
    elif shape == 'square':
        ts = np.arange(4) * np.pi / 2 + np.pi / 4
        rs = np.array([1.4, 1.0, 1.0, 1.0]) * radius
    elif shape == 'cross':
        ts = np.arange(8) * np.pi / 4
        rs = np.array([1.2, 0.4, 1.0, 0.4, 1.0, 0.4, 1.0, 0.4]) * radius
    else:
        raise ValueError(f'Invalid shape: {shape}')
    ts = ts + angle
    return center + np.stack([np.cos(ts) * rs, np.sin(ts) * rs], axis=1)


def _draw(canvas: np.ndarray, shape: str, center: np.ndarray, radius: float,
          angle: float, color: Sequence[int]) -> np.ndarray:
    points = _shape_points(shape, center, radius, angle)
    out = canvas.copy()
    cv2.fillPoly(
        out, [np.round(points).astype(np.int32)],
        tuple(int(c) for c in color),
        lineType=cv2.LINE_AA)
    return out


def make_clip(motion: str,
              rng: np.random.Generator,
              num_frames: int = 16,
              size: int = 64) -> np.ndarray:
    """Render one clip.

    Args:
        motion (str): One of :data:`MOTIONS`.
        rng (np.random.Generator): Source of randomness.
        num_frames (int): Frames per clip. Defaults to 16.
        size (int): Frame side in pixels. Defaults to 64.

    Returns:
        np.ndarray: Frames of shape (num_frames, size, size, 3), uint8 BGR.
    """
    if motion not in MOTIONS:
        raise ValueError(f'Invalid motion: {motion}')
    background = _background(rng, size)
    shape = SHAPES[rng.integers(len(SHAPES))]
    color = rng.integers(0, 256, 3)
    radius = size * rng.uniform(0.12, 0.18)
    span = size * rng.uniform(0.35, 0.5)  # distance travelled
    center = rng.uniform(0.3, 0.7, 2) * size
    angle0 = rng.uniform(0, 2 * np.pi)
    direction = dict(
        left=(-1, 0), right=(1, 0), up=(0, -1), down=(0, 1)).get(motion)
    if direction is not None:  # start so that the path stays in the frame
        center = size / 2 - np.array(direction) * span / 2 + rng.uniform(
            -0.1, 0.1, 2) * size
    frames = []
    for t in np.linspace(0.0, 1.0, num_frames):
        c, r, a = center, radius, angle0
        if direction is not None:
            c = center + np.array(direction) * span * t
        elif motion == 'rotate_cw':
            a = angle0 + 1.5 * np.pi * t
        elif motion == 'rotate_ccw':
            a = angle0 - 1.5 * np.pi * t
        elif motion == 'grow':
            r = radius * (0.6 + 1.0 * t)
        else:  # shrink
            r = radius * (1.6 - 1.0 * t)
        frames.append(_draw(background, shape, c, r, a, color))
    return np.stack(frames)


def make_image(shape: str,
               rng: np.random.Generator,
               size: int = 64) -> np.ndarray:
    """Render one image of ``shape``, (size, size, 3) uint8 BGR."""
    if shape not in SHAPES:
        raise ValueError(f'Invalid shape: {shape}')
    return _draw(
        _background(rng, size), shape,
        rng.uniform(0.3, 0.7, 2) * size, size * rng.uniform(0.15, 0.3),
        rng.uniform(0, 2 * np.pi), rng.integers(0, 256, 3))


def write_mp4(path: str, frames: np.ndarray, fps: int = 8) -> None:
    """Write BGR frames (T, H, W, 3) uint8 to an MPEG-4 file at ``path``."""
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps,
                             (width, height))
    if not writer.isOpened():
        raise RuntimeError(f'OpenCV cannot write mp4 files: {path}')
    for frame in frames:
        writer.write(frame)
    writer.release()


def make_synthetic_dataset(root: str,
                           videos_per_class: Dict[str, int] = None,
                           images_per_class: Dict[str, int] = None,
                           num_frames: int = 16,
                           size: int = 64,
                           seed: int = 0) -> Dict[str, str]:
    """Write the dataset described in the module docstring under ``root``.

    The same arguments always give the same files.

    Args:
        root (str): Output folder (created).
        videos_per_class (dict, optional): Clips per motion for each split.
            Defaults to :data:`VIDEOS_PER_CLASS`.
        images_per_class (dict, optional): Images per shape for each split.
            Defaults to :data:`IMAGES_PER_CLASS`.
        num_frames (int): Frames per clip. Defaults to 16.
        size (int): Frame and image side. Defaults to 64.
        seed (int): Random seed. Defaults to 0.

    Returns:
        dict: Paths of the written list files, keyed like
        ``'videos_train'``.
    """
    info = _info(videos_per_class, images_per_class, num_frames, size, seed)
    if osp.isfile(osp.join(root, INFO_FILE)):  # stale until rewritten
        os.remove(osp.join(root, INFO_FILE))
    lists = {}
    for stream, classes, per_class in (('videos', MOTIONS,
                                        info['videos_per_class']),
                                       ('images', SHAPES,
                                        info['images_per_class'])):
        with open(osp.join(_mkdir(root), f'classes_{stream}.txt'), 'w') as f:
            f.write('\n'.join(classes) + '\n')
        for split_id, (split, count) in enumerate(sorted(per_class.items())):
            rng = np.random.default_rng([seed, split_id, len(stream)])
            lines = []
            for index in range(count):
                for label, name in enumerate(classes):
                    if stream == 'videos':
                        rel = f'{name}_{index:04d}.mp4'
                        write_mp4(
                            osp.join(_mkdir(root, stream, split), rel),
                            make_clip(name, rng, num_frames, size))
                    else:
                        rel = f'{name}/{index:04d}.png'
                        cv2.imwrite(
                            osp.join(
                                _mkdir(root, stream, split,
                                       name), f'{index:04d}.png'),
                            make_image(name, rng, size))
                    lines.append(f'{rel} {label}')
            lists[f'{stream}_{split}'] = osp.join(root,
                                                  f'{stream}_{split}.txt')
            with open(lists[f'{stream}_{split}'], 'w') as f:
                f.write('\n'.join(lines) + '\n')
    with open(osp.join(root, INFO_FILE), 'w') as f:  # written last
        json.dump(info, f, indent=2)
    return lists


def _info(videos_per_class: Dict[str, int], images_per_class: Dict[str, int],
          num_frames: int, size: int, seed: int) -> dict:
    """The generator version and the arguments, defaults filled in."""
    return dict(
        version=GENERATOR_VERSION,
        videos_per_class=dict(videos_per_class or VIDEOS_PER_CLASS),
        images_per_class=dict(images_per_class or IMAGES_PER_CLASS),
        num_frames=num_frames,
        size=size,
        seed=seed)


def dataset_is_current(root: str,
                       videos_per_class: Dict[str, int] = None,
                       images_per_class: Dict[str, int] = None,
                       num_frames: int = 16,
                       size: int = 64,
                       seed: int = 0) -> bool:
    """Whether ``root`` holds exactly what :func:`make_synthetic_dataset`
    would write with these arguments (by this version of the generator)."""
    try:
        with open(osp.join(root, INFO_FILE)) as f:
            found = json.load(f)
    except (OSError, ValueError):
        return False
    return found == _info(videos_per_class, images_per_class, num_frames, size,
                          seed)


def add_size_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--videos-per-class TRAIN VAL`` and ``--images-per-class TRAIN
    VAL`` (defaults :data:`VIDEOS_PER_CLASS`, :data:`IMAGES_PER_CLASS`) to
    a command line; :func:`size_kwargs` turns them into arguments of
    :func:`make_synthetic_dataset`."""
    sizes = (('videos', VIDEOS_PER_CLASS, 'clips per motion'),
             ('images', IMAGES_PER_CLASS, 'images per shape'))
    for name, defaults, what in sizes:
        parser.add_argument(
            f'--{name}-per-class',
            type=int,
            nargs=2,
            default=(defaults['train'], defaults['val']),
            metavar=('TRAIN', 'VAL'),
            help=f'{what} in the train and val splits')


def size_kwargs(args: argparse.Namespace) -> Dict[str, Dict[str, int]]:
    """``videos_per_class`` / ``images_per_class`` from the arguments of
    :func:`add_size_arguments`."""
    return {
        f'{name}_per_class':
        dict(zip(('train', 'val'), getattr(args, f'{name}_per_class')))
        for name in ('videos', 'images')
    }


def _mkdir(*parts: str) -> str:
    path = osp.join(*parts)
    os.makedirs(path, exist_ok=True)
    return path
