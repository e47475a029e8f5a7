# Copyright (c) bevt contributors. All rights reserved.
"""The analysis tools as a user runs them, on the smoke pretraining config.

No timing is asserted: only the output format and that the numbers are
positive and finite.
"""
import json
import math
import os.path as osp
import re
import subprocess
import sys
from typing import List

import pytest

from bevt.testing import PRETRAIN_SMOKE_CONFIG, REPO_ROOT, fresh_env

TOOLS = osp.join('tools', 'analysis_tools')
BENCHMARK = osp.join(TOOLS, 'benchmark.py')
GET_FLOPS = osp.join(TOOLS, 'get_flops.py')
PRINT_CONFIG = osp.join(TOOLS, 'print_config.py')
FAST = ['--iters', '2', '--warmup', '1']
NUMBER = r'[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|inf|nan)'
STEP_ROWS = ('s/iter (median)', 's/iter (min)', 'clips/s', 'images/s',
             'tokenizer s/iter', 'tokenizer share %',
             'vocab projection s/iter', 'peak memory MiB',
             'fwd GFLOPs tokenizer', 'fwd GFLOPs rest', 'step GFLOPs',
             'achieved TFLOP/s')


def _run(script: str,
         *args: str,
         warnings: str = 'ignore') -> subprocess.CompletedProcess:
    # one thread: OpenMP spin-waits make a shared 2-core machine crawl
    env = fresh_env(
        OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONWARNINGS=warnings)
    return subprocess.run([sys.executable, script, *args],
                          cwd=REPO_ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)


def _row(text: str, label: str) -> List[float]:
    """The numbers of the table row ``label``."""
    match = re.search(rf'^{re.escape(label)}((?:\s+{NUMBER})+)\s*$', text,
                      re.M)
    assert match, f'no row {label!r} in:\n{text}'
    return [float(v) for v in match.group(1).split()]


def _positive(values, allow_zero: bool = False) -> None:
    for value in values:
        assert math.isfinite(value), values
        assert value >= 0 if allow_zero else value > 0, values


@pytest.mark.parametrize('script', [BENCHMARK, GET_FLOPS, PRINT_CONFIG])
def test_help(script):
    proc = _run(script, '--help')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('usage:')


@pytest.fixture(scope='module')
def compare_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('benchmark') / 'numbers.json'
    args = [
        PRETRAIN_SMOKE_CONFIG, '--videos', '1', '--images', '2', '--compare',
        'official', '--json',
        str(out), '--peak-tflops', '1', '--profile',
        str(out.with_name('profile.txt')), *FAST
    ]
    proc = _run(BENCHMARK, *args, warnings='default')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the logged loss is read without torch's warning about its graph
    assert 'requires_grad=True to a scalar' not in proc.stderr
    return proc.stdout, json.loads(out.read_text())


def test_benchmark_prints_both_variants_and_ratios(compare_run):
    text, _ = compare_run
    header = next(line for line in text.splitlines()
                  if line.split() == ['default', 'official'])
    assert header
    for label in STEP_ROWS:
        values = _row(text, label)
        assert len(values) == 2, (label, values)
        _positive(values, allow_zero=label == 'peak memory MiB')
    assert len(_row(text, 'MFU %')) == 2
    # the official way encodes all 8 frames + 2 images, ours only those
    # with a masked cell (at least one image has one)
    ours, official = _row(text, 'tokenizer frames/iter')
    assert official == 10.0 and 1.0 <= ours <= 10.0
    assert 'random init' in text and 'no weights downloaded' in text
    assert 'a multiply-add = 2 FLOPs' in text
    assert 'fused_attention=reference' in text
    assert 'tokenize_all_frames=True' in text
    assert 'tokenizer_first=False' in text
    assert 'joint_tokenizer=True' in text  # one batch for both streams
    assert 'gather_masked=False' in text
    # the config merges param groups; the official way has one per parameter
    assert 'optim_wrapper.constructor=DefaultOptimWrapperConstructor' in text
    # ... and a fused AdamW, the official way not
    assert 'optim_wrapper.optimizer.fused=False' in text
    assert re.search(r'^optimizer \(default\): \w+\(AdamW fused,', text,
                     re.M), text
    groups = re.findall(r'^optimizer \((\w+)\): .*?(\d+) param groups', text,
                        re.M)
    assert len(groups) == 2 and int(groups[0][1]) < int(groups[1][1]), groups
    assert 'batch: 1 clip(s) 3x8x64x64' in text
    # --iters 2: two distinct batches, each timed once, whatever --warmup
    assert '2 distinct batches in turn, the timed iterations from the ' \
        'first)' in text
    assert '2 image(s) 3x64x64' in text
    match = re.search(
        rf'speed-up of default over official .*: step ({NUMBER})x, '
        rf'tokenizer ({NUMBER})x, vocab projection ({NUMBER})x', text)
    assert match, text
    _positive(float(v) for v in match.groups())
    assert re.search(rf'memory ratio default/official .*: {NUMBER}', text)
    # the kernel-launch proxy (on a CPU the default way runs attention and
    # the tokenizer in cache-sized blocks, so no order between the two)
    ours, official = _row(text, 'aten ops fwd+bwd')
    _positive([ours, official] + _row(text, 'aten ops optimizer'))
    # host syncs: the default way reads each mask once (nonzero), the
    # official way indexes with it (forward and backward)
    assert len(_row(text, 'host syncs')) == 2
    # the kernel's share: fresh pages mapped and system CPU time per step
    _positive(_row(text, 'page faults/iter'), allow_zero=True)
    _positive(_row(text, 'system s/iter'), allow_zero=True)
    assert 'minor page faults and system CPU time' in text
    match = re.search(
        rf'aten ops \(forward \+ backward\) official/default: ({NUMBER})',
        text)
    assert match and float(match.group(1)) == pytest.approx(
        official / ours, abs=0.01), text


