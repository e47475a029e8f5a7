# Copyright (c) bevt contributors. All rights reserved.
"""Peak memory of a step for ``tools/analysis_tools/benchmark.py``: CUDA's
allocator statistics, and on CPU the exact bytes of live tensors
(:class:`LiveTensorBytes`) beside the process's peak RSS; the page faults
and system time of a step (:func:`kernel_usage`, :class:`KernelUsage`)."""
import ctypes
import gc
import resource
import statistics
import sys
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple


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


def _maxrss_bytes() -> float:
    scale = 1. if sys.platform == 'darwin' else 1024.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def kernel_usage() -> Tuple[int, float]:
    """(minor page faults, system CPU seconds) of this process so far, all
    threads (``getrusage``).

    A minor page fault is the kernel mapping (and zeroing) a page the
    process touches for the first time: on CPU every tensor larger than
    glibc's mmap threshold (at most 32 MiB) gets fresh pages. Each 4 KiB
    page costs about 1 us of system time (measured on a 2-core CPU), and
    that cost moves with the machine's state. The difference over a step
    tells how much of it the kernel spent there.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_minflt, usage.ru_stime


class KernelUsage:
    """The page faults and system CPU time of each timed step: the
    :func:`kernel_usage` after it minus the one before."""

    def __init__(self) -> None:
        self.faults: List[int] = []
        self.system: List[float] = []

    def record(self, before: Tuple[int, float]) -> None:
        """Note one step, begun at ``before`` (its :func:`kernel_usage`)."""
        faults, system = kernel_usage()
        self.faults.append(faults - before[0])
        self.system.append(system - before[1])

    def summary(self) -> Dict[str, float]:
        """Medians per step, under the report's keys
        (:data:`~.report.KERNEL_USAGE_ROWS`)."""
        return dict(
            page_faults_per_iter=statistics.median(self.faults),
            system_s_per_iter=statistics.median(self.system))


class LiveTensorBytes:
    """Peak bytes of the tensor storages that ``fn`` creates and keeps.

    A dispatch mode (below autograd, so the backward's tensors are seen
    too) notes the storage of every tensor an operator returns the first
    time it sees it, and drops it when the storage is freed: what CUDA's
    ``max_memory_allocated`` minus the allocation at the start measures,
    without the allocator's rounding and caches, and on any device.
    Storages that existed before (weights, inputs) are not counted, even
    through views or in-place results made during the step, nor is memory
    that is not a tensor (oneDNN scratch, allocator caches).
    """

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self._live: Dict[int, int] = {}

    def _track(self, tensor: Any) -> None:
        storage = tensor.untyped_storage()
        key, size = storage.data_ptr(), storage.nbytes()
        if size == 0 or key in self._live:
            return
        self._live[key] = size
        self.now += size
        self.peak = max(self.peak, self.now)
        weakref.finalize(storage, self._free, key, size)

    def _free(self, key: int, size: int) -> None:
        if self._live.get(key) == size:
            del self._live[key]
            self.now -= size

    def measure(self, fn: Callable[[], Any]) -> int:
        """Run ``fn`` once; returns the peak bytes (also in :attr:`peak`)."""
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_leaves

        meter = self

        class _Tracking(TorchDispatchMode):

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                # a view, an in-place or an out= result shares an input's
                # storage: not memory the operator allocated (a view of a
                # weight made during the step would count the weight)
                inputs = {
                    item.untyped_storage().data_ptr()
                    for item in tree_leaves((args, kwargs))
                    if isinstance(item, torch.Tensor)
                }
                for item in (out if isinstance(out, (tuple, list)) else
                             (out, )):
                    if isinstance(item, torch.Tensor) and \
                            item.untyped_storage().data_ptr() not in inputs:
                        meter._track(item)
                return out

        with _Tracking():
            fn()
        return self.peak


class MemoryMeter:
    """Peak memory of one step above the memory at its start.

    Measured on a separate, untimed step (:meth:`measure`).

    CUDA: ``torch.cuda.max_memory_allocated`` after resetting the peak,
    minus the allocation at the start. CPU: the peak bytes of the tensors
    the step creates (:class:`LiveTensorBytes`, exact; the RSS would mostly
    show the allocator); with ``exact=False`` (e.g. for compiled modules,
    whose generated kernels a dispatch mode does not see), after
    ``gc.collect()`` and glibc's ``malloc_trim(0)``, the peak RSS (``VmHWM``
    of ``/proc/self/status``, reset through ``/proc/self/clear_refs``) minus
    the RSS at the start, or where that is unavailable the growth of
    ``resource.getrusage().ru_maxrss``. :attr:`absolute` is the highest
    CUDA allocation or CPU peak RSS seen.

    Args:
        device (torch.device): The device.
    """

    def __init__(self, device: Any) -> None:
        self.device = device
        self.absolute = 0.
        self._base = 0.
        self._rss = _reset_peak_rss()
        if device.type == 'cuda':
            self.method = ('CUDA: torch.cuda.max_memory_allocated during one '
                           'extra untimed step minus the allocation at its '
                           'start')
        else:
            self.method = ('CPU: peak bytes of the tensors created during '
                           'one extra untimed step per variant (a dispatch '
                           'mode follows every storage until it is freed; '
                           'exact, no allocator caches)')

    def measure(self, fn: Callable[[], Any], exact: bool = True) -> float:
        """Bytes above the start at the peak of ``fn()``.

        Args:
            fn (Callable): The step.
            exact (bool): On CPU, count tensor bytes (else the RSS).
                Defaults to True.
        """
        self.start()
        if self.device.type == 'cpu' and exact:
            peak = float(LiveTensorBytes().measure(fn))
            self.stop()  # the RSS peak, for :attr:`absolute`
            return peak
        fn()
        return self.stop()

    def start(self) -> None:
        """Mark the start of a step."""
        import torch

        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        elif self._rss:
            gc.collect()
            _malloc_trim()
            _reset_peak_rss()
            self._base = _read_status_kib('VmRSS') * 1024.
        else:
            self._base = _maxrss_bytes()

    def stop(self) -> float:
        """Bytes above the start at the peak of the step."""
        import torch

        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self._rss:
            peak = _read_status_kib('VmHWM') * 1024.
        else:
            peak = _maxrss_bytes()
        self.absolute = max(self.absolute, peak)
        return max(peak - self._base, 0.)


def records_cuda_graphs(compile_options: Any) -> bool:
    """Whether ``torch.compile`` arguments (a model's ``compile_backbone``)
    record CUDA graphs: mode 'reduce-overhead' or 'max-autotune', or
    ``options={'triton.cudagraphs': True}``.

    A graph's tensors live in a private memory pool, reserved while it is
    recorded (in the warm-up) and written at each replay without the
    allocator: ``torch.cuda.max_memory_allocated`` does not see a replayed
    step's memory, so :class:`MemoryMeter` cannot measure it.
    """
    if not isinstance(compile_options, dict):
        return False
    options = compile_options.get('options') or {}
    return compile_options.get('mode') in ('reduce-overhead', 'max-autotune') \
        or bool(options.get('triton.cudagraphs'))
