# Copyright (c) bevt contributors. All rights reserved.
"""Time a BEVT pretraining step on synthetic batches of a config's shapes.

One step is what ``Runner.train`` does per iteration: the data preprocessor,
the forward pass (backbone, tokenizer, head), the backward pass and the
optimizer step of the config's ``optim_wrapper`` (with
``accumulative_counts=1``, so that every timed step updates the weights; a
wrapper that cannot be built on the device, e.g. ``AmpOptimWrapper`` on a
CPU, is replaced by a plain ``OptimWrapper`` and the output says so).

The batches are uint8 noise of the shapes of the config's pipelines (clip
length, crop, tokenizer view) with real masks drawn by
:func:`~bevt.datasets.transforms.masking.generate_block_mask` and
:func:`~bevt.datasets.transforms.masking.tube_mask` with the config's mask
arguments; no file is read or decoded. Every weight is at random init:
the tokenizer's ``init_cfg`` and the backbone's ``pretrained`` are dropped
(nothing is downloaded); the cost of a step does not depend on the values.

Reported: seconds per iteration (median and min), clips/s and images/s,
peak memory, the time and share of the tokenizer (its forward calls) and of
the vocabulary projection (``head.fc``, forward and backward), and the FLOPs
of one forward (``torch.utils.flop_counter``; a multiply-add counts as 2),
split into tokenizer and the rest, with the step estimate
3 x (trainable forward) + tokenizer forward.

``--compare`` builds a second variant in the same process with the same
weights and batches, runs both interleaved and prints the ratios;
``--backbone-only`` compares the Video Swin train step of our backbone with
mmaction2's ``SwinTransformer3D`` (``--compile``: also under
``torch.compile``); ``--compare model.compile_backbone=True`` times the full
step with the compiled backbone.

Examples::

    # the smoke config, 2 clips + 4 images
    python tools/analysis_tools/benchmark.py \\
        configs/bevt/smoke/bevt_swin-nano-p244-w444_1xb4-8x2x1-4e_synthetic-motion-shapes.py \\
        --videos 2 --images 4 --iters 5
    # stage 2 at Swin-T size on a CPU, against the official way
    python tools/analysis_tools/benchmark.py configs/bevt/pretrain.py \\
        --videos 1 --images 8 --compare official --iters 3 --warmup 1 \\
        --arch '{"embed_dims":96,"depths":[2,2,6,2],"num_heads":[3,6,12,24]}'
"""  # noqa: E501
import argparse
import copy
import ctypes
import gc
import inspect
import json
import math
import os
import random
import resource
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import (Any, Callable, Dict, Iterator, List, Optional, Sequence,
                    Tuple)

from bevt.utils.config_streams import (loader_pipelines, pipeline_stream,
                                       transform_type)

#: The "official way" of the reference implementation, as model settings:
#: (config path, value); each is applied where the built class accepts it.
OFFICIAL_SETTINGS = (
    ('model.backbone.fused_attention', 'reference'),
    ('model.tokenize_all_frames', True),
    ('model.head.gather_masked', False),
    ('model.target_generator.dtype', None),
    ('model.target_generator.channels_last', False),
    ('model.target_generator.inplace', False),
    ('model.target_generator.chunk_size', 64),  # all frames at once
    ('model.target_generator.stage_bytes', None),
)
#: ... and as the optimizer wrapper's constructor: one param group per
#: parameter (mmcv's and mmengine's default constructors), applied where the
#: config names ours.
OFFICIAL_CONSTRUCTOR = ('BEVTOptimWrapperConstructor',
                        'DefaultOptimWrapperConstructor')
ARCH_KEYS = ('embed_dims', 'depths', 'num_heads')
CROP_KEYS = ('size', 'crop_size')
MIB = 1024.**2


