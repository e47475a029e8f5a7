# Copyright (c) bevt contributors. All rights reserved.
"""The analysis tools as a user runs them, on the smoke pretraining config.

No timing is asserted: only the output format and that the numbers are
positive and finite.
"""
import importlib.util
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
FAST = ['--iters', '1', '--warmup', '0']
NUMBER = r'[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|inf|nan)'
STEP_ROWS = ('s/iter (median)', 's/iter (min)', 'clips/s', 'images/s',
             'tokenizer s/iter', 'tokenizer share %', 'tokenizer calls/iter',
             'tokenizer frames/iter', 'fwd GFLOPs', 'fwd GFLOPs tokenizer',
             'step GFLOPs', 'achieved TFLOP/s', 'loss (first batch)')


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


def _benchmark_module():
    spec = importlib.util.spec_from_file_location(
        'benchmark', osp.join(REPO_ROOT, BENCHMARK))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def test_benchmark_compares_with_the_official_way(compare_run):
    text, _ = compare_run
    assert re.search(r'^\s+default\s+official\s+official/default$', text,
                     re.M), text
    for label in STEP_ROWS:
        values = _row(text, label)
        assert len(values) == 3, (label, values)  # both and their ratio
        _positive(values)
    assert len(_row(text, 'MFU %')) == 3
    assert 'peak memory MiB' not in text  # not per variant on a CPU
    assert re.search(rf'^process peak RSS: {NUMBER} MiB$', text, re.M)
    # the official way encodes all 8 frames + 2 images in one call, the
    # default only the frames with a masked cell, one call per stream
    calls, frames = (
        _row(text, f'tokenizer {k}/iter') for k in ('calls', 'frames'))
    assert calls[:2] == [2, 1] and frames[1] == 10 and frames[0] <= 10
    official = re.search(r'^official model: (.*)$', text, re.M).group(1)
    for setting in ("attention='reference'", 'tokenize_all_frames=True',
                    'gather_masked=False', 'tokenizer dtype=None',
                    'channels_last=False', 'loss=official_loss'):
        assert setting in official, official
    assert 'loss=BEVT.loss' in text and 'random init' in text
    assert "constructor='DefaultOptimWrapperConstructor'" in text
    # the config merges param groups and fuses AdamW; the official way has
    # one group per parameter and an unfused AdamW
    optim = dict(
        re.findall(r'^(\w+) optimizer: OptimWrapper\((AdamW.*?)\)', text,
                   re.M))
    groups, params = re.match(r'AdamW, (\d+) param groups for (\d+)',
                              optim['official']).groups()
    assert groups == params and int(params) > 20, optim
    assert optim['default'].startswith('AdamW fused, 2 param groups'), optim
    assert 'batch: 1 x [3, 8, 64, 64] (tokenizer [3, 8, 32, 32]) + 2 x ' \
        '[3, 64, 64] (tokenizer [3, 32, 32])' in text
    # the same weights and batch give the same loss both ways
    default, official, ratio = _row(text, 'loss (first batch)')
    assert official == pytest.approx(default, rel=1e-4) and ratio == 1.0
    match = re.search(
        rf'speed-up of default over official .*: step ({NUMBER})x \(min '
        rf'({NUMBER})x\), tokenizer ({NUMBER})x', text)
    assert match, text
    _positive(float(v) for v in match.groups())


def test_benchmark_writes_json(compare_run):
    _, numbers = compare_run
    assert numbers['counts'] == {'video': 1, 'img': 2}
    assert (numbers['iters'], numbers['warmup']) == (1, 0)
    assert [v['name'] for v in numbers['variants']] == ['default', 'official']
    for variant in numbers['variants']:
        _positive([
            variant[key]
            for key in ('s_per_iter_median', 's_per_iter_min', 'clips_per_s',
                        'images_per_s', 'tokenizer_s_per_iter',
                        'tokenizer_share', 'fwd_gflops',
                        'fwd_gflops_tokenizer', 'step_gflops', 'mfu')
        ] + variant['losses'])
        assert len(variant['times']) == 1
        assert variant['step_gflops'] == pytest.approx(
            3 * variant['fwd_gflops'] - 2 * variant['fwd_gflops_tokenizer'])
    default, official = numbers['variants']
    # the official way tokenizes every frame and projects every token
    assert official['fwd_gflops_tokenizer'] > default['fwd_gflops_tokenizer']
    assert official['fwd_gflops'] - official['fwd_gflops_tokenizer'] > \
        default['fwd_gflops'] - default['fwd_gflops_tokenizer']
    assert numbers['ratios']['first_loss'] == pytest.approx(1, abs=1e-4)
    _positive(
        [numbers['ratios']['s_per_iter_median'], numbers['peak_rss_mib']])


