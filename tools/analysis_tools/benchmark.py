# Copyright (c) bevt contributors. All rights reserved.
"""Time a BEVT pretraining step on synthetic batches of a config's shapes.

A step is ``model.train_step(data, optim_wrapper)`` as ``Runner.train``
runs it (preprocessor, forward, backward, optimizer step) on what the
config's loaders would yield: the tuple (video batch, image batch) of the
multi-source loop, or one batch. Each sample is uint8 noise of the
pipeline's crop and clip length, passed through the pipeline's last
transforms (tokenizer view, mask generator with the config's arguments,
packing) and collated. Every weight is at random init: the tokenizer's
``init_cfg`` and the backbone's ``pretrained`` are dropped, nothing is
loaded. The optimizer is the config's ``optim_wrapper`` with
``accumulative_counts=1``; off CUDA an ``AmpOptimWrapper`` becomes a plain
``OptimWrapper``, and ``--amp`` runs the step under ``torch.autocast``.

``--compare`` builds a second variant (``official`` and/or ``key=value``
overrides) with the same weights, times both interleaved on the same
batches and prints the ratios; ``--profile`` writes the profiler's
operator table of one more step of each.

Examples::

    python tools/analysis_tools/benchmark.py \\
        configs/bevt/smoke/bevt_swin-nano-p244-w444_1xb4-8x2x1-4e_synthetic-motion-shapes.py \\
        --videos 2 --images 4 --compare official
    python tools/analysis_tools/benchmark.py configs/bevt/pretrain.py \\
        --videos 4 --images 32 --amp bf16 --compare official --peak-tflops 989
"""  # noqa: E501
import argparse
import copy
import inspect
import json
import os
import random
import resource
import statistics
import sys
import time
import types
from contextlib import contextmanager, nullcontext
from typing import (Any, Dict, Iterator, List, NamedTuple, Optional, Sequence,
                    Tuple)

import numpy as np
import torch
from mmengine.config import DictAction
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from bevt.registry import MODELS, TRANSFORMS
from bevt.utils import load_config
from bevt.utils.config_streams import (loader_pipelines, pipeline_stream,
                                       transform_type)

MIB = 2.**20
ARCH_KEYS = ('embed_dims', 'depths', 'num_heads')
MASK_TYPES = ('BEVTTubeMaskGenerator', 'BEVTBlockMaskGenerator')
#: "The official way" (xyzforever/BEVT) as config settings, each set where
#: the built class takes the argument; the loss is :func:`official_loss`.
OFFICIAL_SETTINGS = (
    ('model.backbone.attention', 'reference'),  # mmaction2's formula
    ('model.compile_backbone', False),  # eager PyTorch
    ('model.tokenize_all_frames', True),  # every frame, every cell
    ('model.head.gather_masked', False),  # vocab projection of every token
    ('model.target_generator.dtype', None),  # float32
    ('model.target_generator.channels_last', False),  # NCHW
    ('model.target_generator.compile', False),  # eager PyTorch
    # one param group per parameter, and AdamW not fused
    ('optim_wrapper.constructor', 'DefaultOptimWrapperConstructor'),
    ('optim_wrapper.optimizer.fused', False))


