# Copyright (c) bevt contributors. All rights reserved.
"""``--backbone-only`` of ``tools/analysis_tools/benchmark.py``: a train step
(forward + backward of a feature sum) of our Video Swin encoder against
mmaction2's ``SwinTransformer3D`` with the same weights."""
import argparse
import copy
import statistics
import time
from typing import Any, Dict

from .measure import (MIB, flop_counter, quiet_logger, run_interleaved,
                      synchronizer)
from .memory import KernelUsage, MemoryMeter, kernel_usage
from .op_count import count_ops
from .report import KERNEL_USAGE_ROWS, fmt, noise_warning, table
from .specs import StreamSpec


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

        def __init__(self, name, module, fn, gflops=None, compiled=False):
            self.name, self.module, self.fn = name, module, fn
            self.compiled = compiled
            self.times, self.peak = [], 0.
            self.kernel = KernelUsage()
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
        before = kernel_usage()
        start = time.perf_counter()
        train_step(runner)
        sync()
        if record:
            runner.times.append(time.perf_counter() - start)
            runner.kernel.record(before)

    runners = [
        Runner('bevt', ours, ours_forward),
        Runner('mmaction2', theirs, theirs_forward)
    ]
    if args.compile:  # same module and weights; compiled in the warm-up
        runners.append(
            Runner(
                'bevt compiled',
                ours,
                torch.compile(ours_forward, dynamic=False),
                runners[0].gflops,
                compiled=True))
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
    print(f'memory: {runners[0].memory.method}' +
          (' (the compiled run: its RSS)'
           if args.compile and device.type == 'cpu' else ''))
    print(f'timing: {args.iters} iterations after {args.warmup} warm-up, '
          'forward + backward of the feature sum, interleaved')
    print('aten ops: ATen operators of one untimed step that do work (no '
          'views or allocations); on CUDA about one kernel launch each')
    print('page faults, system s: minor page faults and system CPU time of '
          'the process during a timed step, median (getrusage)\n')
    run_interleaved(runners, [None], args.iters, args.warmup, step)
    for runner in runners:
        runner.peak = runner.memory.measure(
            lambda: train_step(runner), exact=not runner.compiled)
    results = []
    for r in runners:
        median = statistics.median(r.times)
        ops = None if 'compiled' in r.name else sum(
            n for k, n in count_ops(lambda: train_step(r)).items()
            if not k.startswith('host_sync.'))
        results.append(
            dict(
                name=r.name,
                s_per_iter_median=median,
                s_per_iter_min=min(r.times),
                clips_per_s=num / median,
                peak_memory_mib=r.peak / MIB,
                fwd_gflops=r.gflops,
                aten_ops=ops,
                **r.kernel.summary(),
                times=r.times))
    rows = [
        ('s/iter (median)',
         [fmt(r['s_per_iter_median'], '.4f') for r in results]),
        ('s/iter (min)', [fmt(r['s_per_iter_min'], '.4f') for r in results]),
        ('clips/s', [fmt(r['clips_per_s'], '.3f') for r in results]),
        ('peak memory MiB',
         [fmt(r['peak_memory_mib'], '.1f') for r in results]),
        ('fwd GFLOPs', [fmt(r['fwd_gflops'], '.2f') for r in results]),
        ('aten ops fwd+bwd', [fmt(r['aten_ops'], 'd') for r in results]),
        *((label, [fmt(r[key], spec) for r in results])
          for label, key, spec in KERNEL_USAGE_ROWS),
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
        if r['aten_ops']:
            print(f'aten ops (forward + backward) mmaction2/{r["name"]}: '
                  f'{base["aten_ops"] / r["aten_ops"]:.2f}')
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