def test_benchmark_writes_json(compare_run):
    _, numbers = compare_run
    assert numbers['mode'] == 'step'
    assert numbers['counts'] == {'video': 1, 'img': 2}
    assert numbers['timing'] == dict(iters=2, warmup=1, distinct_batches=2)
    assert [v['name'] for v in numbers['variants']] == ['default', 'official']
    for variant in numbers['variants']:
        _positive([
            variant[key]
            for key in ('s_per_iter_median', 's_per_iter_min', 'clips_per_s',
                        'images_per_s', 'tokenizer_s_per_iter',
                        'tokenizer_share', 'fwd_gflops_tokenizer',
                        'fwd_gflops_rest', 'step_gflops', 'mfu', 'aten_ops')
        ])
        assert len(variant['times']) == 2
        assert sum(variant['aten_ops_by_name'].values()) == \
            variant['aten_ops'] + variant['aten_ops_optimizer'] + \
            variant['host_syncs'] > 0
        assert any(
            k.startswith('optimizer.') for k in variant['aten_ops_by_name'])
        _positive(variant['losses'])
        assert variant['step_gflops'] == pytest.approx(
            3 * variant['fwd_gflops_rest'] + variant['fwd_gflops_tokenizer'])
    default, official = numbers['variants']
    # the official way tokenizes every frame and projects every token
    assert official['fwd_gflops_tokenizer'] >= default['fwd_gflops_tokenizer']
    assert official['fwd_gflops_vocab'] > default['fwd_gflops_vocab']
    _positive([numbers['ratios']['step_speedup']])


def test_benchmark_profile(compare_run):
    text, _ = compare_run
    path = re.search(r'^profile written to (.+)$', text, re.M).group(1)
    with open(path) as file:
        profile = file.read()
    for name in ('default', 'official'):
        section = profile.split(f'== {name}: operators by '
                                'self_cpu_time_total')[1]
        assert 'aten::' in section and 'Self CPU time total' in section
        shapes = profile.split(f'== {name}: operators and input shapes by '
                               'self_cpu_time_total')[1]
        assert re.search(r'aten::\w+.*\[\[\d+(, \d+)*\]', shapes)


def test_benchmark_cpu_fallback_keeps_the_constructor():
    """On a CPU the stage-2 config's AmpOptimWrapper falls back to a plain
    OptimWrapper that still uses the config's constructor (merged param
    groups); the official way keeps one group per parameter."""
    arch = '{"embed_dims":16,"depths":[1,1,1,1],"num_heads":[1,1,1,1]}'
    proc = _run(BENCHMARK, 'configs/bevt/pretrain.py', '--videos', '1',
                '--images', '1', '--arch', arch, '--clip-len', '4', '--crop',
                '64', '--tokenizer-n-hid', '8', '--compare', 'official',
                '--iters', '1', '--warmup', '0')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    groups = dict(
        re.findall(
            r'^optimizer \((\w+)\): plain OptimWrapper\(AdamW(?: fused)?, '
            r'(\d+) param groups', proc.stdout, re.M))
    assert groups['default'] == '2', proc.stdout
    assert int(groups['official']) > 20, proc.stdout