def official_loss(self: Any, batches: Sequence[dict]) -> Dict[str, Any]:
    """BEVT's losses computed the official way, from the model's public parts.

    Bound to a BEVT model in place of its ``loss``: one backbone pass per
    stream, then every frame of every stream (clip frames folded into the
    batch, then the images: the official head's ``torch.cat((imgs_3d,
    imgs_2d))``) in one tokenizer call, then the head's loss per stream.

    Args:
        batches (Sequence[dict]): Preprocessed batches, one per stream:
            ``inputs`` with ``imgs`` (N, 3, [T,] H, W), ``input_mask``,
            ``target_mask`` (bool, True = masked), ``tokenizer_imgs``
            (N, 3, [T,] h, w).

    Returns:
        dict: The head's losses and diagnostics of every stream.
    """
    inputs = [batch['inputs'] for batch in batches]
    feats = [self.backbone(i['imgs'], i.get('input_mask')) for i in inputs]
    views = [i['tokenizer_imgs'] for i in inputs]
    frames = torch.cat([
        v.transpose(1, 2).flatten(0, 1) if v.dim() == 5 else v for v in views
    ])  # (F, 3, h, w); frame t of clip n at n * T + t
    with torch.no_grad():
        targets = self.target_generator(frames).detach()  # (F, h/d, w/d)
    losses, start = {}, 0
    for i, feat, view in zip(inputs, feats, views):
        num = view.shape[0] * (view.shape[2] if view.dim() == 5 else 1)
        target = targets[start:start + num].flatten(1, 2)  # (num, hw[, D])
        target = target.reshape(view.shape[0], -1, *target.shape[2:])
        start += num
        stream = 'video' if i['imgs'].dim() == 5 else 'img'
        mask = i['target_mask'].flatten(1)  # (N, L)
        losses.update(self.head.loss(feat, target, mask, stream))
    return losses


# ----------------------------------------------------------------------
# command line and config
# yapf: disable
OPTIONS = (  # (flag, type, help) of the plain options
    ('--videos', int, 'clips per step (default: the video loader batch)'),
    ('--images', int, 'images per step (default: the image loader batch)'),
    ('--iters', int, 'timed steps (default: 10)'),
    ('--warmup', int, 'untimed steps before them (default: 3)'),
    ('--arch', str, 'backbone arch as JSON, e.g. \'{"embed_dims":96,'
     '"depths":[2,2,6,2],"num_heads":[3,6,12,24]}\''),
    ('--crop', int, 'crop in pixels (tokenizer view and masks follow)'),
    ('--clip-len', int, 'frames per clip'),
    ('--profile', str, 'write torch.profiler\'s operator table here'),
    ('--json', str, 'write the numbers here'),
    ('--peak-tflops', float, 'peak TFLOP/s of the device, for the MFU'),
    ('--seed', int, 'seed of weights and batches (default: 0)'))
