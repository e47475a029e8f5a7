# Copyright (c) bevt contributors. All rights reserved.
"""Write the generated motion dataset (real mp4 clips + images).

    python tools/data/synthetic_motion.py data/synthetic [--seed 0]

The layout is the one the smoke configs read through ``BEVT_DATA``; see
:mod:`bevt.datasets.synthetic_motion`.
"""
import argparse
from typing import List, Optional

from bevt.datasets.synthetic_motion import (IMAGES_PER_CLASS, VIDEOS_PER_CLASS,
                                            make_synthetic_dataset)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('root', help='output folder')
    parser.add_argument(
        '--videos-per-class',
        type=int,
        nargs=2,
        default=(VIDEOS_PER_CLASS['train'], VIDEOS_PER_CLASS['val']),
        metavar=('TRAIN', 'VAL'),
        help='clips per motion in the train and val splits')
    parser.add_argument(
        '--images-per-class',
        type=int,
        nargs=2,
        default=(IMAGES_PER_CLASS['train'], IMAGES_PER_CLASS['val']),
        metavar=('TRAIN', 'VAL'),
        help='images per shape in the train and val splits')
    parser.add_argument('--frames', type=int, default=16, help='per clip')
    parser.add_argument('--size', type=int, default=64, help='frame side')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Write the dataset and print the list files."""
    args = parse_args(argv)
    lists = make_synthetic_dataset(
        args.root,
        videos_per_class=dict(
            train=args.videos_per_class[0], val=args.videos_per_class[1]),
        images_per_class=dict(
            train=args.images_per_class[0], val=args.images_per_class[1]),
        num_frames=args.frames,
        size=args.size,
        seed=args.seed)
    for name, path in sorted(lists.items()):
        print(f'{name}: {path}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
