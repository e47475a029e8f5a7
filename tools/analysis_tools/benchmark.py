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
3 x (trainable forward) + tokenizer forward, and the ATen operators of one
step that do work (no views; about one kernel launch each on CUDA, the
overhead that bounds a small-batch GPU step; not for a compiled backbone)
with the host syncs among them (reads of device values or output sizes).

``--compare`` builds a second variant in the same process with the same
weights and batches, runs both interleaved and prints the ratios;
``--backbone-only`` compares the Video Swin train step of our backbone with
mmaction2's ``SwinTransformer3D`` (``--compile``: also under
``torch.compile``); ``--compare model.compile_backbone=True`` times the full
step with the compiled backbone; ``--fake-cuda`` counts (does not time) the
backbone's forward and backward under CUDA's autocast on fake CUDA tensors,
without a GPU.

This file is the command line and the step runs; the config edits and
synthetic batches, the measurement primitives, the report and the
backbone-only run are in :mod:`bevt.utils.benchmarking`.

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
import math
import statistics
import sys
import time
from contextlib import contextmanager
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bevt.utils.benchmarking.backbone import backbone_benchmark
from bevt.utils.benchmarking.batches import make_batches, stream_counts
from bevt.utils.benchmarking.fake_cuda import fake_cuda_benchmark
from bevt.utils.benchmarking.measure import (MIB, SectionTimer,
                                             compiled_graphs, eager_modules,
                                             flop_counter,
                                             has_compiled_modules,
                                             module_flops, profile_steps,
                                             quiet_logger, run_interleaved,
                                             synchronizer)
from bevt.utils.benchmarking.memory import (KernelUsage, MemoryMeter,
                                            kernel_usage, records_cuda_graphs)
from bevt.utils.benchmarking.op_count import count_ops
from bevt.utils.benchmarking.report import (noise_warning, ratio_lines,
                                            step_report, write_json)
from bevt.utils.benchmarking.specs import (OFFICIAL_CONSTRUCTOR,
                                           OFFICIAL_SETTINGS, apply_official,
                                           apply_size_overrides,
                                           make_random_init, parse_arch,
                                           stream_specs)


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
        f', one param group per parameter ({OFFICIAL_CONSTRUCTOR[1]}), '
        'AdamW not fused')
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
        '--fake-cuda',
        action='store_true',
        help='count, not time, one forward and backward of the backbone on '
        '--videos clips and --images images under CUDA\'s autocast (--amp, '
        'default bf16) on fake CUDA tensors: their operators and casts, and '
        'the bytes the forward keeps for the backward, as on a GPU; needs no '
        'GPU')
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
    if args.fake_cuda:
        clash = [
            name for name in ('backbone_only', 'compare', 'profile', 'compile')
            if getattr(args, name)
        ]
        if clash:
            parser.error('--fake-cuda counts the backbone alone; not '
                         'with --' + clash[0].replace('_', '-'))
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
# running
def _run_loss(model: Any, data: Any) -> Any:
    """``model(..., mode='loss')`` on preprocessed data."""
    if isinstance(data, dict):
        return model(**data, mode='loss')
    return model(*data, mode='loss')


# ----------------------------------------------------------------------
# building
def build_model(cfg: Any, device: Any, seed: int) -> Any:
    """Build and initialise the model of ``cfg`` on ``device``."""
    import torch

    from bevt.registry import MODELS

    torch.manual_seed(seed)
    with quiet_logger():
        model = MODELS.build(cfg.model)
        model.init_weights()
    return model.to(device).train()