# yapf: enable


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse and check the command line; errors name the argument."""
    parser = argparse.ArgumentParser(
        description='Time a BEVT pretraining step on synthetic batches')
    parser.add_argument('config', help='pretraining config file')
    for flag, kind, text in OPTIONS:
        parser.add_argument(flag, type=kind, help=text)
    parser.add_argument('--device', choices=['cpu', 'cuda'])
    parser.add_argument(
        '--amp',
        choices=['none', 'bf16', 'fp16'],
        help='CUDA: AmpOptimWrapper of this dtype; CPU: the step under '
        'torch.autocast (default: the config\'s; float32 on a CPU)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    parser.add_argument(
        '--compare',
        nargs='+',
        metavar='official|KEY=VALUE',
        help='also time this variant, same weights and batches')
    parser.set_defaults(iters=10, warmup=3, seed=0)
    args = parser.parse_args(argv)
    for name, low in (('iters', 1), ('warmup', 0), ('videos', 0),
                      ('images', 0), ('crop', 16), ('clip_len', 1)):
        value = getattr(args, name)
        if value is not None and value < low:
            parser.error(f'--{name.replace("_", "-")} must be >= {low}, '
                         f'got {value}')
    if args.peak_tflops is not None and args.peak_tflops <= 0:
        parser.error(f'--peak-tflops must be > 0, got {args.peak_tflops}')
    args.official = 'official' in (args.compare or [])
    args.overrides = {}
    for item in set(args.compare or []) - {'official'}:
        if '=' not in item:
            parser.error(f'Invalid --compare item {item!r}: expected '
                         '"official" or KEY=VALUE')
        key, value = item.split('=', 1)
        args.overrides[key] = DictAction._parse_iterable(value)
    if args.arch is not None:
        try:
            args.arch = json.loads(args.arch)
        except json.JSONDecodeError as err:
            parser.error(f'Invalid --arch JSON {args.arch!r}: {err}')
        if not isinstance(args.arch, dict) or sorted(
                args.arch) != sorted(ARCH_KEYS) or not isinstance(
                    args.arch['depths'], list):
            parser.error(f'Invalid --arch {args.arch!r}: expected a JSON '
                         f'object with exactly the keys {ARCH_KEYS}')
    return args


def _crop(t: dict) -> Optional[int]:
    """The square crop a transform config sets, if it sets one."""
    for key in ('size', 'crop_size', 'scale'):
        if key in t and (key != 'scale' or t.get('keep_ratio') is False):
            value = t[key]
            return value if isinstance(value, int) else value[0]
    return None


def make_random_init(cfg: Any) -> None:
    """Drop the tokenizer's ``init_cfg`` and the backbone's checkpoint."""
    cfg.model.target_generator.init_cfg = None
    if cfg.model.backbone.get('pretrained'):
        cfg.model.backbone.pretrained = None


def apply_sizes(cfg: Any, args: argparse.Namespace) -> None:
    """``--arch``, ``--crop`` and ``--clip-len``."""
    model = cfg.model
    if args.arch is not None:
        model.backbone.arch = args.arch
        model.head.in_channels = args.arch['embed_dims'] * 2**(
            len(args.arch['depths']) - 1)
    for _, pipeline in loader_pipelines(cfg):
        scale = 1.
        for t in pipeline:
            kind = transform_type(t)
            if args.clip_len and 'clip_len' in t:
                t['clip_len'] = args.clip_len
            if args.crop and kind == 'BEVTTokenizerView':
                t['size'] = round(t.get('size', 112) * scale)
            elif args.crop and kind in MASK_TYPES:
                defaults = inspect.signature(TRANSFORMS.get(kind)).parameters
                grid = t.get('input_size', defaults['input_size'].default)
                t['input_size'] = max(round(grid * scale), 1)
                for key in ('num_masking_patches', 'min_num_patches',
                            'max_num_patches'):
                    value = t.get(key, defaults[key].default)
                    if value is not None:
                        t[key] = max(round(value * scale**2), 1)
            elif args.crop and _crop(t):
                scale = args.crop / _crop(t)
                key = next(k for k in ('size', 'crop_size', 'scale') if k in t)
                t[key] = args.crop if key != 'scale' else (args.crop, ) * 2


def apply_official(cfg: Any) -> List[str]:
    """Set :data:`OFFICIAL_SETTINGS` where the built class takes them."""
    applied = []
    for key, value in OFFICIAL_SETTINGS:
        *path, name = key.split('.')
        parent = cfg
        for part in path:
            parent = (parent or {}).get(part)
        if parent is None or path[0] == 'model' and name not in \
                inspect.signature(MODELS.get(parent['type'])).parameters:
            continue
        parent[name] = value
        applied.append(f'{".".join(path[1:] + [name])}={value!r}')
    return applied


class StreamSpec(NamedTuple):
    """A stream's samples: loader batch, crop (H, W), frames per clip (None
    for images) and the pipeline's transforms from the tokenizer view on."""
    batch_size: int
    crop: Tuple[int, int]
    clip_len: Optional[int]
    tail: list


def stream_specs(cfg: Any) -> Dict[str, StreamSpec]:
    """The :class:`StreamSpec` of each stream of the config's loaders."""
    specs = {}
    for loader, pipeline in loader_pipelines(cfg):
        stream = pipeline_stream(pipeline)
        kinds = [transform_type(t) for t in pipeline]
        if stream is None or stream in specs:
            continue
        if 'BEVTTokenizerView' not in kinds:
            raise ValueError(f'the {stream} pipeline has no BEVTTokenizerView')
        start = kinds.index('BEVTTokenizerView')
        crops = [_crop(t) for t in pipeline[:start] if _crop(t)]
        if not crops:
            raise ValueError(f'no crop in the {stream} pipeline; pass --crop')
        clip_len = [t['clip_len'] for t in pipeline if 'clip_len' in t]
        if stream == 'video' and not clip_len:
            raise ValueError('no clip_len in the video pipeline')
        specs[stream] = StreamSpec(
            loader.get('batch_size', 1), (crops[-1], ) * 2,
            clip_len[0] if stream == 'video' else None,
            [TRANSFORMS.build(t) for t in pipeline[start:]])
    return specs


