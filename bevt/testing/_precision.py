# Copyright (c) bevt contributors. All rights reserved.
"""Test helpers for comparing paths in float32 and reduced precision."""
import os
from contextlib import contextmanager
from typing import Dict, Iterator

import pytest
import torch
from torch import Tensor

#: pytest parameters of the tests that compare paths on every device: the
#: CPU always, CUDA where there is one (skipped otherwise)
DEVICES = [
    'cpu',
    pytest.param(
        'cuda',
        marks=pytest.mark.skipif(
            not torch.cuda.is_available(), reason='needs a CUDA device'))
]


@contextmanager
def exact_float32() -> Iterator[None]:
    """Plain float32 matrix products and convolutions on CUDA (no TF32,
    which PyTorch allows for cuDNN convolutions by default)."""
    saved = (torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = saved


@contextmanager
def deterministic(device: str) -> Iterator[None]:
    """On CUDA, PyTorch's deterministic algorithms inside (nothing on the
    CPU, whose kernels here sum in a fixed order).

    By default CUDA's ``index_add_`` (the relative-position table's
    gradient) and the memory-efficient attention's backward add with
    atomics, in an order that changes from run to run, so two paths that
    sum the same values can differ in the last bits. cuBLAS then needs
    ``CUBLAS_WORKSPACE_CONFIG``, which is set (and restored) here.
    """
    if torch.device(device).type != 'cuda':
        yield
        return
    saved = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             os.environ.get('CUBLAS_WORKSPACE_CONFIG'))
    os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        if saved[2] is None:
            os.environ.pop('CUBLAS_WORKSPACE_CONFIG', None)


def relative_error(value: Tensor, reference: Tensor) -> float:
    """``|value - reference| / |reference|`` (Frobenius norms, float32)."""
    reference = reference.float()
    return ((value.float() - reference).norm() / reference.norm()).item()


def assert_grads_close(grads: Dict[str, Tensor], reference: Dict[str, Tensor],
                       rel: float) -> None:
    """Each gradient equals its reference up to ``rel`` times the
    reference's largest magnitude (float rounding relative to its scale);
    the same names on both sides.

    Args:
        grads (dict): Name -> gradient.
        reference (dict): Name -> reference gradient.
        rel (float): Tolerance relative to ``reference[name].abs().max()``.
    """
    assert grads.keys() == reference.keys(), \
        sorted(set(grads) ^ set(reference))
    for name, ref in reference.items():
        torch.testing.assert_close(
            grads[name],
            ref,
            atol=rel * ref.abs().max().item(),
            rtol=0,
            msg=lambda text, name=name: f'{name}: {text}')