# ----------------------------------------------------------------------
# command line
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: The arguments.
    """
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(
        description='Time a BEVT pretraining step (preprocessor, forward, '
        'backward, optimizer step) on synthetic batches of the config\'s '
        'shapes; all weights at random init, nothing is downloaded')
    parser.add_argument('config', help='pretraining config file')
    parser.add_argument(
        '--videos',
        type=int,
        help='clips per step (default: the batch size of the config\'s '
        'video loader; 0 = no video stream)')
    parser.add_argument(
        '--images',
        type=int,
        help='images per step (default: the batch size of the config\'s '
        'image loader; 0 = no image stream)')
    parser.add_argument(
        '--iters', type=int, default=10, help='timed iterations')
    parser.add_argument(
        '--warmup',
        type=int,
        default=3,
        help='untimed iterations before the timed ones')
    parser.add_argument(
        '--device',
        choices=['cpu', 'cuda'],
        help='device (default: cuda if available, else cpu)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, "key=value" (merged last)')
    parser.add_argument(
        '--official',
        action='store_true',
        help='run "the official way": ' +
        ', '.join(f'{k.split(".")[-1]}={v}' for k, v in OFFICIAL_SETTINGS) +
        f', one param group per parameter ({OFFICIAL_CONSTRUCTOR[1]})')
    parser.add_argument(
        '--compare',
        nargs='+',
        metavar='KEY=VALUE|official',
        help='also time a second variant: this config with these '
        'overrides ("official" = the --official settings), same weights '
        'and batches, interleaved with the first; prints the ratios')
    parser.add_argument(
        '--backbone-only',
        action='store_true',
        help='time a backbone train step (forward + backward of a feature '
        'sum) of BEVTSwinTransformer3D\'s video path against mmaction2\'s '
        'SwinTransformer3D with the same weights')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='with --backbone-only: also time our encoder under '
        'torch.compile (the full step: --compare model.compile_backbone=True)')
    parser.add_argument(
        '--amp',
        choices=['none', 'bf16', 'fp16'],
        help='mixed precision: "none" forces float32, "bf16"/"fp16" an '
        'AmpOptimWrapper (on a CPU: autocast without loss scaling); '
        'default: as the config\'s optim_wrapper; with --backbone-only: '
        'autocast of the forward, default float32')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of weights and batches')
    parser.add_argument(
        '--threads',
        type=int,
        help='CPU threads of torch (torch.set_num_threads); 1 gives steadier '
        'numbers on a busy machine, where OpenMP threads spin-wait')
    parser.add_argument(
        '--json', metavar='OUT', help='also write the numbers to this file')
    parser.add_argument(
        '--profile',
        metavar='OUT',
        help='after the timing, profile one more step of each variant with '
        'torch.profiler and write its operator tables (by device time and '
        'by CPU time) to this text file')
    parser.add_argument(
        '--peak-tflops',
        type=float,
        help='peak TFLOP/s of the device, to report the model FLOP '
        'utilisation (MFU)')
    parser.add_argument(
        '--arch',
        help='backbone arch as JSON, e.g. \'{"embed_dims":96,"depths":'
        '[2,2,6,2],"num_heads":[3,6,12,24]}\' (Swin-T); head.in_channels '
        'follows')
    parser.add_argument(
        '--tokenizer-n-hid',
        type=int,
        help='hidden width of the DALL-E tokenizer (256 in DALL-E)')
    parser.add_argument(
        '--clip-len', type=int, help='frames per clip (video pipeline)')
    parser.add_argument(
        '--crop',
        type=int,
        help='crop size in pixels; tokenizer views and mask grids scale '
        'with it, mask budgets with its area')
    args = parser.parse_args(argv)
    for name in ('iters', 'warmup', 'videos', 'images', 'tokenizer_n_hid',
                 'clip_len', 'crop', 'threads'):
        value = getattr(args, name)
        low = 1 if name in ('iters', 'tokenizer_n_hid', 'clip_len', 'crop',
                            'threads') else 0
        if value is not None and value < low:
            parser.error(f'--{name.replace("_", "-")} must be >= {low}, '
                         f'got {value}')
    if args.profile and args.backbone_only:
        parser.error('--profile profiles the full step; it does not work '
                     'with --backbone-only')
    if args.peak_tflops is not None and not args.peak_tflops > 0:
        parser.error(f'--peak-tflops must be > 0, got {args.peak_tflops}')
    try:
        args.arch_dict = None if args.arch is None else parse_arch(args.arch)
        args.compare_official, args.compare_options = parse_overrides(
            args.compare or [])
    except ValueError as err:
        parser.error(str(err))
    return args


def parse_arch(text: str) -> Dict[str, Any]:
    """Parse ``--arch``.

    Args:
        text (str): A JSON object with the keys of :data:`ARCH_KEYS`.

    Returns:
        dict: The arch.

    Raises:
        ValueError: If it is not such an object.
    """
    try:
        arch = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f'Invalid --arch JSON {text!r}: {err}') from None
    if not isinstance(arch, dict) or set(arch) != set(ARCH_KEYS):
        raise ValueError(f'Invalid --arch {text!r}: expected a JSON object '
                         f'with exactly the keys {ARCH_KEYS}')
    depths, heads = arch['depths'], arch['num_heads']
    if not (isinstance(depths, list) and isinstance(heads, list)
            and len(depths) == len(heads) >= 2
            and isinstance(arch['embed_dims'], int)):
        raise ValueError(f'Invalid --arch {text!r}: embed_dims must be an '
                         'int, depths and num_heads lists of one length >= 2')
    return arch


def parse_overrides(items: Sequence[str]) -> Tuple[bool, Dict[str, Any]]:
    """Split ``--compare`` items into the official flag and overrides.

    Args:
        items (Sequence[str]): ``official`` and/or ``key=value`` items.

    Returns:
        tuple: (whether ``official`` was given, ``{key: value}`` parsed as
        mmengine's ``DictAction`` parses ``--cfg-options``).

    Raises:
        ValueError: For an item that is neither.
    """
    from mmengine.config import DictAction

    official, options = False, {}
    for item in items:
        if item == 'official':
            official = True
        elif '=' in item:
            key, value = item.split('=', 1)
            options[key] = DictAction._parse_iterable(value)
        else:
            raise ValueError(f'Invalid --compare item: {item!r}; expected '
                             '"official" or key=value')
    return official, options


# ----------------------------------------------------------------------
# config handling
def _pair(value: Any, name: str) -> Tuple[int, int]:
    """``s`` or ``(h, w)`` as ``(h, w)``."""
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 \
            and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f'Invalid {name}: {value!r}; expected an int or (h, w)')


def _defaults(name: str) -> Dict[str, Any]:
    """Constructor defaults of a registered bevt transform."""
    from bevt.registry import TRANSFORMS

    cls = TRANSFORMS.get(name)
    return {
        k: p.default
        for k, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


@dataclass
class StreamSpec:
    """The shapes of one stream's synthetic samples.

    Args:
        stream (str): 'video' or 'img'.
        batch_size (int): The config loader's batch size.
        crop (Tuple[int, int]): Model view (H, W).
        view (Tuple[int, int]): Tokenizer view (h, w).
        mask_args (dict): Arguments of the mask generator transform.
        clip_len (int, optional): Frames per clip; None for images.
    """

    stream: str
    batch_size: int
    crop: Tuple[int, int]
    view: Tuple[int, int]
    mask_args: Dict[str, Any] = field(default_factory=dict)
    clip_len: Optional[int] = None

    def describe(self, num: int) -> str:
        """One line for the report, for ``num`` samples."""
        grid = _pair(self.mask_args['input_size'], 'input_size')
        frames = f'{self.clip_len}x' if self.clip_len else ''
        if self.clip_len:
            slots = self.clip_len // self.mask_args['temporal_patch']
            masks = f'tube masks {slots}x{grid[0]}x{grid[1]}'
        else:
            masks = f'block masks {grid[0]}x{grid[1]}'
        name = 'clip(s)' if self.clip_len else 'image(s)'
        return (f'{num} {name} 3x{frames}{self.crop[0]}x{self.crop[1]}, '
                f'tokenizer view {self.view[0]}x{self.view[1]}, {masks} '
                f'(<= {self.mask_args["num_masking_patches"]} cells)')


def stream_specs(cfg: Any) -> Dict[str, StreamSpec]:
    """Read the shapes of each stream from the config's train pipelines.

    Args:
        cfg (Config): The config.

    Returns:
        dict: ``{'video': StreamSpec, 'img': StreamSpec}`` for the streams
        the config has.

    Raises:
        ValueError: If a pipeline lacks a crop size or tokenizer view.
    """
    specs = {}
    for loader, pipeline in loader_pipelines(cfg):
        stream = pipeline_stream(pipeline)
        if stream is None or stream in specs:
            continue
        crop = view = clip_len = None
        mask_name = 'BEVTTubeMaskGenerator' if stream == 'video' \
            else 'BEVTBlockMaskGenerator'
        mask_args = _defaults(mask_name)
        for t in pipeline:
            kind = transform_type(t)
            for key in CROP_KEYS:
                if key in t and kind != 'BEVTTokenizerView':
                    crop = _pair(t[key], f'{kind}.{key}')
            if kind == 'Resize' and t.get('keep_ratio') is False:
                w, h = _pair(t['scale'], 'Resize.scale')  # mmaction (w, h)
                crop = (h, w)
            if kind == 'BEVTTokenizerView':
                view = _pair(
                    t.get('size',
                          _defaults(kind).get('size')), 'tokenizer view')
            if t.get('clip_len') is not None and kind != mask_name:
                clip_len = int(t['clip_len']) * int(t.get('num_clips', 1))
            if kind == mask_name:
                mask_args.update({k: v for k, v in t.items() if k != 'type'})
        if crop is None:
            raise ValueError(f'No crop size found in the {stream} pipeline '
                             '(RandomCrop/CenterCrop/Resize); pass --crop')
        if view is None:
            raise ValueError(f'No BEVTTokenizerView in the {stream} '
                             'pipeline: the model needs a tokenizer view')
        if stream == 'video':
            clip_len = mask_args.get('clip_len') or clip_len
            if clip_len is None:
                raise ValueError('No clip_len in the video pipeline; pass '
                                 '--clip-len')
            mask_args['clip_len'] = clip_len
        specs[stream] = StreamSpec(stream, int(loader.get('batch_size', 1)),
                                   crop, view, mask_args, clip_len)
    return specs


def apply_size_overrides(cfg: Any, args: argparse.Namespace) -> List[str]:
    """Apply ``--arch``, ``--tokenizer-n-hid``, ``--clip-len``, ``--crop``.

    Args:
        cfg (Config): Edited in place.
        args (argparse.Namespace): The arguments.

    Returns:
        list[str]: What was changed, for the report.
    """
    notes = []
    model = cfg.model
    if args.arch is not None:
        arch = parse_arch(args.arch)
        model.backbone.arch = arch
        if 'in_channels' in model.get('head', {}):
            model.head.in_channels = arch['embed_dims'] * 2**(
                len(arch['depths']) - 1)
        notes.append(f'backbone arch={arch}')
    if args.tokenizer_n_hid is not None:
        generator = model.target_generator
        if transform_type(generator) != 'BEVTDALLETokenizer':
            raise ValueError('--tokenizer-n-hid needs a BEVTDALLETokenizer, '
                             f'the config has {generator.get("type")}')
        encoder = dict(generator.get('encoder') or {})
        encoder['n_hid'] = args.tokenizer_n_hid
        generator.encoder = encoder
        notes.append(f'tokenizer n_hid={args.tokenizer_n_hid}')
    if args.clip_len is not None:
        for _, pipeline in loader_pipelines(cfg):
            for t in pipeline:
                if t.get('clip_len') is not None:
                    t['clip_len'] = args.clip_len
        notes.append(f'clip_len={args.clip_len}')
    if args.crop is not None:
        _apply_crop(cfg, args.crop)
        notes.append(f'crop={args.crop}')
    return notes


def _apply_crop(cfg: Any, crop: int) -> None:
    """Set the crop of every train pipeline, scaling what depends on it."""
    specs = stream_specs(cfg)
    for _, pipeline in loader_pipelines(cfg):
        stream = pipeline_stream(pipeline)
        if stream is None:
            continue
        old = specs[stream]
        scale = crop / old.crop[0]
        grid = _pair(old.mask_args['input_size'], 'input_size')
        new_grid = max(int(round(grid[0] * scale)), 1)
        area = new_grid**2 / (grid[0] * grid[1])
        for t in pipeline:
            kind = transform_type(t)
            for key in CROP_KEYS:
                if key in t and kind != 'BEVTTokenizerView':
                    t[key] = crop
            if kind == 'Resize' and t.get('keep_ratio') is False:
                t['scale'] = (crop, crop)
            if kind == 'BEVTTokenizerView':
                t['size'] = max(int(round(old.view[0] * scale)), 1)
            if kind in ('BEVTTubeMaskGenerator', 'BEVTBlockMaskGenerator'):
                t['input_size'] = new_grid
                for key in ('num_masking_patches', 'min_num_patches',
                            'max_num_patches'):
                    value = t.get(key, old.mask_args.get(key))
                    if value is not None:
                        t[key] = max(int(round(value * area)), 1)


def _accepts(type_name: str, key: str) -> bool:
    """Whether the registered class ``type_name`` takes argument ``key``."""
    from bevt.registry import MODELS

    cls = MODELS.get(type_name)
    return cls is not None and key in inspect.signature(
        cls.__init__).parameters


def apply_official(cfg: Any) -> List[str]:
    """Switch the model config to "the official way" where applicable.

    Args:
        cfg (Config): Edited in place.

    Returns:
        list[str]: The settings applied, as ``key=value``.
    """
    applied = []
    for key, value in OFFICIAL_SETTINGS:
        path = key.split('.')
        parent = cfg
        for name in path[:-1]:
            parent = parent.get(name)
        if parent is None or not _accepts(parent['type'], path[-1]):
            continue
        parent[path[-1]] = value
        applied.append(f'{".".join(path[1:])}={value}')
    wrapper = cfg.get('optim_wrapper')
    ours, default = OFFICIAL_CONSTRUCTOR
    if wrapper is not None and wrapper.get('constructor') == ours:
        wrapper['constructor'] = default
        applied.append(f'optim_wrapper.constructor={default}')
    return applied


def make_random_init(cfg: Any) -> None:
    """Drop the tokenizer's ``init_cfg`` and the backbone's checkpoint."""
    generator = cfg.model.get('target_generator')
    if generator is not None and 'init_cfg' in generator:
        generator.init_cfg = None
    backbone = cfg.model.get('backbone')
    if backbone is not None and backbone.get('pretrained') is not None:
        backbone.pretrained = None


# ----------------------------------------------------------------------
# synthetic batches
def _sample(spec: StreamSpec, gen: Any) -> Any:
    """One packed sample (as PackBEVTInputs writes it) of ``spec``."""
    import numpy as np
    import torch
    from mmaction.structures import ActionDataSample

    from bevt.datasets.transforms.masking import generate_block_mask, tube_mask

    args = spec.mask_args
    block = generate_block_mask(
        input_size=args['input_size'],
        num_masking_patches=args['num_masking_patches'],
        min_num_patches=args['min_num_patches'],
        max_num_patches=args.get('max_num_patches'),
        min_aspect=args.get('min_aspect', 0.3),
        max_aspect=args.get('max_aspect'))  # (h, w), True = masked
    frames = (spec.clip_len, ) if spec.clip_len else ()
    imgs = torch.randint(
        0, 256, (3, ) + frames + spec.crop, generator=gen,
        dtype=torch.uint8)  # (3, [T, ] H, W)
    view = torch.randint(
        0, 256, (3, ) + frames + spec.view, generator=gen, dtype=torch.uint8)
    sample = ActionDataSample()
    if spec.clip_len:
        patch = args['temporal_patch']
        tube = tube_mask(block, spec.clip_len // patch,
                         tuple(args['tube_range']))  # (T/p, h, w)
        sample.input_mask = torch.from_numpy(tube)
        sample.target_mask = torch.from_numpy(np.repeat(tube, patch, 0))
    else:
        sample.input_mask = torch.from_numpy(block)
        sample.target_mask = torch.from_numpy(block.copy())
    return imgs, view, sample


def make_batches(specs: Dict[str, StreamSpec], counts: Dict[str, int],
                 num: int, seed: int) -> List[Any]:
    """``num`` collated steps: a (video, image) tuple or a single batch.

    Args:
        specs (dict): Stream shapes.
        counts (dict): Samples per stream and step (0 = stream left out).
        num (int): Number of distinct steps.
        seed (int): Seed of pixels and masks.

    Returns:
        list: Per step, a ``dict(inputs, data_samples)`` per stream (a
        tuple when there are two).
    """
    import torch

    random.seed(seed)
    gen = torch.Generator().manual_seed(seed)
    steps = []
    for _ in range(num):
        batches = []
        for stream in ('video', 'img'):
            if not counts.get(stream):
                continue
            samples = [
                _sample(specs[stream], gen) for _ in range(counts[stream])
            ]
            batches.append(
                dict(
                    inputs=dict(
                        imgs=[s[0] for s in samples],
                        tokenizer_imgs=[s[1] for s in samples]),
                    data_samples=[s[2] for s in samples]))
        steps.append(tuple(batches) if len(batches) > 1 else batches[0])
    return steps


# ----------------------------------------------------------------------
# measurement helpers
def synchronizer(device: Any) -> Callable[[], None]:
    """A function that waits for the device (a no-op on CPU)."""
    import torch

    if device.type == 'cuda':
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


class SectionTimer:
    """Wall time spent in a module's forward (and backward) calls.

    Args:
        module (nn.Module): The timed module.
        sync (Callable): Waits for the device around each section.
        backward (bool): Also time its backward pass (full backward hooks).
            Defaults to False.
    """

    def __init__(self,
                 module: Any,
                 sync: Callable[[], None],
                 backward: bool = False) -> None:
        self.sync = sync
        self.total = 0.
        self.enabled = True
        self._start: Dict[str, float] = {}
        self.handles = [
            module.register_forward_pre_hook(self._begin('fwd')),
            module.register_forward_hook(self._end('fwd'))
        ]
        if backward:
            self.handles += [
                module.register_full_backward_pre_hook(self._begin('bwd')),
                module.register_full_backward_hook(self._end('bwd'))
            ]

    def _begin(self, phase: str) -> Callable:

        def hook(*_):
            if self.enabled:
                self.sync()
                self._start[phase] = time.perf_counter()

        return hook

    def _end(self, phase: str) -> Callable:

        def hook(*_):
            if self.enabled and phase in self._start:
                self.sync()
                self.total += time.perf_counter() - self._start.pop(phase)

        return hook

    def remove(self) -> None:
        """Remove the hooks."""
        for handle in self.handles:
            handle.remove()


def _read_status_kib(key: str) -> Optional[int]:
    """A ``kB`` field of ``/proc/self/status`` (None if unavailable)."""
    try:
        with open('/proc/self/status') as file:
            for line in file:
                if line.startswith(key + ':'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the peak RSS (VmHWM) of this process; False if impossible."""
    try:
        with open('/proc/self/clear_refs', 'w') as file:
            file.write('5')
        return _read_status_kib('VmHWM') is not None
    except OSError:
        return False


def _malloc_trim() -> bool:
    """Give the C heap's free memory back to the OS (glibc only)."""
    try:
        return bool(ctypes.CDLL(None).malloc_trim(0)) or True
    except (OSError, AttributeError):
        return False


class MemoryMeter:
    """Peak memory of one step above the memory at its start.

    Measured on a separate, untimed step (:meth:`measure`): on CPU the
    cached heap is released first, which would slow timed steps down.

    CUDA: ``torch.cuda.max_memory_allocated`` after resetting the peak.
    CPU: after ``gc.collect()`` and glibc's ``malloc_trim(0)``, the peak RSS
    (``VmHWM`` of ``/proc/self/status``, reset through
    ``/proc/self/clear_refs``) minus the RSS at the start; where that is
    unavailable, the growth of ``resource.getrusage().ru_maxrss`` (a
    lifetime high-water mark, so a step that stays below an earlier peak
    reads 0). No tracemalloc, no psutil.

    Args:
        device (torch.device): The device.
    """

    def __init__(self, device: Any) -> None:
        self.device = device
        self.absolute = 0.
        self._mode = 'cuda'
        if device.type == 'cuda':
            self.method = ('CUDA: torch.cuda.max_memory_allocated during one '
                           'extra untimed step minus the allocation at its '
                           'start')
        elif _reset_peak_rss():
            self._mode = 'hwm'
            trim = ', after gc and malloc_trim(0)' if _malloc_trim() else ''
            self.method = ('CPU: peak RSS during one extra untimed step per '
                           f'variant{trim} (VmHWM of /proc/self/status, '
                           'reset through /proc/self/clear_refs) minus the '
                           'RSS at its start; approximate (allocator caches)')
        else:
            self._mode = 'ru'
            self.method = ('CPU: growth of resource.getrusage ru_maxrss over '
                           'one extra untimed step (a lifetime high-water '
                           'mark: a step below an earlier peak reads 0)')
        self._base = 0.

    def measure(self, fn: Callable[[], Any]) -> float:
        """Bytes above the start at the peak of ``fn()``."""
        self.start()
        fn()
        return self.stop()

    @staticmethod
    def _maxrss_bytes() -> float:
        scale = 1. if sys.platform == 'darwin' else 1024.
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale

    def start(self) -> None:
        """Mark the start of a step."""
        import torch

        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        elif self._mode == 'hwm':
            gc.collect()
            _malloc_trim()
            _reset_peak_rss()
            self._base = _read_status_kib('VmRSS') * 1024.
        else:
            self._base = self._maxrss_bytes()

    def stop(self) -> float:
        """Bytes above the start at the peak of the step."""
        import torch

        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self._mode == 'hwm':
            peak = _read_status_kib('VmHWM') * 1024.
        else:
            peak = self._maxrss_bytes()
        self.absolute = max(self.absolute, peak)
        return max(peak - self._base, 0.)


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args,
                    **kwargs) -> int:
    """FLOPs of ``aten._scaled_dot_product_flash_attention_for_cpu``."""
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def flop_counter() -> Any:
    """A silent ``FlopCounterMode`` that also counts CPU fused attention
    (``torch.utils.flop_counter`` has no formula for it)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    mapping = {}
    op = getattr(torch.ops.aten, '_scaled_dot_product_flash_attention_for_cpu',
                 None)
    if op is not None:
        mapping[op] = _sdpa_cpu_flops
    return FlopCounterMode(display=False, depth=None, custom_mapping=mapping)


@contextmanager
def eager_modules(model: Any) -> Iterator[None]:
    """Run the modules compiled with ``nn.Module.compile`` eagerly inside.

    For the FLOP count, whose ``FlopCounterMode`` is a dispatch mode: on an
    H200 with PyTorch 2.11, a backbone compiled with
    ``compile_backbone=True`` and first called under it captured no graph
    and timed like the eager one (most likely dynamo declined the frame
    there for good). The eager module has the same FLOPs.
    """
    compiled = [(m, m._compiled_call_impl) for m in model.modules()
                if getattr(m, '_compiled_call_impl', None) is not None]
    for module, _ in compiled:
        module._compiled_call_impl = None
    try:
        yield
    finally:
        for module, impl in compiled:
            module._compiled_call_impl = impl


def compiled_graphs() -> int:
    """Graphs ``torch.compile`` has captured in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters['stats'].get('unique_graphs', 0))