def make_steps(specs: Dict[str, dict], counts: Dict[str, int], num: int,
               seed: int) -> List[Any]:
    """``num`` collated steps of uint8 noise with the pipelines' masks."""
    rng = np.random.default_rng(seed)
    random.seed(seed)  # the mask generators draw from `random`
    steps = []
    for _ in range(num):
        batches = []
        for stream, count in counts.items():
            spec, samples = specs[stream], []
            for _ in range(count):
                size = (spec.clip_len or 1, *spec.crop, 3)
                results = dict(imgs=list(rng.integers(0, 256, size, np.uint8)))
                if spec.clip_len:
                    results.update(clip_len=spec.clip_len, num_clips=1)
                for transform in spec.tail:
                    results = transform(results)
                samples.append(results)
            batches.append(pseudo_collate(samples))
        steps.append(tuple(batches) if len(batches) > 1 else batches[0])
    return steps


# ----------------------------------------------------------------------
# measuring
@contextmanager
def quiet() -> Iterator[None]:
    """mmengine's logger at ERROR (random-init and param-group messages)."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('ERROR')
    try:
        yield
    finally:
        logger.setLevel(level)


def flop_counter() -> FlopCounterMode:
    """FLOPs, also of CPU fused attention (torch has no formula for it)."""
    op = getattr(torch.ops.aten, '_scaled_dot_product_flash_attention_for_cpu',
                 None)
    mapping = {} if op is None else {
        op: lambda q, k, v, *_, **__: sdpa_flop_count(q, k, v)
    }
    return FlopCounterMode(display=False, depth=None, custom_mapping=mapping)


def build_optim(model: Any, cfg: Any, amp: Optional[str],
                device: torch.device) -> tuple:
    """(optim wrapper, autocast or None, description)."""
    wrapper_cfg = copy.deepcopy(dict(cfg.optim_wrapper))
    notes = []
    if wrapper_cfg.pop('accumulative_counts', 1) != 1:
        notes.append('accumulative_counts -> 1')
    dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(amp)
    autocast = None
    if device.type != 'cuda' or amp == 'none':
        if wrapper_cfg.get('type') == 'AmpOptimWrapper':
            notes.append(f'AmpOptimWrapper -> OptimWrapper on {device.type}')
        for key in ('type', 'loss_scale', 'dtype', 'use_fsdp'):
            wrapper_cfg.pop(key, None)
        if dtype is not None:
            autocast = torch.autocast(device.type, dtype)
            notes.append(f'train_step under torch.autocast({device.type}, '
                         f'{dtype})')
    elif dtype is not None:
        wrapper_cfg.update(type='AmpOptimWrapper', dtype=dtype)
    with quiet():
        wrapper = build_optim_wrapper(model, wrapper_cfg)
    optimizer = wrapper.optimizer
    params = sum(p.requires_grad for p in model.parameters())
    cast = getattr(wrapper, 'cast_dtype', None)
    desc = (f'{type(wrapper).__name__}({type(optimizer).__name__}'
            f'{" fused" if optimizer.defaults.get("fused") else ""}, '
            f'{len(optimizer.param_groups)} param groups for {params} '
            f'parameters{f", {cast}" if cast else ""})')
    return wrapper, autocast, desc + ''.join(f'; {n}' for n in notes)


def build_model(cfg: Any, device: torch.device, seed: int) -> Any:
    """The config's model, initialised from ``seed``, in train mode."""
    with quiet():
        torch.manual_seed(seed)
        model = MODELS.build(cfg.model)
        model.init_weights()
    return model.to(device).train()


