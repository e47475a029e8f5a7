# Copyright (c) bevt contributors. All rights reserved.
"""``make demo``: the whole BEVT method on a dataset it builds itself.

1. writes the motion dataset (real mp4 clips whose class is a motion, and
   shape images; ``bevt.datasets.synthetic_motion``) unless it is there;
2. BEVT joint pretraining of a nano Video Swin on clips (masked video
   modeling, tube masks) and images (masked image modeling, block masks),
   one shared backbone, one step on the summed loss (HOG targets: no
   tokenizer weights to download); its kNN monitor (``BEVTKNNHook``)
   classifies validation clips by their nearest training clips in the
   backbone's feature space at initialisation and after every epoch, drawn
   as ``pictures/knn_curve.png``;
3. converts the pretraining checkpoint for mmaction2
   (``tools/model_converters/bevt_to_mmaction.py``);
4. fine-tunes it on the motion classes and tests it (2 clips x 3 crops);
5. fine-tunes and tests the same model from scratch, for comparison;
6. draws the inputs, masks and per-token predictions of the pretrained
   model (``tools/analysis_tools/visualize_masks.py``);

then prints the results table (fine-tuning and kNN rows) and the paths of
the pictures. Every step
runs the repository's own command-line tools, as a user would; their full
logs go to ``<work-dir>/logs/``.
"""
import argparse
import json
import math
import os
import os.path as osp
import re
import subprocess
import sys
import time
from typing import Dict, List, Optional

from bevt.datasets.synthetic_motion import (MOTIONS, add_size_arguments,
                                            dataset_is_current,
                                            make_synthetic_dataset,
                                            size_kwargs)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SMOKE = osp.join(REPO, 'configs', 'bevt', 'smoke')
PRETRAIN_CONFIG = osp.join(
    SMOKE,
    'bevt-hog_swin-nano-p244-w444_1xb4-8x2x1-3e_synthetic-motion-shapes.py')
FINETUNE_CONFIG = osp.join(
    SMOKE, 'swin-nano-p244-w444_bevt-pre_1xb8-8x2x1-12e_synthetic-motion.py')