def optimizer_name(optimizer: Any) -> str:
    """E.g. 'AdamW' or 'AdamW fused'."""
    fused = getattr(optimizer, 'defaults', {}).get('fused')
    return type(optimizer).__name__ + (' fused' if fused else '')


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
                    f'{optimizer_name(wrapper.optimizer)}, '
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
        desc = (f'plain OptimWrapper({optimizer_name(wrapper.optimizer)}, '
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
        self.tokenized: List[Tuple[Any, int]] = []  # (frames, pixels each)
        self.model.target_generator.register_forward_pre_hook(
            self._count_tokenized, with_kwargs=True)
        self.tokenizer_timer = SectionTimer(self.model.target_generator,
                                            device)
        fc = getattr(self.model.head, 'fc', None)
        self.vocab_timer = SectionTimer(fc, device, True) if fc is not None \
            else None
        self.memory = MemoryMeter(device)
        self.times: List[float] = []
        self.tokenizer_times: List[float] = []
        self.tokenized_frames: List[int] = []
        self.tokenized_pixels: List[int] = []
        self.vocab_times: List[float] = []
        self.peak = 0.
        self.flops: Dict[str, float] = {}
        self.ops: Optional[Dict[str, int]] = None
        self.losses: List[float] = []
        self.kernel = KernelUsage()  # page faults, system time per step

    def _count_tokenized(self, module: Any, args: tuple, kwargs: dict) -> None:
        """Forward pre-hook of the tokenizer: note what it will encode (a
        frame count on the device is read after the step, so that the hook
        adds no host sync inside it)."""
        x = args[0]  # (N, 3, [T, ] h, w)
        frame_mask = kwargs.get('frame_mask',
                                args[1] if len(args) > 1 else None)
        cell_mask = kwargs.get('cell_mask', args[2] if len(args) > 2 else None)
        keep = module.needed_frames(frame_mask, cell_mask)
        if keep is not None:
            frames = keep.sum()
        else:
            frames = x.shape[0] * (x.shape[2] if x.dim() == 5 else 1)
        self.tokenized.append((frames, x.shape[-2] * x.shape[-1]))

    def tokenized_totals(self) -> Tuple[int, int]:
        """(frames, pixels) the tokenizer encoded since the last reset."""
        frames = [int(n) for n, _ in self.tokenized]
        pixels = sum(n * p for n, (_, p) in zip(frames, self.tokenized))
        return sum(frames), pixels

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
        self.tokenized.clear()
        root = type(self.model).__name__
        with torch.no_grad():
            data = self.model.data_preprocessor(step, True)
            with eager_modules(self.model), flop_counter() as counter:
                _run_loss(self.model, data)
        self._timers(True)
        total = counter.get_total_flops()
        tokenizer = module_flops(counter, f'{root}.target_generator')
        pixels = self.tokenized_totals()[1]
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
                timer.reset()
        self.tokenized.clear()
        self.sync()
        before = kernel_usage()
        start = time.perf_counter()
        log = self.model.train_step(data, self.optim)
        self.sync()
        elapsed = time.perf_counter() - start
        # mmengine's log_vars keep the graph: detach before reading
        loss = float(log['loss'].detach())
        if not math.isfinite(loss):
            print(
                f'warning: {self.name}: non-finite loss {loss}',
                file=sys.stderr)
        if record:
            self.times.append(elapsed)
            self.tokenizer_times.append(self.tokenizer_timer.total)
            frames, pixels = self.tokenized_totals()
            self.tokenized_frames.append(frames)
            self.tokenized_pixels.append(pixels)
            self.vocab_times.append(
                self.vocab_timer.total if self.vocab_timer else 0.)
            self.losses.append(loss)
            self.kernel.record(before)

    def measure_memory(self, data: Any) -> None:
        """Peak memory of one more (untimed) train step on ``data``; None
        under CUDA graphs, whose replays the allocator does not see
        (:func:`records_cuda_graphs`)."""
        if self.graphed:
            self.peak = None
            return
        self.peak = self.memory.measure(
            lambda: self.model.train_step(data, self.optim),
            exact=not has_compiled_modules(self.model))

    @property
    def graphed(self) -> bool:
        """Whether the backbone replays CUDA graphs."""
        return self.memory.device.type == 'cuda' and records_cuda_graphs(
            getattr(self.model, 'compile_backbone', False))

    def measure_ops(self, data: Any) -> None:
        """ATen operators of one more (untimed) train step on ``data``
        (:func:`count_ops`); none with a compiled module, whose kernels are
        generated."""
        if not has_compiled_modules(self.model):
            self.ops = count_ops(
                lambda: self.model.train_step(data, self.optim),
                self.optim.optimizer)

    def _ops_sum(self, prefix: str) -> Optional[int]:
        """Operators counted under ``prefix`` ('' = forward + backward)."""
        if self.ops is None:
            return None
        sections = ('optimizer.', 'host_sync.')
        return sum(n for k, n in self.ops.items() if (
            k.startswith(prefix) if prefix else not k.startswith(sections)))

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
            peak_memory_mib=None if self.peak is None else self.peak / MIB,
            peak_memory_absolute_mib=self.memory.absolute / MIB,
            tokenizer_frames_per_iter=statistics.mean(self.tokenized_frames),
            fwd_gflops_tokenizer=tokenizer,
            fwd_gflops_rest=self.flops['fwd_rest'],
            fwd_gflops_vocab=self.flops['fwd_vocab'],
            step_gflops=step,
            achieved_tflops=step / median / 1e3,
            aten_ops=self._ops_sum(''),
            aten_ops_optimizer=self._ops_sum('optimizer.'),
            host_syncs=self._ops_sum('host_sync.'),
            **self.kernel.summary(),
            aten_ops_by_name=self.ops,
            times=self.times,
            losses=self.losses)
        if peak_tflops:
            out['mfu'] = out['achieved_tflops'] / peak_tflops
        return out