def module_flops(counter: Any, name: str) -> int:
    """FLOPs counted inside the module called ``name`` (0 if never run)."""
    return int(sum(counter.get_flop_counts().get(name, {}).values()))


def _run_loss(model: Any, data: Any) -> Any:
    """``model(..., mode='loss')`` on preprocessed data."""
    if isinstance(data, dict):
        return model(**data, mode='loss')
    return model(*data, mode='loss')


# ----------------------------------------------------------------------
# building
@contextmanager
def quiet_logger() -> Iterator[None]:
    """Silence mmengine's logger below ERROR (the random-tokenizer warning
    and the per-parameter optimizer messages are expected here)."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('ERROR')
    try:
        yield
    finally:
        logger.setLevel(level)


def build_model(cfg: Any, device: Any, seed: int) -> Any:
    """Build and initialise the model of ``cfg`` on ``device``."""
    import torch

    from bevt.registry import MODELS

    torch.manual_seed(seed)
    with quiet_logger():
        model = MODELS.build(cfg.model)
        model.init_weights()
    return model.to(device).train()


def build_optimizer(model: Any, cfg: Any, amp: Optional[str],
                    device: Any) -> Tuple[Any, str]:
    """The config's optim wrapper, or a fallback that works on ``device``.

    Args:
        model (nn.Module): The model.
        cfg (Config): The config (``optim_wrapper`` is read).
        amp (str, optional): ``--amp``.
        device (torch.device): The device.

    Returns:
        tuple: (the optim wrapper, a one-line description).
    """
    import torch
    from mmengine.optim import OptimWrapper, build_optim_wrapper

    wrapper_cfg = copy.deepcopy(cfg.get('optim_wrapper') or {})
    wrapper_cfg = dict(wrapper_cfg)
    counts = wrapper_cfg.pop('accumulative_counts', 1)
    note = f' (config accumulative_counts={counts} -> 1)' if counts != 1 \
        else ''
    dtype = {'bf16': 'bfloat16', 'fp16': 'float16'}.get(amp)
    if amp == 'none':
        wrapper_cfg['type'] = 'OptimWrapper'
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            wrapper_cfg.pop(key, None)
    elif dtype is not None:
        wrapper_cfg['type'] = 'AmpOptimWrapper'
        wrapper_cfg['dtype'] = dtype
    if 'optimizer' in wrapper_cfg:
        try:
            wrapper = build_optim_wrapper(model, wrapper_cfg)
            desc = (f'{type(wrapper).__name__}('
                    f'{type(wrapper.optimizer).__name__}, '
                    f'{len(wrapper.optimizer.param_groups)} param groups')
            cast = getattr(wrapper, 'cast_dtype', None)
            if type(wrapper).__name__ == 'AmpOptimWrapper':
                desc += f', {cast or "float16"} autocast'
            return wrapper, desc + ') from the config' + note
        except (AssertionError, RuntimeError, ValueError, TypeError,
                KeyError) as err:
            reason = str(err).strip().splitlines()[0] if str(err) else \
                type(err).__name__
            kind = wrapper_cfg.get('type', 'OptimWrapper')
            fallback = (f'the config\'s {kind} cannot be built on '
                        f'{device.type} ({reason})')
    else:
        fallback = 'the config has no optim_wrapper.optimizer'
    plain = dict(
        type='OptimWrapper',
        constructor=wrapper_cfg.get('constructor'),
        optimizer=wrapper_cfg.get('optimizer'),
        paramwise_cfg=wrapper_cfg.get('paramwise_cfg'),
        clip_grad=wrapper_cfg.get('clip_grad'))
    try:
        wrapper = build_optim_wrapper(model, {
            k: v
            for k, v in plain.items() if v is not None
        })
        desc = (f'plain OptimWrapper({type(wrapper.optimizer).__name__}, '
                f'{len(wrapper.optimizer.param_groups)} param groups, the '
                'config\'s optimizer, no AmpOptimWrapper)')
    except Exception:  # noqa: BLE001  (any config problem: plain AdamW)
        wrapper = OptimWrapper(
            torch.optim.AdamW(
                [p for p in model.parameters() if p.requires_grad], lr=1e-4))
        desc = 'plain AdamW(lr=1e-4)'
    if dtype is not None:
        wrapper = _with_autocast(wrapper, device, getattr(torch, dtype))
        desc += f' under torch.autocast({device.type}, {dtype}), no loss ' \
            'scaling'
    else:
        desc += ' in float32'
    return wrapper, f'{desc}: {fallback}{note}'


def _with_autocast(wrapper: Any, device: Any, dtype: Any) -> Any:
    """Make ``wrapper.optim_context`` also enter ``torch.autocast``."""
    import torch

    context = wrapper.optim_context

    @contextmanager
    def optim_context(model):
        with context(model), torch.autocast(device.type, dtype=dtype):
            yield

    wrapper.optim_context = optim_context
    return wrapper


# ----------------------------------------------------------------------
# one variant of the model
class Variant:
    """A model, its optimizer, timers and measurements.

    Args:
        name (str): Column title.
        cfg (Config): Its config.
        settings (list[str]): What distinguishes it, for the report.
        device (torch.device): The device.
        amp (str, optional): ``--amp``.
        seed (int): Seed of the weights.
    """

    def __init__(self, name: str, cfg: Any, settings: List[str], device: Any,
                 amp: Optional[str], seed: int) -> None:
        self.name = name
        self.cfg = cfg
        self.settings = settings
        self.device = device
        self.model = build_model(cfg, device, seed)
        with quiet_logger():
            self.optim, self.optim_desc = build_optimizer(
                self.model, cfg, amp, device)
        sync = synchronizer(device)
        self.sync = sync
        # frames and pixels the tokenizer encodes (registered before its
        # timer, so it is not timed)
        self.tokenized = dict(frames=0, pixels=0)
        self.model.target_generator.register_forward_pre_hook(
            self._count_tokenized, with_kwargs=True)
        self.tokenizer_timer = SectionTimer(self.model.target_generator, sync)
        fc = getattr(self.model.head, 'fc', None)
        self.vocab_timer = SectionTimer(fc, sync, True) if fc is not None \
            else None
        self.memory = MemoryMeter(device)
        self.times: List[float] = []
        self.tokenizer_times: List[float] = []
        self.tokenized_frames: List[int] = []
        self.tokenized_pixels: List[int] = []
        self.vocab_times: List[float] = []
        self.peak = 0.
        self.flops: Dict[str, float] = {}
        self.losses: List[float] = []

    def _count_tokenized(self, module: Any, args: tuple, kwargs: dict) -> None:
        """Forward pre-hook of the tokenizer: count what it will encode."""
        x = args[0]  # (N, 3, [T, ] h, w)
        frame_mask = kwargs.get('frame_mask',
                                args[1] if len(args) > 1 else None)
        cell_mask = kwargs.get('cell_mask', args[2] if len(args) > 2 else None)
        keep = module.needed_frames(frame_mask, cell_mask)
        if keep is not None:
            frames = int(keep.sum())
        else:
            frames = x.shape[0] * (x.shape[2] if x.dim() == 5 else 1)
        self.tokenized['frames'] += frames
        self.tokenized['pixels'] += frames * x.shape[-2] * x.shape[-1]

    def share_weights_of(self, other: 'Variant') -> str:
        """Copy ``other``'s weights (tokenizer included) into this model.

        Returns:
            str: A note on what could not be shared ('' if all was).
        """
        import torch

        state = other.model.state_dict()
        try:
            self.model.load_state_dict(state, strict=True)
            note = ''
        except RuntimeError:
            own = self.model.state_dict()
            same = {
                k: v
                for k, v in state.items()
                if k in own and own[k].shape == v.shape
            }
            self.model.load_state_dict(same, strict=False)
            note = (f'{len(own) - len(same)} of {len(own)} entries of '
                    f'{self.name} could not take {other.name}\'s values')
        src = getattr(other.model.target_generator, 'encoder', None)
        dst = getattr(self.model.target_generator, 'encoder', None)
        if isinstance(src, torch.nn.Module) and isinstance(
                dst, torch.nn.Module):
            dst.load_state_dict(src.state_dict())
        return note

    def count_flops(self, step: Any) -> None:
        """Forward FLOPs of one step: the rest of the model, and the
        tokenizer's FLOPs per encoded pixel (its FLOPs per step then follow
        from the frames it actually encodes in the timed steps)."""
        import torch

        self._timers(False)
        self.tokenized.update(frames=0, pixels=0)
        root = type(self.model).__name__
        with torch.no_grad():
            data = self.model.data_preprocessor(step, True)
            with eager_modules(self.model), flop_counter() as counter:
                _run_loss(self.model, data)
        self._timers(True)
        total = counter.get_total_flops()
        tokenizer = module_flops(counter, f'{root}.target_generator')
        pixels = self.tokenized['pixels']
        self.flops = dict(
            tokenizer_per_pixel=tokenizer / pixels if pixels else 0.,
            fwd_rest=(total - tokenizer) / 1e9,
            fwd_vocab=module_flops(counter, f'{root}.head.fc') / 1e9)

    def _timers(self, enabled: bool) -> None:
        for timer in (self.tokenizer_timer, self.vocab_timer):
            if timer is not None:
                timer.enabled = enabled

    def step(self, data: Any, record: bool) -> None:
        """One timed train step (recorded unless ``record`` is False)."""
        for timer in (self.tokenizer_timer, self.vocab_timer):
            if timer is not None:
                timer.total = 0.
        self.tokenized.update(frames=0, pixels=0)
        self.sync()
        start = time.perf_counter()
        log = self.model.train_step(data, self.optim)
        self.sync()
        elapsed = time.perf_counter() - start
        loss = float(log['loss'])
        if not math.isfinite(loss):
            print(
                f'warning: {self.name}: non-finite loss {loss}',
                file=sys.stderr)
        if record:
            self.times.append(elapsed)
            self.tokenizer_times.append(self.tokenizer_timer.total)
            self.tokenized_frames.append(self.tokenized['frames'])
            self.tokenized_pixels.append(self.tokenized['pixels'])
            self.vocab_times.append(
                self.vocab_timer.total if self.vocab_timer else 0.)
            self.losses.append(loss)

    def measure_memory(self, data: Any) -> None:
        """Peak memory of one more (untimed) train step on ``data``."""
        self.peak = self.memory.measure(
            lambda: self.model.train_step(data, self.optim))

    def summary(self, counts: Dict[str, int],
                peak_tflops: Optional[float]) -> Dict[str, Any]:
        """The measured numbers of this variant."""
        median = statistics.median(self.times)
        total = sum(self.times)
        tokenizer = self.flops['tokenizer_per_pixel'] * statistics.mean(
            self.tokenized_pixels) / 1e9
        step = 3 * self.flops['fwd_rest'] + tokenizer
        out = dict(
            name=self.name,
            settings=self.settings,
            optimizer=self.optim_desc,
            s_per_iter_median=median,
            s_per_iter_min=min(self.times),
            clips_per_s=counts.get('video', 0) / median,
            images_per_s=counts.get('img', 0) / median,
            tokenizer_s_per_iter=statistics.median(self.tokenizer_times),
            tokenizer_share=sum(self.tokenizer_times) / total,
            vocab_s_per_iter=statistics.median(self.vocab_times),
            vocab_share=sum(self.vocab_times) / total,
            peak_memory_mib=self.peak / MIB,
            peak_memory_absolute_mib=self.memory.absolute / MIB,
            tokenizer_frames_per_iter=statistics.mean(self.tokenized_frames),
            fwd_gflops_tokenizer=tokenizer,
            fwd_gflops_rest=self.flops['fwd_rest'],
            fwd_gflops_vocab=self.flops['fwd_vocab'],
            step_gflops=step,
            achieved_tflops=step / median / 1e3,
            times=self.times,
            losses=self.losses)
        if peak_tflops:
            out['mfu'] = out['achieved_tflops'] / peak_tflops
        return out


def profile_steps(variants: List[Any], data: Any, path: str) -> None:
    """Profile one train step of each variant (after one untimed step) and
    write torch.profiler's operator tables to ``path``."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = variants[0].device.type == 'cuda'
    activities = [ProfilerActivity.CPU
                  ] + ([ProfilerActivity.CUDA] if cuda else [])
    sorts = (['self_cuda_time_total'] if cuda else []) + \
        ['self_cpu_time_total']
    lines = []
    for variant in variants:
        variant.step(data, False)
        with profile(activities=activities) as prof:
            variant.step(data, False)
            if cuda:
                torch.cuda.synchronize()
        table = prof.key_averages()
        for sort in sorts:
            lines += [
                f'== {variant.name}: operators by {sort}',
                table.table(sort_by=sort, row_limit=40), ''
            ]
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, 'w') as file:
        file.write('\n'.join(lines))
    print(f'profile written to {path}')


