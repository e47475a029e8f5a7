# Copyright (c) bevt contributors. All rights reserved.
"""ATen operator counting of ``tools/analysis_tools/benchmark.py``: the
operators of a step that launch work (about one kernel each on CUDA), the
host syncs among them, and scaled-dot-product attention as one operator
each way, as CUDA runs it."""
from collections import Counter
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List

#: ATen operators that allocate, alias or read a value back: no kernel
#: (``device``: ``prim::device``, which fake tensors dispatch)
NO_KERNEL_OPS = frozenset({
    'empty', 'empty_strided', 'empty_like', 'new_empty', 'new_empty_strided',
    'detach', 'alias', 'lift_fresh', '_unsafe_view', 'set_', 'resize_',
    '_local_scalar_dense', 'device'
})
#: ATen operators whose result the host must wait for on CUDA (a value, or
#: the size of the output)
HOST_SYNC_OPS = frozenset({
    '_local_scalar_dense', 'is_nonzero', 'nonzero', 'masked_select', 'unique',
    '_unique', '_unique2', 'unique_consecutive', 'unique_dim'
})
#: ATen indexing operators that wait for the host when an index is a mask
MASK_INDEX_OPS = frozenset({'index', 'index_put', 'index_put_'})


def is_host_sync(name: str, args: tuple) -> bool:
    """Whether ATen operator ``name`` called with ``args`` makes the host
    wait for the device on CUDA: :data:`HOST_SYNC_OPS`, and
    :data:`MASK_INDEX_OPS` with a bool (mask) index, which they turn into
    indices with a ``nonzero`` of their own."""
    import torch

    if name in HOST_SYNC_OPS:
        return True
    if name in MASK_INDEX_OPS and len(args) > 1:
        return any(
            getattr(index, 'dtype', None) in (torch.bool, torch.uint8)
            for index in args[1] if index is not None)
    return False


@contextmanager
def sdpa_as_one_operator(counts: Counter, quiet: List[bool]) -> Iterator[None]:
    """Count each ``F.scaled_dot_product_attention`` call as one operator
    and its backward as one more, as CUDA's fused kernels run them.

    Off CUDA, SDPA with an attention mask that needs a gradient runs its
    math decomposition, about ten operators each way, which would make an
    operator count overstate a GPU's launches. While active, the function
    is a custom autograd function that computes the real one with
    ``quiet[0]`` set (so that :func:`count_ops` skips those operators) and
    its backward by recomputing it (the same gradients).

    Args:
        counts (Counter): Where to add ``scaled_dot_product_attention`` and
            ``scaled_dot_product_attention_backward``.
        quiet (list[bool]): The flag :func:`count_ops` reads.
    """
    import torch
    import torch.nn.functional as F
    from torch._subclasses.fake_tensor import is_fake

    real = F.scaled_dot_product_attention

    def run(*args, **kwargs):
        quiet[0] = True
        try:
            return real(*args, **kwargs)
        finally:
            quiet[0] = False

    class _OneKernel(torch.autograd.Function):

        @staticmethod
        def forward(ctx, q, k, v, mask, kwargs):
            ctx.save_for_backward(q, k, v, mask)
            ctx.kwargs = kwargs
            device = q.device.type
            ctx.autocast = (device, torch.get_autocast_dtype(device),
                            torch.is_autocast_enabled(device))
            counts['scaled_dot_product_attention'] += 1
            return run(q, k, v, attn_mask=mask, **kwargs)

        @staticmethod
        def backward(ctx, grad):
            counts['scaled_dot_product_attention_backward'] += 1
            if any(is_fake(t) for t in ctx.saved_tensors):
                # fake tensors (no values; their engine-free backward,
                # :func:`~.fake_backward.backward_by_hand`, cannot recompute
                # through the engine): gradients of the right metadata
                return tuple(None if t is None or not t.requires_grad else
                             torch.empty_like(t)
                             for t in ctx.saved_tensors) + (None, )
            inputs = [
                None
                if t is None else t.detach().requires_grad_(t.requires_grad)
                for t in ctx.saved_tensors
            ]
            wanted = [t for t in inputs if t is not None and t.requires_grad]
            device, dtype, enabled = ctx.autocast
            with torch.enable_grad(), torch.autocast(device, dtype, enabled):
                out = run(*inputs[:3], attn_mask=inputs[3], **ctx.kwargs)
                quiet[0] = True
                try:
                    grads = iter(torch.autograd.grad(out, wanted, grad))
                finally:
                    quiet[0] = False
            return tuple(
                next(grads) if t is not None and t.requires_grad else None
                for t in inputs) + (None, )

    def counted(q, k, v, attn_mask=None, **kwargs):
        return _OneKernel.apply(q, k, v, attn_mask, kwargs)

    F.scaled_dot_product_attention = counted
    try:
        yield
    finally:
        F.scaled_dot_product_attention = real


def count_ops(fn: Callable[[], Any], optimizer: Any = None) -> Dict[str, int]:
    """Run ``fn`` and count the ATen operators it runs that do work.

    Counted below autograd and autocast (a dispatch mode), so the backward
    and autocast's casts are in; views (``OpOverload.is_view``) and
    :data:`NO_KERNEL_OPS` are not; each scaled-dot-product attention is
    one operator each way on any device (:func:`sdpa_as_one_operator`).
    On CUDA each counted operator launches about one kernel (a few launch
    several), so the total is a device-independent measure of the launch
    overhead that bounds a small-batch GPU step (an H200 step of Swin-B at
    4 clips + 32 images was launch bound: ~5,000 kernels, 109 ms of GPU
    time in a 160-220 ms step).

    Args:
        fn (Callable): What to run, once.
        optimizer (torch.optim.Optimizer, optional): Count the operators of
            its ``step`` apart, under names prefixed ``'optimizer.'`` (off
            CUDA, AdamW updates one parameter at a time, on CUDA with
            ``foreach`` kernels: its count differs most between devices).
            Defaults to None.

    Returns:
        dict: Calls per operator name (overload packet, e.g. ``'mm'``),
        and under ``'host_sync.'`` + name the calls outside the optimizer
        that make the host wait for the device on CUDA
        (:func:`is_host_sync`; the optimizer's step counters stay on the
        CPU).
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    counts: Counter = Counter()
    prefix = ['']
    quiet = [False]

    class _Counting(TorchDispatchMode):

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            if quiet[0]:
                return func(*args, **(kwargs or {}))
            if not func.is_view and name not in NO_KERNEL_OPS:
                counts[prefix[0] + name] += 1
            if not prefix[0] and is_host_sync(name, args):
                counts['host_sync.' + name] += 1
            return func(*args, **(kwargs or {}))

    handles = []
    if optimizer is not None:
        handles = [
            optimizer.register_step_pre_hook(
                lambda *_: prefix.__setitem__(0, 'optimizer.')),
            optimizer.register_step_post_hook(
                lambda *_: prefix.__setitem__(0, ''))
        ]
    try:
        with sdpa_as_one_operator(counts, quiet), _Counting():
            fn()
    finally:
        for handle in handles:
            handle.remove()
    return dict(counts)
