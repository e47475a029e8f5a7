# Copyright (c) bevt contributors. All rights reserved.
"""Text tables, ratios and JSON of ``tools/analysis_tools/benchmark.py``."""
import json
import os
from typing import Any, Dict, List, Optional, Tuple


def fmt(value: Optional[float], spec: str = '.3f') -> str:
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


#: (label, key, format) of the rows of :meth:`.memory.KernelUsage.summary`
KERNEL_USAGE_ROWS = (('page faults/iter', 'page_faults_per_iter', '.0f'),
                     ('system s/iter', 'system_s_per_iter', '.3f'))


def step_report(results: List[Dict[str, Any]],
                peak_tflops: Optional[float]) -> str:
    """The table of a step benchmark."""

    def row(label, key, spec='.3f', scale=1.):
        values = [r.get(key, 0.) for r in results]
        return label, [
            fmt(None if v is None else v * scale, spec) for v in values
        ]

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
        row('aten ops fwd+bwd', 'aten_ops', '.0f'),
        row('aten ops optimizer', 'aten_ops_optimizer', '.0f'),
        row('host syncs', 'host_syncs', '.0f'),
        *(row(*spec) for spec in KERNEL_USAGE_ROWS),
    ]
    if peak_tflops:
        rows.append(row('MFU %', 'mfu', '.2f', 100.))
    return table(rows, [r['name'] for r in results])


def ratio_lines(results: List[Dict[str, Any]]) -> Tuple[str, Dict]:
    """The speed-up and memory lines of A against B."""
    a, b = results

    def ratio(key):
        if a.get(key) is None or b.get(key) is None:
            return None
        return b[key] / a[key] if a[key] > 0 else float('inf')

    ratios = dict(
        step_speedup=ratio('s_per_iter_median'),
        tokenizer_speedup=ratio('tokenizer_s_per_iter'),
        vocab_speedup=ratio('vocab_s_per_iter'),
        ops_ratio=ratio('aten_ops'),
        memory_ratio=(None if a['peak_memory_mib'] is None
                      or b['peak_memory_mib'] is None else
                      a['peak_memory_mib'] / b['peak_memory_mib']
                      if b['peak_memory_mib'] > 0 else float('nan')))
    text = (f'speed-up of {a["name"]} over {b["name"]} ({b["name"]} time / '
            f'{a["name"]} time): step {ratios["step_speedup"]:.2f}x, '
            f'tokenizer {ratios["tokenizer_speedup"]:.2f}x, vocab projection '
            f'{ratios["vocab_speedup"]:.2f}x\n'
            f'aten ops (forward + backward) {b["name"]}/{a["name"]}: '
            f'{fmt(ratios["ops_ratio"], ".2f")}\n'
            f'memory ratio {a["name"]}/{b["name"]} (peak above start): '
            f'{fmt(ratios["memory_ratio"], ".2f")}')
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