def run_interleaved(variants: List[Any], steps: List[Any], iters: int,
                    warmup: int, step_fn: Callable[[Any, Any, bool],
                                                   None]) -> None:
    """Run ``warmup + iters`` iterations of every variant, alternating the
    order (A B, B A, ...) so that neither always runs first."""
    for i in range(warmup + iters):
        order = variants if i % 2 == 0 else variants[::-1]
        for variant in order:
            step_fn(variant, steps[i % len(steps)], i >= warmup)


# ----------------------------------------------------------------------
# report
def _fmt(value: Optional[float], spec: str = '.3f') -> str:
    return '-' if value is None else format(value, spec)


def table(rows: List[Tuple[str, List[str]]], titles: List[str]) -> str:
    """A plain text table: a label column and one column per variant."""
    width = max(len(label) for label, _ in rows + [('', [])]) + 2
    cols = [
        max([len(t)] + [len(r[1][i]) for r in rows]) + 2
        for i, t in enumerate(titles)
    ]
    lines = [' ' * width + ''.join(t.rjust(c) for t, c in zip(titles, cols))]
    for label, values in rows:
        lines.append(
            label.ljust(width) +
            ''.join(v.rjust(c) for v, c in zip(values, cols)))
    return '\n'.join(lines)


def step_report(results: List[Dict[str, Any]],
                peak_tflops: Optional[float]) -> str:
    """The table of a step benchmark."""

    def row(label, key, spec='.3f', scale=1.):
        return label, [_fmt(r.get(key, 0.) * scale, spec) for r in results]

    rows = [
        row('s/iter (median)', 's_per_iter_median', '.4f'),
        row('s/iter (min)', 's_per_iter_min', '.4f'),
        row('clips/s', 'clips_per_s', '.3f'),
        row('images/s', 'images_per_s', '.3f'),
        row('tokenizer s/iter', 'tokenizer_s_per_iter', '.4f'),
        row('tokenizer share %', 'tokenizer_share', '.1f', 100.),
        row('tokenizer frames/iter', 'tokenizer_frames_per_iter', '.1f'),
        row('vocab projection s/iter', 'vocab_s_per_iter', '.4f'),
        row('vocab projection share %', 'vocab_share', '.1f', 100.),
        row('peak memory MiB', 'peak_memory_mib', '.1f'),
        row('fwd GFLOPs tokenizer', 'fwd_gflops_tokenizer', '.2f'),
        row('fwd GFLOPs rest', 'fwd_gflops_rest', '.2f'),
        row('step GFLOPs', 'step_gflops', '.2f'),
        row('achieved TFLOP/s', 'achieved_tflops', '.4f'),
    ]
    if peak_tflops:
        rows.append(row('MFU %', 'mfu', '.2f', 100.))
    return table(rows, [r['name'] for r in results])


