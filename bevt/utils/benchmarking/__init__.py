# Copyright (c) bevt contributors. All rights reserved.
"""The parts of ``tools/analysis_tools/benchmark.py`` that are not its
command line: config edits (:mod:`.specs`), synthetic batches
(:mod:`.batches`), measurement primitives (:mod:`.measure`, :mod:`.memory`,
:mod:`.op_count`), the report (:mod:`.report`), the backbone-only run
(:mod:`.backbone`), CUDA's autocast on fake tensors (:mod:`.fake_cuda`) and
their backward (:mod:`.fake_backward`)."""
from .backbone import backbone_benchmark
from .batches import make_batches, stream_counts
from .fake_backward import backward_by_hand
from .fake_cuda import (SavedTensorBytes, clear_shape_caches,
                        fake_cuda_autocast, fake_cuda_backbone_counts,
                        fake_cuda_benchmark)
from .measure import (MIB, SectionTimer, compiled_graphs, eager_modules,
                      flop_counter, has_compiled_modules, module_flops,
                      profile_steps, quiet_logger, run_interleaved,
                      synchronizer)
from .memory import (KernelUsage, LiveTensorBytes, MemoryMeter, kernel_usage,
                     records_cuda_graphs)
from .op_count import HOST_SYNC_OPS, NO_KERNEL_OPS, count_ops, is_host_sync
from .report import (fmt, noise_warning, ratio_lines, step_report, table,
                     write_json)
from .specs import (ARCH_KEYS, CROP_KEYS, OFFICIAL_CONSTRUCTOR,
                    OFFICIAL_OPTIMIZER, OFFICIAL_SETTINGS, StreamSpec,
                    apply_official, apply_size_overrides, make_random_init,
                    official_kwargs, parse_arch, stream_specs)

__all__ = [
    'backbone_benchmark', 'backward_by_hand', 'SavedTensorBytes',
    'clear_shape_caches', 'fake_cuda_autocast', 'fake_cuda_backbone_counts',
    'fake_cuda_benchmark', 'quiet_logger', 'run_interleaved', 'HOST_SYNC_OPS',
    'MIB', 'NO_KERNEL_OPS', 'is_host_sync', 'LiveTensorBytes', 'MemoryMeter',
    'records_cuda_graphs', 'kernel_usage', 'KernelUsage', 'SectionTimer',
    'compiled_graphs', 'count_ops', 'eager_modules', 'flop_counter',
    'has_compiled_modules', 'module_flops', 'profile_steps', 'synchronizer',
    'fmt', 'noise_warning', 'ratio_lines', 'step_report', 'table',
    'write_json', 'ARCH_KEYS', 'CROP_KEYS', 'OFFICIAL_CONSTRUCTOR',
    'OFFICIAL_OPTIMIZER', 'OFFICIAL_SETTINGS', 'StreamSpec', 'apply_official',
    'apply_size_overrides', 'make_batches', 'make_random_init',
    'official_kwargs', 'parse_arch', 'stream_counts', 'stream_specs'
]
