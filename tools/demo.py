# Copyright (c) bevt contributors. All rights reserved.
"""``make demo``: the smallest end-to-end run that bevt has today.

Generates the motion dataset (real mp4 files), trains the nano Video Swin
of the smoke config from scratch, tests it and prints top-1 against
chance. (BEVT pretraining and fine-tuning join this run once the model and
data issues land.)
"""
import argparse
import os
import os.path as osp
import time

from mmengine.config import Config
from mmengine.runner import Runner

from bevt.datasets import MOTIONS, make_synthetic_dataset

HERE = osp.dirname(osp.abspath(__file__))
SCRATCH_CONFIG = osp.join(
    HERE, '..', 'configs', 'bevt', 'smoke',
    'swin-nano-p244-w444_scratch_1xb8-8x2x1-12e_synthetic-motion.py')


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        '--data-root',
        default=os.environ.get('BEVT_DATA', 'data/synthetic'),
        help='where the generated dataset goes (BEVT_DATA)')
    parser.add_argument(
        '--work-dir', default='work_dirs/demo', help='logs and checkpoints')
    parser.add_argument(
        '--epochs', type=int, default=12, help='training epochs')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    return parser.parse_args()


def run(cfg_path: str, data_root: str, work_dir: str, epochs: int,
        seed: int) -> float:
    """Train and test one config; return the test top-1 (in [0, 1])."""
    os.environ['BEVT_DATA'] = data_root
    cfg = Config.fromfile(cfg_path)
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed)
    cfg.train_cfg.max_epochs = epochs
    cfg.param_scheduler[1].T_max = epochs
    cfg.param_scheduler[1].end = epochs
    cfg.train_cfg.val_interval = epochs
    cfg.default_hooks.checkpoint.interval = epochs
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner.test()['acc/top1']


def main() -> None:
    """Generate data, train, test and print the results table."""
    args = parse_args()
    start = time.time()
    if not osp.isfile(osp.join(args.data_root, 'videos_val.txt')):
        print(f'[demo] writing the motion dataset to {args.data_root}')
        make_synthetic_dataset(args.data_root, seed=args.seed)
    print('[demo] training the nano Video Swin from scratch '
          f'({args.epochs} epochs)')
    top1 = run(SCRATCH_CONFIG, args.data_root,
               osp.join(args.work_dir, 'scratch'), args.epochs, args.seed)
    chance = 1 / len(MOTIONS)
    print('\n| model | top-1 (val) |\n| :-- | --: |')
    print(f'| nano Video Swin, from scratch | {100 * top1:.1f} % |')
    print(f'| chance ({len(MOTIONS)} motions) | {100 * chance:.1f} % |')
    print(f'\n[demo] done in {time.time() - start:.0f} s; logs and '
          f'checkpoints in {args.work_dir}')


if __name__ == '__main__':
    main()