def test_benchmark_backbone_only_with_size_overrides():
    arch = '{"embed_dims":16,"depths":[1,1,2,1],"num_heads":[1,2,2,4]}'
    proc = _run(BENCHMARK, PRETRAIN_SMOKE_CONFIG, '--backbone-only',
                '--videos', '1', '--arch', arch, '--clip-len', '4', '--crop',
                '32', '--amp', 'bf16', *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    assert 'precision: torch.autocast(cpu, torch.bfloat16)' in text
    assert 'input: 1 clip(s) 3x4x32x32' in text
    assert re.search(r'^\s+bevt\s+mmaction2\s*$', text, re.M), text
    for label in ('s/iter (median)', 'clips/s', 'fwd GFLOPs',
                  'aten ops fwd+bwd'):
        _positive(_row(text, label))
    for label in ('page faults/iter', 'system s/iter'):
        assert len(_row(text, label)) == 2
        _positive(_row(text, label), allow_zero=True)
    diff = re.search(rf'max \|diff\| = ({NUMBER})', text)
    assert diff and float(diff.group(1)) < 1e-4, text
    match = re.search(rf'speed-up of bevt over mmaction2 .*: ({NUMBER})x',
                      text)
    assert match, text
    _positive([float(match.group(1))])


def test_benchmark_fake_cuda_counts_the_backbone_forward_and_backward(
        tmp_path):
    """--fake-cuda: CUDA's autocast on fake tensors, no GPU, forward and
    backward. The official way (one pass per stream, mmaction2's attention)
    runs more operators each way and keeps more for the backward than the
    default; float32 casts nothing between the layers."""

    def counts(*args):
        out = tmp_path / 'counts.json'
        proc = _run(BENCHMARK, PRETRAIN_SMOKE_CONFIG,
                    '--fake-cuda', '--videos', '2', '--images', '3', '--json',
                    str(out), *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        payload = json.loads(out.read_text())
        text = proc.stdout
        assert _row(text, 'operators') == [
            payload['operators'], payload['backward_operators']
        ]
        assert _row(text, 'casts (_to_copy)') == [
            payload['casts'], payload['backward_casts']
        ]
        assert 'saved for backward' in text
        # one attention backward per attention (none in mmaction2's way)
        ops, backward = payload['ops'], payload['backward_ops']
        assert backward.get('scaled_dot_product_attention_backward',
                            0) == ops.get('scaled_dot_product_attention', 0)
        assert payload['backward_operators'] > payload['operators']
        assert payload['videos'] == 2 and payload['images'] == 3
        return payload, text

    bf16, text = counts()
    assert 'precision: CUDA autocast bf16' in text
    assert bf16['operators'] > 0 and bf16['saved_bytes'] > 0
    assert bf16['ops']['native_layer_norm'] > 0
    assert 'device' not in bf16['ops']
    assert bf16['backward_ops']['scaled_dot_product_attention_backward'] > 0
    official, text = counts('--official')
    assert 'settings: ' in text and 'fused_attention=reference' in text
    assert official['operators'] > 1.5 * bf16['operators'], (official, bf16)
    assert official['backward_operators'] > 1.5 * bf16['backward_operators']
    assert official['saved_bytes'] > bf16['saved_bytes']
    float32, text = counts('--amp', 'none')
    assert 'precision: float32' in text
    assert float32['casts'] < bf16['casts']
    assert float32['backward_casts'] < bf16['backward_casts']
    proc = _run(BENCHMARK, PRETRAIN_SMOKE_CONFIG, '--fake-cuda',
                '--backbone-only')
    assert proc.returncode == 2
    assert 'not with --backbone-only' in proc.stderr


def test_benchmark_reports_bad_arguments():
    proc = _run(BENCHMARK, PRETRAIN_SMOKE_CONFIG, '--arch', '{"depths":[2]}')
    assert proc.returncode == 2
    assert 'Invalid --arch' in proc.stderr
    proc = _run(BENCHMARK, PRETRAIN_SMOKE_CONFIG, '--compare', 'nonsense')
    assert proc.returncode == 2
    assert 'Invalid --compare item' in proc.stderr
    proc = _run(BENCHMARK, PRETRAIN_SMOKE_CONFIG, '--backbone-only',
                '--profile', 'profile.txt')
    assert proc.returncode == 2
    assert '--profile profiles the full step' in proc.stderr


def test_get_flops():
    proc = _run(GET_FLOPS, PRETRAIN_SMOKE_CONFIG)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    assert 'a multiply-add counts as 2 FLOPs' in text
    assert 'input (1, 3, 8, 64, 64)' in text
    for label in ('backbone + head', 'backbone', 'head', 'tokenizer (frozen)'):
        match = re.search(
            rf'^\s*{re.escape(label)}\s+({NUMBER}) GFLOPs\s+({NUMBER}) M '
            'params$', text, re.M)
        assert match, (label, text)
        _positive(float(v) for v in match.groups())


def test_print_config():
    proc = _run(PRINT_CONFIG, PRETRAIN_SMOKE_CONFIG, '--cfg-options',
                'model.head.num_classes=64')
    assert proc.returncode == 0, proc.stderr
    assert "type='BEVT'" in proc.stdout
    assert 'num_classes=64' in proc.stdout
    proc = _run(PRINT_CONFIG, 'configs/missing.py')
    assert proc.returncode == 2
    assert 'Config not found: configs/missing.py' in proc.stderr


@pytest.mark.parametrize('script', [PRINT_CONFIG, BENCHMARK, 'tools/train.py'])
def test_tools_name_a_file_that_is_not_a_config(script):
    """mmengine's own error for a .md file names no file; the tools
    print which file and what they expected, with no traceback."""
    proc = _run(script, 'configs/bevt/README.md')
    assert proc.returncode != 0
    assert ('error: configs/bevt/README.md is not a config file (expected '
            'one of .py, .json, .yml, .yaml)') in proc.stderr, proc.stderr
    assert 'Traceback' not in proc.stderr


def test_flops_counted_with_compiled_modules_eager():
    """The FLOP count runs compiled modules eagerly (a frame met first under
    FlopCounterMode may stay uncompiled) and leaves them compiled."""
    import torch
    import torch.nn as nn

    from bevt.utils.benchmarking import (compiled_graphs, eager_modules,
                                         flop_counter)

    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    net[0].compile(backend='eager')
    impl = net[0]._compiled_call_impl
    with eager_modules(net):
        assert net[0]._compiled_call_impl is None
        with flop_counter() as counter:
            net(torch.randn(3, 4))
    assert net[0]._compiled_call_impl is impl
    assert counter.get_total_flops() == 2 * 3 * 4 * (4 + 2)
    before = compiled_graphs()
    net(torch.randn(3, 4))
    assert compiled_graphs() == before + 1


def test_count_ops_counts_work_below_autograd_and_autocast():
    """Views and allocations are not counted; the backward and autocast's
    casts are; a compiled module is detected."""
    import torch
    import torch.nn as nn

    from bevt.utils.benchmarking import count_ops, has_compiled_modules

    x = torch.randn(3, 4)
    assert count_ops(lambda: (x.view(12).t() * 2).sum()) == {
        'mul': 1,
        'sum': 1
    }
    linear = nn.Linear(4, 2)

    def step():
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = linear(x)
        out.float().sum().backward()

    counts = count_ops(step)
    assert counts['addmm'] == 1  # forward
    assert counts['mm'] >= 1  # backward (weight and input gradients)
    assert counts['_to_copy'] >= 3  # casts of x, weight, bias (+ back)
    assert not set(counts) & {'view', 't', 'empty', 'detach'}
    optimizer = torch.optim.SGD(linear.parameters(), lr=0.1)
    optimizer.zero_grad(set_to_none=True)
    counts = count_ops(lambda: (step(), optimizer.step()), optimizer)
    # SGD's update (add_ per parameter off CUDA) is counted apart
    assert counts['optimizer.add_'] == 2 and 'add_' not in counts
    assert not optimizer._optimizer_step_pre_hooks  # hooks removed
    assert not has_compiled_modules(linear)
    # host syncs on CUDA: values and output sizes read by the host
    syncs = count_ops(lambda: (x[x > 0], x.sum().item(), x[[0, 2]],
                               x.masked_fill(x > 0, 0.)))
    assert syncs['host_sync.index'] == 1  # the mask index, not the list
    assert syncs['host_sync._local_scalar_dense'] == 1
    assert sum(n for k, n in syncs.items() if k.startswith('host_sync.')) == 2
    linear.compile(backend='eager')
    assert has_compiled_modules(nn.Sequential(linear))


def test_run_interleaved_times_the_same_batches_whatever_the_warm_up():
    from bevt.utils.benchmarking import run_interleaved

    def run(iters, warmup):
        calls = []
        run_interleaved(['A', 'B'], ['b0', 'b1', 'b2', 'b3'], iters, warmup,
                        lambda v, data, timed: calls.append((v, data, timed)))
        return calls

    for warmup in (0, 1, 3, 6):
        calls = run(6, warmup)
        assert len(calls) == 2 * (6 + warmup)
        assert all(not timed for _, _, timed in calls[:2 * warmup])
        timed = calls[2 * warmup:]
        # from the first batch, in turn, each timed with both variants
        assert [data for _, data, _ in timed] == [
            b for b in ('b0', 'b1', 'b2', 'b3', 'b0', 'b1') for _ in 'AB'
        ], warmup
        assert all(t for _, _, t in timed)
        # the order alternates (A B, B A, ...)
        firsts = [v for v, _, _ in calls[::2]]
        assert firsts == ['A', 'B'] * ((6 + warmup) // 2) + ['A'] * (
            (6 + warmup) % 2)


def _timed_linear_step(device):
    """A SectionTimer on a linear (forward + backward) and one step."""
    import torch
    import torch.nn as nn

    from bevt.utils.benchmarking import SectionTimer

    linear = nn.Linear(64, 64).to(device)
    timer = SectionTimer(linear, device, backward=True)
    x = torch.randn(256, 64, device=device, requires_grad=True)
    linear(x).square().sum().backward()
    return linear, timer, x


def test_section_timer_counts_forward_and_backward():
    import time

    import torch

    linear, timer, x = _timed_linear_step(torch.device('cpu'))
    first = timer.total
    assert first > 0
    timer.enabled = False
    start = time.perf_counter()
    linear(x).sum().backward()
    assert timer.total == first  # disabled: not counted
    assert timer.total < time.perf_counter() - start + first
    timer.enabled = True
    timer.reset()
    assert timer.total == 0.
    linear(x)
    forward_only = timer.total
    assert forward_only > 0
    timer.remove()
    linear(x).sum().backward()
    assert timer.total == forward_only  # hooks removed


@pytest.mark.skipif(
    not __import__('torch').cuda.is_available(), reason='needs CUDA')
def test_section_timer_does_not_sync_on_cuda(monkeypatch):
    """On CUDA the sections are CUDA events: no synchronize inside the
    step; the time is read after it."""
    import torch

    syncs = []
    real = torch.cuda.synchronize
    monkeypatch.setattr(torch.cuda, 'synchronize',
                        lambda *a: syncs.append(1) or real(*a))
    _, timer, _ = _timed_linear_step(torch.device('cuda'))
    assert not syncs
    real()
    assert timer.total > 0


def test_kernel_usage_counts_the_faults_of_fresh_memory():
    import mmap

    from bevt.utils.benchmarking import kernel_usage

    # fresh pages for sure: an anonymous mapping of its own (a large tensor
    # may reuse heap memory that earlier tests have touched already)
    fresh = mmap.mmap(-1, 64 * 1024**2)
    faults, system = kernel_usage()
    for offset in range(0, len(fresh), 4096):  # first touch of each page
        fresh[offset] = 1
    after, system_after = kernel_usage()
    fresh.close()
    assert isinstance(after, int) and system_after >= system >= 0.
    # 4 KiB pages: ~16k faults; 2 MiB transparent huge pages: ~32
    assert after - faults >= 16


def test_live_tensor_bytes_is_exact():
    """The peak counts the tensors alive together, freed ones leave it, and
    the tensors of the backward are seen."""
    import torch

    from bevt.utils.benchmarking import LiveTensorBytes, MemoryMeter

    weight = torch.randn(256, 256, requires_grad=True)  # exists before

    def step():
        a = torch.empty(1000, dtype=torch.float32).fill_(1.)  # 4000 B
        b = torch.zeros(500, dtype=torch.float64)  # 4000 B
        del a, b  # both were alive together: 8000 B
        c = torch.ones(100)  # 400 B, after they were freed
        return c

    meter = LiveTensorBytes()
    assert meter.measure(step) == 8000
    assert meter.now == 0  # c was returned, then dropped
    # a linear layer's forward + backward: output, gradients of weight and
    # input (256 x 256 x 4 B each) are tensors it creates; the product is
    # freed after its sum, so the peak holds the two gradients (and the
    # scalar loss), not the weight its backward reads through a view
    x = torch.randn(256, 256, requires_grad=True)
    peak = LiveTensorBytes().measure(lambda: (x @ weight).sum().backward())
    assert 2 * 256 * 256 * 4 <= peak < 2 * 256 * 256 * 4 + 64
    assert weight.grad is not None
    # views and in-place results of storages that existed before are not
    # memory the step allocates
    assert LiveTensorBytes().measure(
        lambda: (weight.reshape(-1), weight.t(), x.detach().add_(1.))) == 0
    meter = LiveTensorBytes()
    assert meter.measure(lambda: weight.detach().reshape(-1).mul(2.)) == \
        256 * 256 * 4  # only the product
    cpu = MemoryMeter(torch.device('cpu'))
    assert 'exact' in cpu.method
    assert cpu.measure(step) == 8000
    assert cpu.absolute > 0  # the RSS peak beside it
    calls = []
    cpu.measure(lambda: calls.append(step()), exact=False)  # the RSS path
    assert len(calls) == 1


def test_count_ops_counts_attention_as_one_operator_each_way():
    """Scaled-dot-product attention counts as one operator and its backward
    as one (CUDA's fused kernels), not its CPU math decomposition; the
    gradients stay those of the real function (in bfloat16 up to its
    rounding: without grad mode the CPU may pick another kernel)."""
    import torch
    import torch.nn.functional as F

    from bevt.utils.benchmarking import count_ops

    real = F.scaled_dot_product_attention
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 16, 8, generator=gen) for _ in range(3))
    bias = torch.randn(1, 3, 16, 16, generator=gen)
    for autocast in (False, True):
        grads = []
        for counted in (True, False):
            leaves = [t.clone().requires_grad_() for t in (q, k, v, bias)]

            def step():
                with torch.autocast('cpu', torch.bfloat16, enabled=autocast):
                    out = F.scaled_dot_product_attention(
                        *leaves[:3], attn_mask=leaves[3], scale=0.5)
                out.float().square().sum().backward()

            counts = count_ops(step) if counted else step()
            if counted:
                assert counts['scaled_dot_product_attention'] == 1
                assert counts['scaled_dot_product_attention_backward'] == 1
                assert 'bmm' not in counts and '_softmax' not in counts
            grads.append([t.grad for t in leaves])
        for a, b in zip(*grads):  # bfloat16: the kernel may differ
            tol = 2e-2 if autocast else 0.
            torch.testing.assert_close(a, b, atol=tol, rtol=tol)
    assert F.scaled_dot_product_attention is real  # restored