class Variant:
    """A model variant: its timed train steps (seconds, CUDA peak memory),
    its tokenizer's time and its FLOPs.

    Args:
        name (str): Column title.
        cfg (Config): Its config.
        settings (list[str]): What defines it, for the report.
        args (argparse.Namespace): ``--amp`` and ``--seed``.
        device (torch.device): Where it runs.
        official (bool): Compute the loss with :func:`official_loss`.
            Defaults to False.
    """

    def __init__(self,
                 name: str,
                 cfg: Any,
                 settings: List[str],
                 args: argparse.Namespace,
                 device: torch.device,
                 official: bool = False) -> None:
        self.name, self.device = name, device
        self.settings, self.official = settings, official
        self.model = build_model(cfg, device, args.seed)
        if official:
            self.model.loss = types.MethodType(official_loss, self.model)
        self.optim, self.autocast, self.optim_desc = build_optim(
            self.model, cfg, args.amp, device)
        self.times, self.peak = [], None
        self.tokenizer_times, self.losses, self.spans = [], [], []
        self.counting, self.calls, self.frames = False, 0, 0
        tokenizer = self.model.target_generator
        tokenizer.register_forward_pre_hook(self._begin, with_kwargs=True)
        tokenizer.register_forward_hook(lambda *_: self._mark())

    def _mark(self) -> None:
        if self.device.type != 'cuda':
            self.spans.append(time.perf_counter())
            return
        self.spans.append(torch.cuda.Event(enable_timing=True))
        self.spans[-1].record()

    def _begin(self, module: Any, args: tuple, kwargs: dict) -> None:
        self._mark()
        if self.counting:  # calls and frames encoded (reads the mask)
            x, cells = args[0], kwargs.get('cell_mask')
            self.calls += 1
            self.frames += x.shape[0] * (x.shape[2] if x.dim() == 5 else 1) \
                if cells is None else int(cells.flatten(-2).any(-1).sum())

    def describe(self) -> str:
        """The built model's settings that tell the variants apart."""
        m, tokenizer = self.model, self.model.target_generator
        return (f'attention={getattr(m.backbone, "attention", "?")!r}, '
                f'tokenize_all_frames={getattr(m, "tokenize_all_frames", "?")}'
                f', gather_masked={getattr(m.head, "gather_masked", "?")}, '
                f'tokenizer dtype={getattr(tokenizer, "dtype", "?")}, '
                f'channels_last={getattr(tokenizer, "channels_last", "?")}, '
                f'compile={getattr(tokenizer, "compile_options", "?")}, '
                f'loss={"official_loss" if self.official else "BEVT.loss"}')

    def copy_weights(self, other: 'Variant') -> None:
        """Take the weights of ``other``, the tokenizer's too."""
        self.model.load_state_dict(other.model.state_dict())
        with torch.no_grad():
            for src, dst in zip(other.model.target_generator.parameters(),
                                self.model.target_generator.parameters()):
                dst.copy_(src)

    def forward_pass(self, data: Any) -> None:
        """One eval-mode forward before any update: the loss (the same in
        every variant), the FLOPs and the tokenizer's calls and frames."""
        model, self.counting = self.model.eval(), True
        with torch.no_grad(), torch.compiler.set_stance('force_eager'):
            batch = model.data_preprocessor(data, True)
            with flop_counter() as counter:
                if isinstance(batch, dict):
                    out = model(**batch, mode='loss')
                else:
                    out = model(*batch, mode='loss')
        model.train()
        self.counting = False
        self.loss = float(sum(v for k, v in out.items() if 'loss' in k))
        self.gflops = counter.get_total_flops() / 1e9
        tokenizer = f'{type(model).__name__}.target_generator'
        self.tokenizer_gflops = sum(counter.get_flop_counts().get(
            tokenizer, {}).values()) / 1e9

    def step(self, data: Any, record: bool = True) -> Any:
        """One train step, as the Runner's; if ``record``, its seconds, loss,
        tokenizer seconds and (CUDA) peak memory."""
        cuda = self.device.type == 'cuda'
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            start_bytes = torch.cuda.memory_allocated(self.device)
        self.spans.clear()
        start = time.perf_counter()
        with self.autocast or nullcontext():
            out = self.model.train_step(data, self.optim)
        if cuda:
            torch.cuda.synchronize(self.device)
        if not record:
            return out
        self.times.append(time.perf_counter() - start)
        if cuda:
            peak = torch.cuda.max_memory_allocated(self.device) - start_bytes
            self.peak = max(self.peak or 0., peak / MIB)
        self.losses.append(float(out['loss'].detach()))
        spans = zip(self.spans[::2], self.spans[1::2])
        self.tokenizer_times.append(
            sum(a.elapsed_time(b) / 1e3 if cuda else b - a for a, b in spans))
        return out

    def summary(self, counts: Dict[str, int],
                peak_tflops: Optional[float]) -> Dict[str, Any]:
        """The numbers of this variant."""
        median = statistics.median(self.times)
        images = counts.get('img', 0)
        step = 3 * (self.gflops - self.tokenizer_gflops) + \
            self.tokenizer_gflops
        out = dict(
            name=self.name,
            s_per_iter_median=median,
            s_per_iter_min=min(self.times),
            clips_per_s=counts.get('video', 0) / median,
            images_per_s=images / median if images else None,
            peak_memory_mib=self.peak,
            times=self.times,
            settings=self.settings,
            model=self.describe(),
            optimizer=self.optim_desc,
            tokenizer_s_per_iter=statistics.median(self.tokenizer_times),
            tokenizer_share=sum(self.tokenizer_times) / sum(self.times),
            tokenizer_calls=self.calls,
            tokenizer_frames=self.frames,
            fwd_gflops=self.gflops,
            fwd_gflops_tokenizer=self.tokenizer_gflops,
            step_gflops=step,
            achieved_tflops=step / median / 1e3,
            first_loss=self.loss,
            losses=self.losses)
        if peak_tflops:
            out['mfu'] = out['achieved_tflops'] / peak_tflops
        return out