def test_benchmark_profile(compare_run):
    text, _ = compare_run
    path = re.search(r'^profile written to (.+)$', text, re.M).group(1)
    with open(path) as file:
        profile = file.read()
    for name in ('default', 'official'):
        section = profile.split(f'== {name}: operators by '
                                'self_cpu_time_total')[1]
        assert 'aten::' in section and 'Self CPU time total' in section
        assert f'{name}: top operators by self_cpu_time_total' in text


def test_benchmark_compare_overrides_and_cpu_fallback():
    """The stage-2 config at a tiny size: its AmpOptimWrapper becomes a plain
    OptimWrapper under CPU autocast, with the config's constructor; a
    ``key=value`` variant is built and compared."""
    arch = '{"embed_dims":16,"depths":[1,1,1,1],"num_heads":[1,1,1,1]}'
    proc = _run(BENCHMARK, 'configs/bevt/pretrain.py', '--videos', '1',
                '--images', '1', '--arch', arch, '--clip-len', '4', '--crop',
                '64', '--cfg-options',
                'model.target_generator.encoder.n_hid=8',
                'model.target_generator.compile=False', '--amp', 'bf16',
                '--compare', 'model.backbone.attention=reference', *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    assert re.search(r'^\s+default\s+compare\s+compare/default$', text,
                     re.M), text
    assert 'batch: 1 x [3, 4, 64, 64] (tokenizer [3, 4, 32, 32]) + 1 x ' \
        '[3, 64, 64] (tokenizer [3, 32, 32])' in text
    assert "compare: model.backbone.attention='reference'" in text
    assert re.search(
        r"^compare model: attention='reference', "
        r'tokenize_all_frames=False,.* loss=BEVT.loss$', text, re.M)
    for name in ('default', 'compare'):
        assert re.search(
            rf'^{name} optimizer: OptimWrapper\(AdamW fused, 2 param groups '
            r'for \d+ parameters\); accumulative_counts -> 1; '
            r'AmpOptimWrapper -> OptimWrapper on cpu; train_step under '
            r'torch.autocast\(cpu, torch.bfloat16\)$', text, re.M), text
    _positive(_row(text, 's/iter (median)'))


@pytest.mark.parametrize('args,message', [
    (['--arch', '{"depths":[2]}'], 'Invalid --arch'),
    (['--arch', '{'], 'Invalid --arch JSON'),
    (['--compare', 'nonsense'], 'Invalid --compare item'),
    (['--iters', '0'], '--iters must be >= 1, got 0'),
    (['--crop', '8'], '--crop must be >= 16, got 8'),
    (['--peak-tflops', '0'], '--peak-tflops must be > 0'),
])
def test_benchmark_reports_bad_arguments(args, message, capsys):
    with pytest.raises(SystemExit) as error:
        _benchmark_module().parse_args([PRETRAIN_SMOKE_CONFIG, *args])
    assert error.value.code == 2
    assert message in capsys.readouterr().err


def test_benchmark_reports_bad_input(capsys):
    benchmark = _benchmark_module()
    code = benchmark.main(
        [PRETRAIN_SMOKE_CONFIG, '--videos', '0', '--images', '0'])
    assert code == 2
    assert 'error: nothing to run' in capsys.readouterr().err
    code = benchmark.main(['configs/bevt/README.md'])
    assert code == 2
    assert 'is not a config file' in capsys.readouterr().err


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
