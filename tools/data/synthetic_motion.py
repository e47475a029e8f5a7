# Copyright (c) bevt contributors. All rights reserved.
"""Write the generated motion dataset (real mp4 clips + images).

    python tools/data/synthetic_motion.py data/synthetic [--seed 0]

The layout is the one the smoke configs read through ``BEVT_DATA``; see
:mod:`bevt.datasets.synthetic_motion`.
"""
import argparse
from typing import List, Optional

from bevt.datasets.synthetic_motion import (add_size_arguments,
                                            make_synthetic_dataset,
                                            size_kwargs)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('root', help='output folder')
    add_size_arguments(parser)
    parser.add_argument('--frames', type=int, default=16, help='per clip')
    parser.add_argument('--size', type=int, default=64, help='frame side')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Write the dataset and print the list files."""
    args = parse_args(argv)
    lists = make_synthetic_dataset(
        args.root,
        **size_kwargs(args),
        num_frames=args.frames,
        size=args.size,
        seed=args.seed)
    for name, path in sorted(lists.items()):
        print(f'{name}: {path}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