NUMBER = r'([0-9]+\.[0-9]+)'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        '--data-root',
        default=os.environ.get('BEVT_DATA', 'data/synthetic'),
        help='where the generated dataset goes (BEVT_DATA)')
    parser.add_argument(
        '--work-dir', default='work_dirs/demo', help='logs and checkpoints')
    parser.add_argument(
        '--pretrain-epochs', type=int, default=3, help='BEVT epochs')
    parser.add_argument(
        '--finetune-epochs',
        type=int,
        default=6,
        help='fine-tuning epochs (both runs)')
    add_size_arguments(parser)
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    args = parser.parse_args(argv)
    for name in ('pretrain_epochs', 'finetune_epochs'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1')
    return args


class Step:
    """Runs one tool as a child process: full log to a file, a condensed
    progress line per epoch to the terminal."""

    def __init__(self, work_dir: str, env: Dict[str, str]) -> None:
        self.log_dir = osp.join(work_dir, 'logs')
        os.makedirs(self.log_dir, exist_ok=True)
        self.env = env
        self.count = 0

    def run(self,
            title: str,
            name: str,
            cmd: List[str],
            extra_env: Optional[Dict[str, str]] = None) -> str:
        """Run ``cmd`` (a tool and its arguments) and return its output.

        Raises:
            SystemExit: If the tool fails (its log's tail is printed).
        """
        self.count += 1
        print(f'[demo {self.count}] {title}', flush=True)
        log_path = osp.join(self.log_dir, f'{name}.log')
        env = dict(self.env, **(extra_env or {}))
        began = time.time()
        lines = []
        popen = dict(
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1)
        with open(log_path, 'w') as log:
            with subprocess.Popen([sys.executable, *cmd], **popen) as proc:
                for line in proc.stdout:
                    log.write(line)
                    lines.append(line)
                    progress = _progress(line)
                    if progress:
                        print(
                            f'    {progress}  ({time.time() - began:.0f} s)',
                            flush=True)
        if proc.returncode != 0:
            tail = ''.join(lines[-40:])
            print(
                f'{tail}\n[demo] {name} failed (exit {proc.returncode}); '
                f'full log: {log_path}',
                file=sys.stderr)
            raise SystemExit(1)
        print(f'    done in {time.time() - began:.0f} s', flush=True)
        return ''.join(lines)


def _progress(line: str) -> Optional[str]:
    """A short progress line for the end of an epoch or a result line."""
    match = re.search(r'Epoch\(train\)\s*\[(\d+)\]\[(\d+)/(\1|\d+)\]', line)
    if match and match.group(2) == match.group(3):
        losses = re.findall(rf'\b(loss(?:_\w+)?): {NUMBER}', line)
        return f'epoch {match.group(1)}: ' + '  '.join(f'{k} {float(v):.4f}'
                                                       for k, v in losses)
    match = re.search(r'Epoch\((val|test)\)\s*(?:\[\d+\])?\[(\d+)/(\d+)\]',
                      line)
    if match and match.group(2) == match.group(3):
        top1 = re.search(rf'acc/top1: {NUMBER}', line)
        if top1:
            return f'{match.group(1)} top-1 {100 * float(top1.group(1)):.1f} %'
    match = re.search(rf'kNN \(epoch (\d+)\): knn/top1: {NUMBER}', line)
    if match:
        return (f'kNN top-1, epoch {match.group(1)}: '
                f'{100 * float(match.group(2)):.1f} %')
    return None


def read_knn_metrics(output: str) -> Dict[int, Dict[str, float]]:
    """knn/top1 and knn/top5 per epoch (0 = initialisation) of a pretraining
    log with ``BEVTKNNHook``, as fractions."""
    found = {}
    for epoch, top1, top5 in re.findall(
            rf'kNN \(epoch (\d+)\): knn/top1: {NUMBER}  knn/top5: {NUMBER}',
            output):
        found[int(epoch)] = dict(top1=float(top1), top5=float(top5))
    return found


def draw_knn_curve(knn: Dict[int, Dict[str, float]], classes: int,
                   path: str) -> None:
    """Plot kNN top-1 per pretraining epoch, with chance, to ``path``."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    epochs = sorted(knn)
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    top1 = [100 * knn[e]['top1'] for e in epochs]
    ax.plot(epochs, top1, 'o-', color='tab:blue', label='kNN top-1 (k=20)')
    for epoch, value in zip(epochs, top1):
        ax.annotate(
            f'{value:.1f}', (epoch, value),
            textcoords='offset points',
            xytext=(0, 6),
            ha='center',
            fontsize=8)
    ax.axhline(
        100 / classes,
        color='grey',
        linestyle='--',
        label=f'chance ({100 / classes:.1f} %)')
    ax.set_xlabel('pretraining epoch (0 = initialisation)')
    ax.set_ylabel('top-1 (%)')
    ax.set_xticks(epochs)
    ax.set_ylim(0, min(100, 10 * math.ceil(max(top1) / 10 + 1.5)))
    ax.set_title(
        'BEVT pretraining: kNN on the motion classes '
        '(frozen backbone)',
        fontsize=9)
    ax.legend(loc='upper left', fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def read_test_metrics(output: str) -> Dict[str, float]:
    """acc/top1 and acc/top5 of a ``tools/test.py`` run, as fractions."""
    found = {}
    for key in ('top1', 'top5'):
        match = re.findall(rf'Epoch\(test\).*acc/{key}: {NUMBER}', output)
        if not match:
            raise RuntimeError(f'no acc/{key} in the test output')
        found[key] = float(match[-1])
    return found


def schedule_options(epochs: int, val_interval: int) -> List[str]:
    """``--cfg-options`` that stretch a smoke recipe to ``epochs``."""
    return [
        f'train_cfg.max_epochs={epochs}', f'param_scheduler.1.T_max={epochs}',
        f'param_scheduler.1.end={epochs}',
        f'default_hooks.checkpoint.interval={epochs}'
    ] + ([f'train_cfg.val_interval={val_interval}'] if val_interval else [])


def main(argv: Optional[List[str]] = None) -> int:
    """Run the demo; returns the exit status."""
    args = parse_args(argv)
    start = time.time()
    data_root, work_dir = osp.abspath(args.data_root), osp.abspath(
        args.work_dir)
    env = dict(os.environ, BEVT_DATA=data_root, PYTHONWARNINGS='ignore')
    steps = Step(work_dir, env)
    counts = dict(size_kwargs(args), seed=args.seed)
    if dataset_is_current(data_root, **counts):
        print(f'[demo] using the motion dataset in {data_root}')
    else:
        print(f'[demo] writing the motion dataset to {data_root}', flush=True)
        make_synthetic_dataset(data_root, **counts)
    seed = [f'randomness.seed={args.seed}']

    pre_dir = osp.join(work_dir, 'pretrain')
    output = steps.run(
        f'BEVT pretraining, {args.pretrain_epochs} epochs: masked video '
        '(tubes) + masked image (blocks) modeling, HOG targets', 'pretrain', [
            'tools/train.py', PRETRAIN_CONFIG, '--work-dir', pre_dir,
            '--cfg-options', *seed, *schedule_options(args.pretrain_epochs, 0)
        ])
    knn = read_knn_metrics(output)
    if sorted(knn) != list(range(args.pretrain_epochs + 1)):
        raise RuntimeError('the pretraining log has kNN results for epochs '
                           f'{sorted(knn)}, expected 0 to '
                           f'{args.pretrain_epochs}')
    pictures = osp.join(work_dir, 'pictures')
    os.makedirs(pictures, exist_ok=True)
    draw_knn_curve(knn, len(MOTIONS), osp.join(pictures, 'knn_curve.png'))
    pre_ckpt = osp.join(pre_dir, f'epoch_{args.pretrain_epochs}.pth')
    converted = osp.join(work_dir, 'pretrain_mmaction.pth')
    steps.run(
        'converting the pretrained backbone for mmaction2', 'convert',
        ['tools/model_converters/bevt_to_mmaction.py', pre_ckpt, converted])

    results = {}
    runs = (('bevt', 'BEVT-pretrained', dict(BEVT_PRETRAINED=converted), []),
            ('scratch', 'from scratch', {}, ['model.backbone.init_cfg=None']))
    for key, label, extra_env, options in runs:
        ft_dir = osp.join(work_dir, f'finetune_{key}')
        steps.run(
            f'fine-tuning {label}, {args.finetune_epochs} epochs',
            f'finetune_{key}', [
                'tools/train.py', FINETUNE_CONFIG, '--work-dir', ft_dir,
                '--cfg-options', *seed, *options,
                *schedule_options(args.finetune_epochs, args.finetune_epochs)
            ], extra_env)
        output = steps.run(
            f'testing {label} (2 clips x 3 crops per video)', f'test_{key}', [
                'tools/test.py', FINETUNE_CONFIG,
                osp.join(ft_dir, f'epoch_{args.finetune_epochs}.pth'),
                '--work-dir', ft_dir
            ] + (['--cfg-options', *options] if options else []), extra_env)
        results[key] = read_test_metrics(output)

    output = steps.run(
        'pictures of the inputs, masks and predictions of the pretrained '
        'model', 'pictures', [
            'tools/analysis_tools/visualize_masks.py', PRETRAIN_CONFIG,
            '--checkpoint', pre_ckpt, '--out-dir', pictures
        ])
    table = results_table(results, len(MOTIONS), args, knn)
    summary = '\n'.join(line for line in output.splitlines()
                        if line.startswith(('video:', 'image:')))
    files = sorted(
        osp.join(pictures, f) for f in os.listdir(pictures)
        if f.endswith(('.png', '.gif')))
    print('\n' + table)
    print('\nmasked-token predictions of the pretrained model (one clip, one '
          'image):\n' + summary)
    print('pictures:\n  ' + '\n  '.join(files))
    with open(osp.join(work_dir, 'results.json'), 'w') as f:
        json.dump(
            dict(
                results=results,
                knn={
                    str(epoch): value
                    for epoch, value in knn.items()
                },
                chance=1 / len(MOTIONS),
                pretrain_epochs=args.pretrain_epochs,
                finetune_epochs=args.finetune_epochs,
                seed=args.seed,
                seconds=round(time.time() - start)),
            f,
            indent=2)
    print(f'\n[demo] done in {time.time() - start:.0f} s; logs, checkpoints '
          f'and results.json in {work_dir}')
    return 0


def results_table(results: Dict[str, Dict[str, float]],
                  classes: int,
                  args: argparse.Namespace,
                  knn: Optional[Dict[int, Dict[str, float]]] = None) -> str:
    """The results as a Markdown table: the fine-tuned models, then the kNN
    accuracy of the frozen backbone after pretraining and at
    initialisation (``knn``: per epoch, 0 = initialisation)."""
    rows = [
        '| nano Video Swin on the 8 motion classes | pretraining | '
        'top-1 | top-5 |', '| :-- | :-- | --: | --: |'
    ]
    pre = (f'BEVT, {args.pretrain_epochs} epochs (clips + images, '
           'HOG targets)')
    for key, label, how in (('bevt', 'BEVT-pretrained', pre),
                            ('scratch', 'from scratch', 'none')):
        top1, top5 = results[key]['top1'], results[key]['top5']
        rows.append(f'| {label}, fine-tuned {args.finetune_epochs} epochs | '
                    f'{how} | {100 * top1:.1f} % | {100 * top5:.1f} % |')
    if knn:
        last = max(knn)
        for epoch, label, how in ((last, 'BEVT-pretrained', pre),
                                  (0, 'random init', 'none')):
            top1, top5 = knn[epoch]['top1'], knn[epoch]['top5']
            rows.append(f'| {label}, frozen: kNN (k=20) | {how} | '
                        f'{100 * top1:.1f} % | {100 * top5:.1f} % |')
    rows.append(f'| chance | | {100 / classes:.1f} % | '
                f'{500 / classes:.1f} % |')
    return '\n'.join(rows)


if __name__ == '__main__':
    sys.exit(main())
