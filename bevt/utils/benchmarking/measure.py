# Copyright (c) bevt contributors. All rights reserved.
"""Measurement primitives of ``tools/analysis_tools/benchmark.py``: device
syncs, section timers, a quiet logger, interleaved runs, FLOP counting,
compile diagnostics and the profiler tables (peak memory: :mod:`.memory`;
operator counts: :mod:`.op_count`)."""
import os
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List

MIB = 1024.**2


def synchronizer(device: Any) -> Callable[[], None]:
    """A function that waits for the device (a no-op on CPU)."""
    import torch

    if device.type == 'cuda':
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


class SectionTimer:
    """Time spent in a module's forward (and backward) calls.

    On CPU the sections are timed with ``time.perf_counter``. On CUDA each
    section is a pair of CUDA events recorded on the current stream: no
    host sync inside the timed step (a ``torch.cuda.synchronize`` around
    each section would drain the device queue every time and undo the
    overlap of host launches and device work the step relies on); the
    times are read with :attr:`total` after the step has been waited for.

    Args:
        module (nn.Module): The timed module.
        device (torch.device): Where the module runs.
        backward (bool): Also time its backward pass (full backward hooks).
            Defaults to False.
    """

    def __init__(self,
                 module: Any,
                 device: Any,
                 backward: bool = False) -> None:
        self.cuda = device.type == 'cuda'
        self.enabled = True
        self._seconds = 0.
        self._events: List[tuple] = []  # CUDA: (start, end) pairs
        self._start: Dict[str, Any] = {}
        self.handles = [
            module.register_forward_pre_hook(self._begin('fwd')),
            module.register_forward_hook(self._end('fwd'))
        ]
        if backward:
            self.handles += [
                module.register_full_backward_pre_hook(self._begin('bwd')),
                module.register_full_backward_hook(self._end('bwd'))
            ]

    def _mark(self) -> Any:
        if not self.cuda:
            return time.perf_counter()
        import torch

        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def _begin(self, phase: str) -> Callable:

        def hook(*_):
            if self.enabled:
                self._start[phase] = self._mark()

        return hook

    def _end(self, phase: str) -> Callable:

        def hook(*_):
            if self.enabled and phase in self._start:
                start, end = self._start.pop(phase), self._mark()
                if self.cuda:
                    self._events.append((start, end))
                else:
                    self._seconds += end - start

        return hook

    @property
    def total(self) -> float:
        """Seconds in the sections since :meth:`reset` (on CUDA, call it
        after the device has finished them)."""
        return self._seconds + sum(
            start.elapsed_time(end) for start, end in self._events) / 1e3

    def reset(self) -> None:
        """Start counting from zero."""
        self._seconds = 0.
        self._events.clear()
        self._start.clear()

    def remove(self) -> None:
        """Remove the hooks."""
        for handle in self.handles:
            handle.remove()


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


def run_interleaved(variants: List[Any], steps: List[Any], iters: int,
                    warmup: int, step_fn: Callable[[Any, Any, bool],
                                                   None]) -> None:
    """Run ``warmup + iters`` iterations of every variant, alternating the
    order (A B, B A, ...) so that neither always runs first.

    The timed iterations take ``steps`` in turn from the first, whatever
    ``warmup`` is (the warm-up ones end the cycle before it): the timed
    batches, and with them the masks and so the work of a step (e.g. the
    frames the tokenizer encodes), depend on ``iters`` only.
    """
    for i in range(warmup + iters):
        order = variants if i % 2 == 0 else variants[::-1]
        for variant in order:
            step_fn(variant, steps[(i - warmup) % len(steps)], i >= warmup)


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


def compiled_modules(model: Any) -> List[Any]:
    """The modules of ``model`` compiled with ``nn.Module.compile``."""
    return [
        m for m in model.modules()
        if getattr(m, '_compiled_call_impl', None) is not None
    ]


def has_compiled_modules(model: Any) -> bool:
    """Whether a module of ``model`` was compiled with
    ``nn.Module.compile`` (its operators then run in generated kernels,
    which :func:`count_ops` cannot see)."""
    return bool(compiled_modules(model))


@contextmanager
def eager_modules(model: Any) -> Iterator[None]:
    """Run the modules compiled with ``nn.Module.compile`` eagerly inside.

    For the FLOP count, whose ``FlopCounterMode`` is a dispatch mode: on an
    H200 with PyTorch 2.11, a backbone compiled with
    ``compile_backbone=True`` and first called under it captured no graph
    and timed like the eager one (most likely dynamo declined the frame
    there for good). The eager module has the same FLOPs.
    """
    compiled = [(m, m._compiled_call_impl) for m in compiled_modules(model)]
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


def profile_steps(variants: List[Any], data: Any, path: str) -> None:
    """Profile one train step of each variant (after one untimed step) and
    write torch.profiler's operator tables to ``path``: by device time (on
    CUDA), by CPU time, and by device (else CPU) time per operator and
    input shapes, which tells the blocks and streams apart."""
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
        with profile(activities=activities, record_shapes=True) as prof:
            variant.step(data, False)
            if cuda:
                torch.cuda.synchronize()
        table = prof.key_averages()
        for sort in sorts:
            lines += [
                f'== {variant.name}: operators by {sort}',
                table.table(sort_by=sort, row_limit=40), ''
            ]
        lines += [
            f'== {variant.name}: operators and input shapes by {sorts[0]}',
            prof.key_averages(group_by_input_shape=True).table(
                sort_by=sorts[0],
                row_limit=40,
                max_name_column_width=40,
                max_shapes_column_width=120), ''
        ]
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, 'w') as file:
        file.write('\n'.join(lines))
    print(f'profile written to {path}')