def ratio_lines(results: List[Dict[str, Any]]) -> Tuple[str, Dict]:
    """The speed-up and memory lines of A against B."""
    a, b = results

    def ratio(key):
        return b[key] / a[key] if a[key] > 0 else float('inf')

    ratios = dict(
        step_speedup=ratio('s_per_iter_median'),
        tokenizer_speedup=ratio('tokenizer_s_per_iter'),
        vocab_speedup=ratio('vocab_s_per_iter'),
        memory_ratio=(a['peak_memory_mib'] / b['peak_memory_mib']
                      if b['peak_memory_mib'] > 0 else float('nan')))
    text = (f'speed-up of {a["name"]} over {b["name"]} ({b["name"]} time / '
            f'{a["name"]} time): step {ratios["step_speedup"]:.2f}x, '
            f'tokenizer {ratios["tokenizer_speedup"]:.2f}x, vocab projection '
            f'{ratios["vocab_speedup"]:.2f}x\n'
            f'memory ratio {a["name"]}/{b["name"]} (peak above start): '
            f'{ratios["memory_ratio"]:.2f}')
    return text, ratios


def noise_warning(results: List[Dict[str, Any]]) -> str:
    """A warning when iteration times spread widely ('' otherwise)."""
    spread = max(max(r['times']) / min(r['times']) for r in results)
    if spread < 1.5:
        return ''
    return (f'warning: iteration times vary up to {spread:.1f}x (a busy '
            'machine?): prefer the min row, or more --iters')