# ----------------------------------------------------------------------
# running and reporting
# yapf: disable
ROWS = (  # (label, key, format, scale)
    ('s/iter (median)', 's_per_iter_median', '.4f', 1),
    ('s/iter (min)', 's_per_iter_min', '.4f', 1),
    ('clips/s', 'clips_per_s', '.3f', 1),
    ('images/s', 'images_per_s', '.3f', 1),
    ('tokenizer s/iter', 'tokenizer_s_per_iter', '.4f', 1),
    ('tokenizer share %', 'tokenizer_share', '.1f', 100),
    ('tokenizer calls/iter', 'tokenizer_calls', 'd', 1),
    ('tokenizer frames/iter', 'tokenizer_frames', 'd', 1),
    ('peak memory MiB', 'peak_memory_mib', '.1f', 1),
    ('fwd GFLOPs', 'fwd_gflops', '.3f', 1),
    ('fwd GFLOPs tokenizer', 'fwd_gflops_tokenizer', '.3f', 1),
    ('step GFLOPs', 'step_gflops', '.3f', 1),
    ('achieved TFLOP/s', 'achieved_tflops', '.4f', 1),
    ('MFU %', 'mfu', '.2f', 100),
    ('loss (first batch)', 'first_loss', '.4f', 1))
# yapf: enable