# ----------------------------------------------------------------------
def load_config(args: argparse.Namespace) -> Tuple[Any, List[str]]:
    """The config with the size overrides and random-init settings."""
    from bevt.utils import load_config as load_config_file

    cfg = load_config_file(args.config)
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
    if args.fake_cuda:
        print('\n'.join(['== backbone forward on fake CUDA tensors =='] +
                        info +
                        (['settings: ' +
                          ', '.join(settings_a)] if settings_a else [])))
        payload = fake_cuda_benchmark(cfg, args, specs)
        payload.update(config=args.config, settings=settings_a)
        if args.json:
            write_json(args.json, payload)
        return 0
    if args.backbone_only:
        print('\n'.join(['== backbone train step =='] + info))
        payload = backbone_benchmark(cfg, args, device, specs)
        payload.update(config=args.config, device=device_name)
        if args.json:
            write_json(args.json, payload)
        return 0

    counts = stream_counts(specs, args.videos, args.images)

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

    # the timed iterations take the batches in turn from the first
    # (run_interleaved): how many and which depends on --iters only
    steps = make_batches(specs, counts, min(args.iters, 4), args.seed)
    extra_turns = args.iters % len(steps)
    for variant in variants:
        variant.count_flops(steps[0])
    info += [
        'batch: ' + '; '.join(specs[s].describe(n)
                              for s, n in counts.items() if n) +
        f' (uint8 noise, {len(steps)} distinct '
        'batches in turn, the timed iterations from the first' +
        (f'; the first {extra_turns} of them timed once more than the '
         f'others: use a multiple of {len(steps)} for --iters to weigh '
         'their masks alike' if extra_turns else '') + ')',
        'weights: random init; tokenizer '
        f'{type(variants[0].model.target_generator).__name__} at random '
        'init (init_cfg=None, no weights downloaded; its cost does not '
        'depend on its values)',
        f'timing: median/min of {args.iters} iterations after '
        f'{args.warmup} warm-up' +
        (', variants interleaved (A B, B A, ...)' if args.compare else ''),
        'tokenizer: forward calls of model.target_generator; vocab '
        'projection: forward + backward of model.head.fc' +
        ('; timed by CUDA events inside the timed steps (no sync there)'
         if device.type == 'cuda' else ''),
        f'memory: {variants[0].memory.method}' +
        ('; variants with compiled modules: their peak RSS above the start '
         '(allocator caches included)' if device.type == 'cpu'
         and any(has_compiled_modules(v.model) for v in variants) else ''),
        *([
            'memory under CUDA graphs (compile mode reduce-overhead or '
            'max-autotune): not measured ("-"): a replayed graph writes its '
            'private pool, which the allocator does not count'
        ] if any(v.graphed for v in variants) else []),
        'FLOPs: torch.utils.flop_counter on one forward, a multiply-add = '
        '2 FLOPs; the tokenizer\'s scaled to the frames it encodes per '
        'timed step (mean); step = 3 x forward without tokenizer + '
        'tokenizer forward',
        'aten ops: ATen operators of one untimed step that do work (no '
        'views or allocations; on CUDA about one kernel launch each): '
        'forward + backward, and the optimizer step apart (one parameter '
        'at a time off CUDA, foreach kernels on CUDA); host syncs: those '
        'outside the optimizer that wait for the device on CUDA (a value '
        'or an output size read by the host: .item(), nonzero, mask '
        'indexing)',
        'page faults, system s: minor page faults and system CPU time (all '
        'threads) of the process during a timed step, median (getrusage): '
        'the kernel mapping and zeroing fresh memory, e.g. every CPU tensor '
        'above glibc\'s mmap threshold (<= 32 MiB); its cost per fault '
        'moves with the machine\'s state',
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
        variant.measure_ops(steps[0])
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
        timing=dict(
            iters=args.iters, warmup=args.warmup, distinct_batches=len(steps)),
        variants=results)
    if len(results) == 2:
        text, payload['ratios'] = ratio_lines(results)
        print('\n' + text)
    if args.json:
        write_json(args.json, payload)
    return 0


if __name__ == '__main__':
    sys.exit(main())
