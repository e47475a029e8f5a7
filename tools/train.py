# Copyright (c) bevt contributors. All rights reserved.
"""Train with a bevt (or any mmaction2) config; mmaction2's command line."""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from bevt.engine.runner import find_resumable_checkpoint
from bevt.registry import RUNNERS  # also makes `bevt::` configs resolve
from bevt.utils import (is_launch_rank0, load_config, run_preflight,
                        setup_cpu_distributed, shutdown_distributed)


def parse_args() -> argparse.Namespace:
    """Parse the command line (the same flags as mmaction2's train.py)."""
    parser = argparse.ArgumentParser(description='Train a bevt model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint; without a path, resume from the '
        'latest checkpoint in the work directory')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual total batch size over '
        '`auto_scale_lr.base_batch_size`')
    parser.add_argument('--seed', type=int, default=None, help='random seed')
    parser.add_argument(
        '--diff-rank-seed',
        action='store_true',
        help='use a different seed on every rank')
    parser.add_argument(
        '--deterministic',
        action='store_true',
        help='set deterministic options for the CUDNN backend')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, as key=value pairs merged '
        'last, e.g. train_cfg.max_epochs=1 or key="[a,b]"')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--check',
        action='store_true',
        help='only check that the data, checkpoints and settings the run '
        'needs are there (builds nothing; exit status 0 or 1)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge the command-line arguments into the config."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    cfg.launcher = args.launcher
    # work_dir: CLI > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise ValueError(
                f'--amp does not support optim_wrapper.type={optim_wrapper}')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    randomness = cfg.get('randomness', None) or dict()
    if args.seed is not None:
        randomness['seed'] = args.seed
    randomness.setdefault('seed', None)
    randomness['diff_rank_seed'] = (
        args.diff_rank_seed or randomness.get('diff_rank_seed', False))
    randomness['deterministic'] = (
        args.deterministic or randomness.get('deterministic', False))
    cfg.randomness = randomness
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def resume_from_latest(cfg: Config) -> None:
    """``--resume`` without a path: the newest readable checkpoint of the
    work directory, naming every newer one that cannot be read.

    Without any checkpoint the run starts from the beginning (so a job
    script can always pass ``--resume``); with only unreadable ones it
    stops, naming them.
    """
    path, unreadable = find_resumable_checkpoint(cfg.work_dir)
    rank0 = is_launch_rank0(cfg.launcher)
    for bad, why in unreadable:
        if rank0:
            print(f'warning: cannot resume from {bad}: {why}', flush=True)
    if path is None and unreadable:
        raise SystemExit('error: no readable checkpoint to resume from in '
                         f'{cfg.work_dir}')
    if path is not None:
        if rank0 and unreadable:
            print(f'resuming from {path} instead', flush=True)
        cfg.load_from = path


def main() -> None:
    """Build the runner from the config and train."""
    args = parse_args()
    try:
        cfg = load_config(args.config)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f'error: {err}')
    cfg = merge_args(cfg, args)
    # every missing file and bad setting, before anything is built
    run_preflight(
        cfg,
        args.config,
        resume=None if args.resume == 'auto' else args.resume,
        check_only=args.check)
    if args.resume == 'auto':
        resume_from_latest(cfg)
    setup_cpu_distributed(cfg, args.launcher)
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.train()
    shutdown_distributed()


if __name__ == '__main__':
    main()