def table(results: List[Dict[str, Any]]) -> str:
    """The rows of :data:`ROWS` with a value: a column per variant and, for
    two, their ratio."""
    titles = [r['name'] for r in results]
    titles += [f'{titles[1]}/{titles[0]}'] if len(results) == 2 else []
    rows = []
    for label, key, spec, scale in ROWS:
        values = [r.get(key) for r in results]
        if all(v is None for v in values):
            continue
        cells = ['-' if v is None else format(v * scale, spec) for v in values]
        if len(values) == 2:
            a, b = values
            cells.append(f'{b / a:.2f}' if a and b is not None else '-')
        rows.append((label, cells))
    width = max(len(label) for label, _ in rows) + 2
    cols = [
        max(len(t), *(len(r[1][i]) for r in rows)) + 2
        for i, t in enumerate(titles)
    ]
    lines = [' ' * width + ''.join(t.rjust(c) for t, c in zip(titles, cols))]
    for label, cells in rows:
        lines.append(
            label.ljust(width) +
            ''.join(v.rjust(c) for v, c in zip(cells, cols)))
    return '\n'.join(lines)


def run_interleaved(variants: List[Variant], steps: List[Any], iters: int,
                    warmup: int) -> None:
    """``warmup + iters`` steps of every variant in turn (A B, B A, ...);
    the timed ones take ``steps`` in turn from the first."""
    for i in range(warmup + iters):
        for variant in (variants if i % 2 == 0 else variants[::-1]):
            variant.step(steps[(i - warmup) % len(steps)], i >= warmup)


