# Copyright (c) bevt contributors. All rights reserved.
"""CUDA's autocast without a GPU: a forward pass on fake CUDA tensors.

Autocast's policies differ per device (CUDA runs ``layer_norm``, ``sum``
and ``softmax`` in float32 and promotes ``addcmul``; the CPU's autocast does
none of these), so the casts of a CUDA step cannot be counted by running it
on the CPU. Fake tensors (:class:`torch._subclasses.FakeTensorMode`) carry a
CUDA device without memory or a GPU, and the dispatcher applies CUDA's
autocast to them once it is switched on (``torch.autocast('cuda')`` itself
refuses without a GPU): the operators of a CUDA forward, with their dtypes,
are then seen by a dispatch mode such as
:func:`~bevt.utils.benchmarking.count_ops`. Not the backward: the autograd
engine needs a real device for CUDA tensors.
"""
import functools
import sys
import warnings
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn as nn


def clear_shape_caches() -> None:
    """Clear the ``functools.lru_cache`` functions of bevt's and mmaction2's
    modules (window orders, shift masks, keep probabilities...), e.g. of
    the fake tensors that a fake CUDA pass put in them."""
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(('bevt.', 'mmaction.')):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, functools._lru_cache_wrapper):
                value.cache_clear()


@contextmanager
def fake_cuda_autocast(module: nn.Module,
                       dtype: torch.dtype = torch.bfloat16,
                       device: str = 'cuda') -> Iterator[torch.device]:
    """``module``'s parameters and buffers as fake CUDA tensors, under a
    fake tensor mode with CUDA's autocast to ``dtype`` on.

    Inside, make the inputs on the yielded device (``torch.randn(...,
    device=device)``) and run the forward. Autocast's cache of weight casts
    lasts until the context ends (``torch.clear_autocast_cache()`` between
    passes counts each as a step would). On exit the module is left with
    its fake tensors (build a new one to run for real), autocast is as it
    was and :func:`clear_shape_caches` drops the caches the pass filled.

    Args:
        module (nn.Module): The model (its parameters are replaced).
        dtype (torch.dtype): Autocast dtype. Defaults to bfloat16.
        device (str): The fake device. Defaults to 'cuda'.

    Yields:
        torch.device: The device to make inputs on.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    try:
        # a disabled autocast context (it refuses to enable itself without
        # a GPU), then switched on: nested as under a real one (inner
        # contexts keep the weight cache) and undone on exit
        with mode, warnings.catch_warnings(), \
                torch.autocast('cuda', enabled=False):
            # bevt's per-buffer caches key on data pointers (fake: none)
            warnings.filterwarnings('ignore', 'Accessing the data pointer')
            for sub in module.modules():
                for name, param in list(sub.named_parameters(recurse=False)):
                    fake = mode.from_tensor(param).to(device)
                    setattr(sub, name, nn.Parameter(fake, param.requires_grad))
                for name, buf in list(sub.named_buffers(recurse=False)):
                    setattr(sub, name, mode.from_tensor(buf).to(device))
            torch.set_autocast_dtype('cuda', dtype)
            torch.set_autocast_enabled('cuda', True)
            yield torch.device(device)
    finally:
        clear_shape_caches()