def write_json(path: str, payload: Dict[str, Any]) -> None:
    """Write ``payload`` as JSON, creating the folder."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, 'w') as file:
        json.dump(payload, file, indent=2, default=str)
    print(f'numbers written to {path}')


# ----------------------------------------------------------------------
# backbone only
def backbone_benchmark(cfg: Any, args: argparse.Namespace, device: Any,
                       specs: Dict[str, StreamSpec]) -> Dict[str, Any]:
    """Time our backbone's video encoder against mmaction2's Swin3D."""
    import torch
    from mmaction.models.backbones.swin import SwinTransformer3D

    from bevt.registry import MODELS

    if 'video' not in specs:
        raise ValueError('--backbone-only needs a video pipeline in the '
                         'config')
    spec = specs['video']
    num = spec.batch_size if args.videos is None else args.videos
    if num < 1:
        raise ValueError('--backbone-only needs --videos >= 1')
    torch.manual_seed(args.seed)
    with quiet_logger():
        ours = MODELS.build(cfg.model.backbone)
        ours.init_weights()
    ours = ours.to(device).train()
    keys = ('arch', 'patch_size', 'in_channels', 'window_size', 'mlp_ratio',
            'qkv_bias', 'qk_scale', 'drop_rate', 'attn_drop_rate',
            'drop_path_rate', 'act_cfg', 'norm_cfg', 'patch_norm', 'with_cp')
    kwargs = {k: v for k, v in cfg.model.backbone.items() if k in keys}
    kwargs = copy.deepcopy(dict(kwargs))
    if isinstance(kwargs.get('arch'), dict):
        kwargs['arch'] = dict(kwargs['arch'])
    depth = len(ours.layers)
    theirs = SwinTransformer3D(
        pretrained=None,
        pretrained2d=False,
        out_indices=(depth - 1, ),
        init_cfg=None,
        **kwargs)
    result = theirs.load_state_dict(ours.state_dict(), strict=False)
    if result.missing_keys:
        raise RuntimeError('mmaction2 SwinTransformer3D did not get every '
                           f'weight of ours: {result.missing_keys[:5]}')
    theirs.to(device)
    theirs.train()  # mmaction2's train() returns None
    norm = getattr(ours, ours.final_norm_name)

    def ours_forward(x):
        patches = ours.patch_embed(x).permute(0, 2, 3, 4, 1)
        return norm(ours._encode(patches, image=False)[1])  # (N,D,H,W,C)

    def theirs_forward(x):
        return theirs(x).permute(0, 2, 3, 4, 1)  # (N, D, H, W, C)

    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(
        (num, 3, spec.clip_len) + spec.crop, generator=gen).to(device)
    with torch.no_grad():
        ours.eval()
        theirs.eval()
        diff = (ours_forward(x) - theirs_forward(x)).abs().max().item()
        ours.train()
        theirs.train()
    sync = synchronizer(device)

    class Runner:
        """One backbone variant."""

        def __init__(self, name, module, fn, gflops=None):
            self.name, self.module, self.fn = name, module, fn
            self.times, self.peak = [], 0.
            self.memory = MemoryMeter(device)
            if gflops is None:
                with torch.no_grad(), flop_counter() as counter:
                    fn(x)
                gflops = counter.get_total_flops() / 1e9
            self.gflops = gflops

    cast = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(args.amp)

    def train_step(runner):
        runner.module.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=cast, enabled=cast is not None):
            feature = runner.fn(x)
        feature.float().sum().backward()

    def step(runner, _, record):
        sync()
        start = time.perf_counter()
        train_step(runner)
        sync()
        if record:
            runner.times.append(time.perf_counter() - start)

    runners = [
        Runner('bevt', ours, ours_forward),
        Runner('mmaction2', theirs, theirs_forward)
    ]
    if args.compile:  # same module and weights; compiled in the warm-up
        runners.append(
            Runner('bevt compiled', ours,
                   torch.compile(ours_forward, dynamic=False),
                   runners[0].gflops))
    print(f'input: {num} clip(s) 3x{spec.clip_len}x{spec.crop[0]}x'
          f'{spec.crop[1]}; our encoder (stages 1-{depth} + '
          f'{ours.final_norm_name}, fused_attention='
          f'{ours.fused_attention}) vs mmaction2 SwinTransformer3D '
          f'(out_indices=({depth - 1},)), same weights '
          f'({len(result.unexpected_keys)} BEVT-only entries not loaded)')
    print(f'eval-mode outputs agree: max |diff| = {diff:.3g}')
    print('precision: ' + (f'torch.autocast({device.type}, {cast})'
                           if cast is not None else 'float32 (--amp bf16 or '
                           'fp16 to autocast)'))
    print(f'memory: {runners[0].memory.method}')
    print(f'timing: {args.iters} iterations after {args.warmup} warm-up, '
          'forward + backward of the feature sum, interleaved\n')
    run_interleaved(runners, [None], args.iters, args.warmup, step)
    for runner in runners:
        runner.peak = runner.memory.measure(lambda: train_step(runner))
    results = []
    for r in runners:
        median = statistics.median(r.times)
        results.append(
            dict(
                name=r.name,
                s_per_iter_median=median,
                s_per_iter_min=min(r.times),
                clips_per_s=num / median,
                peak_memory_mib=r.peak / MIB,
                fwd_gflops=r.gflops,
                times=r.times))
    rows = [
        ('s/iter (median)',
         [_fmt(r['s_per_iter_median'], '.4f') for r in results]),
        ('s/iter (min)', [_fmt(r['s_per_iter_min'], '.4f') for r in results]),
        ('clips/s', [_fmt(r['clips_per_s'], '.3f') for r in results]),
        ('peak memory MiB',
         [_fmt(r['peak_memory_mib'], '.1f') for r in results]),
        ('fwd GFLOPs', [_fmt(r['fwd_gflops'], '.2f') for r in results]),
    ]
    print(table(rows, [r['name'] for r in results]))
    if noise_warning(results):
        print(noise_warning(results))
    ratios = {}
    base = results[1]
    for r in results[:1] + results[2:]:
        key = r['name'].replace(' ', '_')
        speedup = base['s_per_iter_median'] / r['s_per_iter_median']
        memory = r['peak_memory_mib'] / base['peak_memory_mib'] \
            if base['peak_memory_mib'] > 0 else float('nan')
        print(f'\nspeed-up of {r["name"]} over mmaction2 (mmaction2 time / '
              f'{r["name"]} time): {speedup:.2f}x\nmemory ratio '
              f'{r["name"]}/mmaction2: {memory:.2f}')
        suffix = '' if key == 'bevt' else f'_{key}'
        ratios.update({
            f'step_speedup{suffix}': speedup,
            f'memory_ratio{suffix}': memory
        })
    return dict(
        mode='backbone-only',
        max_abs_diff=diff,
        variants=results,
        ratios=ratios)


# ----------------------------------------------------------------------
def load_config(args: argparse.Namespace) -> Tuple[Any, List[str]]:
    """The config with the size overrides and random-init settings."""
    from mmengine.config import Config

    import bevt.registry  # noqa: F401  (makes `bevt::` resolve)

    if not os.path.isfile(args.config):
        raise FileNotFoundError(f'Config not found: {args.config}')
    cfg = Config.fromfile(args.config)
    if not isinstance(cfg.get('model'), dict) or 'backbone' not in cfg.model:
        raise ValueError(f'{args.config} has no model with a backbone')
    notes = apply_size_overrides(cfg, args)
    make_random_init(cfg)
    return cfg, notes


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        int: The exit status.
    """
    args = parse_args(argv)
    try:
        return _main(args)
    except (ValueError, FileNotFoundError, KeyError, TypeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    """:func:`main` after parsing."""
    import torch
    from mmengine.registry import init_default_scope

    import bevt.models  # noqa: F401  (registers the parts)

    device_name = args.device or ('cuda'
                                  if torch.cuda.is_available() else 'cpu')
    if device_name == 'cuda' and not torch.cuda.is_available():
        raise ValueError('--device cuda, but CUDA is not available')
    device = torch.device(device_name)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cfg, notes = load_config(args)
    init_default_scope(cfg.get('default_scope', 'bevt'))
    settings_a = apply_official(cfg) if args.official else []
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
        settings_a += [f'{k}={v}' for k, v in args.cfg_options.items()]
    specs = stream_specs(cfg)
    info = [
        f'config: {args.config}',
        f'device: {device_name} ({torch.get_num_threads()} threads), torch '
        f'{torch.__version__}'
    ]
    if notes:
        info.append('size overrides: ' + ', '.join(notes))
    if args.backbone_only:
        print('\n'.join(['== backbone train step =='] + info))
        payload = backbone_benchmark(cfg, args, device, specs)
        payload.update(config=args.config, device=device_name)
        if args.json:
            write_json(args.json, payload)
        return 0

    counts = {}
    for stream, flag in (('video', args.videos), ('img', args.images)):
        if stream in specs:
            counts[stream] = specs[stream].batch_size if flag is None \
                else flag
        elif flag:
            raise ValueError(
                f'--{"videos" if stream == "video" else "images"} {flag}, '
                f'but the config has no {stream} pipeline (looked in '
                'train_dataloader and train_cfg.other_loaders)')
    if not any(counts.values()):
        raise ValueError('nothing to run: --videos and --images are both 0 '
                         'or the config has no BEVT mask pipelines')

    name_a = 'official' if args.official else 'default'
    variants = [Variant(name_a, cfg, settings_a, device, args.amp, args.seed)]
    share_note = ''
    if args.compare:
        official, options = args.compare_official, args.compare_options
        cfg_b = copy.deepcopy(cfg)
        settings_b = apply_official(cfg_b) if official else []
        if options:
            cfg_b.merge_from_dict(options)
            settings_b += [f'{k}={v}' for k, v in options.items()]
        if stream_specs(cfg_b) != specs:
            raise ValueError('--compare must not change the data shapes')
        name_b = 'official' if official and not options else 'compare'
        if name_b == name_a:
            name_b += '-B'
        variants.append(
            Variant(name_b, cfg_b, settings_b, device, args.amp, args.seed))
        share_note = variants[1].share_weights_of(variants[0])

    steps = make_batches(specs, counts, min(args.warmup + args.iters, 4),
                         args.seed)
    for variant in variants:
        variant.count_flops(steps[0])
    info += [
        'batch: ' + '; '.join(specs[s].describe(n)
                              for s, n in counts.items() if n) +
        f' (uint8 noise, {len(steps)} distinct '
        'batches in turn)',
        'weights: random init; tokenizer '
        f'{type(variants[0].model.target_generator).__name__} at random '
        'init (init_cfg=None, no weights downloaded; its cost does not '
        'depend on its values)',
        f'timing: median/min of {args.iters} iterations after '
        f'{args.warmup} warm-up' +
        (', variants interleaved (A B, B A, ...)' if args.compare else ''),
        'tokenizer: forward calls of model.target_generator; vocab '
        'projection: forward + backward of model.head.fc',
        f'memory: {variants[0].memory.method}',
        'FLOPs: torch.utils.flop_counter on one forward, a multiply-add = '
        '2 FLOPs; the tokenizer\'s scaled to the frames it encodes per '
        'timed step (mean); step = 3 x forward without tokenizer + '
        'tokenizer forward',
    ]
    for variant in variants:
        info.append(f'optimizer ({variant.name}): {variant.optim_desc}')
    for variant in variants:
        if variant.settings:
            info.append(f'{variant.name}: ' + ', '.join(variant.settings))
    if share_note:
        info.append(f'warning: {share_note}')
    print('\n'.join(['== BEVT pretraining step =='] + info) + '\n')
    sys.stdout.flush()

    run_interleaved(variants, steps, args.iters, args.warmup,
                    lambda v, data, record: v.step(data, record))
    for variant in variants:
        variant.measure_memory(steps[0])
    results = [v.summary(counts, args.peak_tflops) for v in variants]
    if args.profile:
        profile_steps(variants, steps[0], args.profile)
    print(step_report(results, args.peak_tflops))
    if any(getattr(v.model, 'compile_backbone', False) for v in variants):
        graphs = compiled_graphs()
        print(f'torch.compile: {graphs} graph(s) captured' +
              (' - none: the compiled backbone ran eagerly'
               if not graphs else ''))
    if noise_warning(results):
        print(noise_warning(results))
    payload = dict(
        mode='step',
        config=args.config,
        device=device_name,
        counts=counts,
        shapes={s: vars(specs[s])
                for s in counts},
        memory_method=variants[0].memory.method,
        variants=results)
    if len(results) == 2:
        text, payload['ratios'] = ratio_lines(results)
        print('\n' + text)
    if args.json:
        write_json(args.json, payload)
    return 0


if __name__ == '__main__':
    sys.exit(main())