def test_memory_under_cuda_graphs_is_not_reported():
    """A backbone compiled to record CUDA graphs replays into a pool the
    allocator does not count: its peak is reported as '-' and no memory
    ratio is made, rather than a number that misses the graph's tensors."""
    from bevt.utils.benchmarking import (ratio_lines, records_cuda_graphs,
                                         step_report)

    assert records_cuda_graphs(dict(mode='reduce-overhead'))
    assert records_cuda_graphs(dict(mode='max-autotune'))
    assert records_cuda_graphs(dict(options={'triton.cudagraphs': True}))
    for plain in (False, True, dict(), dict(mode='default'),
                  dict(mode='max-autotune-no-cudagraphs')):
        assert not records_cuda_graphs(plain)
    results = [
        dict(
            name=name,
            peak_memory_mib=peak,
            s_per_iter_median=t,
            tokenizer_s_per_iter=t / 4,
            vocab_s_per_iter=t / 20,
            aten_ops=None)
        for name, peak, t in (('default', 900., 0.1), ('compare', None, 0.08))
    ]
    text, ratios = ratio_lines(results)
    assert ratios['memory_ratio'] is None
    assert 'memory ratio default/compare (peak above start): -' in text
    assert abs(ratios['step_speedup'] - 0.8) < 1e-9
    report = step_report(results, None)
    assert re.search(r'^peak memory MiB\s+900\.0\s+-$', report, re.M)
