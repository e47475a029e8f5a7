# Copyright (c) bevt contributors. All rights reserved.
"""Test (and evaluate) a checkpoint; mmaction2's command line."""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from bevt.registry import RUNNERS  # also makes `bevt::` configs resolve
from bevt.utils import (load_config, run_preflight, setup_cpu_distributed,
                        shutdown_distributed)


def parse_args() -> argparse.Namespace:
    """Parse the command line (the same flags as mmaction2's test.py)."""
    parser = argparse.ArgumentParser(description='Test a bevt model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the directory to save the evaluation metrics')
    parser.add_argument(
        '--dump',
        type=str,
        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, as key=value pairs')
    parser.add_argument(
        '--show-dir', help='directory where visualisations are saved')
    parser.add_argument(
        '--show',
        action='store_true',
        help='display the prediction results in a window')
    parser.add_argument(
        '--interval', type=int, default=1, help='visualise every N samples')
    parser.add_argument(
        '--wait-time',
        type=float,
        default=2,
        help='display time of every window (seconds)')
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
    if args.show or args.show_dir is not None:
        if 'visualization' not in cfg.default_hooks:
            raise ValueError(
                '--show/--show-dir need `default_hooks.visualization='
                'dict(type="VisualizationHook")` in the config')
        visualization = cfg.default_hooks.visualization
        visualization.enable = True
        visualization.show = args.show
        visualization.wait_time = args.wait_time
        visualization.out_dir = args.show_dir
        visualization.interval = args.interval
    if args.dump is not None:
        if not args.dump.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--dump must name a .pkl file: {args.dump}')
        dump_metric = dict(type='DumpResults', out_file_path=args.dump)
        if isinstance(cfg.test_evaluator, (list, tuple)):
            cfg.test_evaluator = [*cfg.test_evaluator, dump_metric]
        else:
            cfg.test_evaluator = [cfg.test_evaluator, dump_metric]
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # work_dir: CLI > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    return cfg


def init_tokenizer(runner: Runner) -> None:
    """Load the weights of the model's tokenizer (``target_generator``)
    from its ``init_cfg``, as training does.

    ``Runner.test()`` does not initialise the model (only ``train()`` does),
    and BEVT checkpoints do not carry the frozen tokenizer: without this, a
    pretraining config would be tested against the targets of a randomly
    initialised tokenizer.
    """
    model = runner.model.module if is_model_wrapper(
        runner.model) else runner.model
    tokenizer = getattr(model, 'target_generator', None)
    if tokenizer is not None and hasattr(tokenizer, 'init_weights'):
        tokenizer.init_weights()


def main() -> None:
    """Build the runner from the config and test the checkpoint."""
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
        mode='test',
        checkpoint=args.checkpoint,
        check_only=args.check)
    setup_cpu_distributed(cfg, args.launcher)
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    init_tokenizer(runner)
    runner.test()
    shutdown_distributed()


if __name__ == '__main__':
    main()