def profile(variants: List[Variant], data: Any, path: str) -> None:
    """Profile one more step of each variant; write torch.profiler's
    operator table to ``path`` and print its top 10 operators."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    cuda = variants[0].device.type == 'cuda'
    activities = [ProfilerActivity.CPU
                  ] + ([ProfilerActivity.CUDA] if cuda else [])
    sort = 'self_device_time_total' if cuda else 'self_cpu_time_total'
    text = []
    for variant in variants:
        with torch_profile(activities=activities) as prof:
            variant.step(data, record=False)
        averages = prof.key_averages()
        text.append(f'== {variant.name}: operators by {sort}\n' +
                    averages.table(sort_by=sort, row_limit=50))
        print(f'\n{variant.name}: top operators by {sort}\n' +
              averages.table(sort_by=sort, row_limit=10))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as file:
        file.write('\n\n'.join(text) + '\n')
    print(f'profile written to {path}')


def step_benchmark(cfg: Any, args: argparse.Namespace, device: torch.device,
                   specs: Dict[str, dict], counts: Dict[str, int],
                   info: List[str]) -> Dict[str, Any]:
    """Time the config's train step, and that of ``--compare``'s variant."""
    settings = [f'{k}={v!r}' for k, v in (args.cfg_options or {}).items()]
    variants = [Variant('default', cfg, settings, args, device)]
    if args.compare:
        cfg_b = copy.deepcopy(cfg)
        settings = apply_official(cfg_b) if args.official else []
        cfg_b.merge_from_dict(args.overrides)
        settings += [f'{k}={v!r}' for k, v in args.overrides.items()]
        if any(spec[:3] != specs[s][:3]
               for s, spec in stream_specs(cfg_b).items() if s in specs):
            raise ValueError('--compare must not change the data shapes')
        name = 'official' if args.official else 'compare'
        variants.append(
            Variant(name + ('+' if args.official and args.overrides else ''),
                    cfg_b, settings, args, device, args.official))
        variants[1].copy_weights(variants[0])
    steps = make_steps(specs, counts, min(args.iters, 4), args.seed)
    for variant in variants:
        variant.forward_pass(steps[0])
    batches = steps[0] if isinstance(steps[0], tuple) else (steps[0], )
    views = [(len(b['inputs']['imgs']), list(b['inputs']['imgs'][0].shape),
              list(b['inputs']['tokenizer_imgs'][0].shape)) for b in batches]
    info += [
        'batch: ' + ' + '.join(f'{n} x {a} (tokenizer {b})'
                               for n, a, b in views) +
        f', uint8 noise, the config\'s masks; {len(steps)} distinct batch(es)'
        ' in turn; weights: random init, nothing loaded',
        f'timing: median/min of {args.iters} step(s) after {args.warmup} '
        'warm-up' + (', variants interleaved' if args.compare else ''),
        'tokenizer calls, frames, FLOPs (torch.utils.flop_counter, a '
        'multiply-add = 2 FLOPs; step = 3 x the rest + tokenizer) and loss: '
        'one eval-mode forward of the first batch before any update',
        'peak memory: ' + ('max_memory_allocated in a step above the memory '
                           'allocated at its start' if device.type == 'cuda'
                           else 'on a CPU, the process peak RSS (getrusage) '
                           'after the table')
    ]
    if args.official:
        info.append('official: one backbone pass per stream (mmaction2\'s '
                    'attention formula), then every frame of both streams in '
                    'one float32 NCHW tokenizer call (torch.cat((clip frames, '
                    'images))), the vocab projection on every token, one '
                    'param group per parameter, AdamW not fused')
    for v in variants:
        info += [
            f'{v.name}: ' + (', '.join(v.settings) or 'the config'),
            f'{v.name} model: {v.describe()}',
            f'{v.name} optimizer: {v.optim_desc}'
        ]
    print('\n'.join(['== BEVT pretraining step =='] + info) + '\n')
    sys.stdout.flush()
    run_interleaved(variants, steps, args.iters, args.warmup)
    results = [v.summary(counts, args.peak_tflops) for v in variants]
    print(table(results))
    payload = dict(variants=results, distinct_batches=len(steps))
    if device.type == 'cpu':
        payload['peak_rss_mib'] = resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss / 1024.
        print(f'process peak RSS: {payload["peak_rss_mib"]:.0f} MiB')
    if len(results) == 2:
        a, b = results
        payload['ratios'] = {
            k: b[k] / a[k] if a[k] and b[k] is not None else None
            for k in ('s_per_iter_median', 's_per_iter_min',
                      'tokenizer_s_per_iter', 'peak_memory_mib', 'first_loss')
        }
        speed = payload['ratios']
        print(f'\nspeed-up of {a["name"]} over {b["name"]} ({b["name"]} '
              f'time / {a["name"]} time): step '
              f'{speed["s_per_iter_median"]:.2f}x (min '
              f'{speed["s_per_iter_min"]:.2f}x), tokenizer '
              f'{speed["tokenizer_s_per_iter"] or 0:.2f}x; first-batch '
              f'losses differ by {abs(speed["first_loss"] - 1):.1e} '
              '(relative)')
    if args.profile:
        profile(variants, steps[0], args.profile)
    return payload


def run(args: argparse.Namespace) -> int:
    """:func:`main` after parsing."""
    device = torch.device(
        args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError('--device cuda, but CUDA is not available')
    cfg = load_config(args.config)
    if not all(
            k in cfg.get('model', {})
            for k in ('backbone', 'head', 'target_generator')):
        raise ValueError(f'{args.config} has no BEVT model (backbone, head, '
                         'target_generator)')
    init_default_scope(cfg.get('default_scope', 'bevt'))
    make_random_init(cfg)
    apply_sizes(cfg, args)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    specs = stream_specs(cfg)
    counts = {}
    for stream, num, flag in (('video', args.videos, '--videos'),
                              ('img', args.images, '--images')):
        if stream not in specs and num:
            raise ValueError(f'{flag} {num}, but the config has no {stream} '
                             'pipeline with a BEVT mask generator')
        if stream in specs and num != 0:
            counts[stream] = num or specs[stream].batch_size
    if not counts:
        raise ValueError('nothing to run: no BEVT mask pipeline in the '
                         'config\'s loaders, or --videos and --images are 0')
    info = [
        f'config: {args.config}', f'device: {device} '
        f'({torch.get_num_threads()} threads), torch {torch.__version__}'
    ]
    payload = step_benchmark(cfg, args, device, specs, counts, info)
    payload.update(
        config=args.config,
        device=str(device),
        counts=counts,
        iters=args.iters,
        warmup=args.warmup)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as file:
            json.dump(payload, file, indent=2, default=str)
        print(f'numbers written to {args.json}')
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark; returns the exit status (2 for bad input)."""
    args = parse_args(argv)
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
