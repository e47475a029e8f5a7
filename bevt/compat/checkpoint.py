# Copyright (c) bevt contributors. All rights reserved.
"""Load mmengine checkpoints under torch >= 2.6 with ``weights_only=True``.

torch 2.6 made ``torch.load`` default to ``weights_only=True``. mmengine
0.10.7 calls it without the argument, and its own checkpoints carry more
than tensors: numpy arrays, dtypes and scalars (``message_hub`` /
``meta``), and :class:`mmengine.logging.HistoryBuffer` objects whose
statistics methods are pickled as ``getattr(HistoryBuffer, 'mean')``. So
``--resume`` and ``load_from`` fail with ``UnpicklingError``
(open-mmlab/mmengine#1655).

Switching ``weights_only`` off would let any checkpoint run code (a
checkpoint is a pickle). Instead bevt replaces mmengine's local-file loader
(the ``''`` scheme of ``CheckpointLoader``, used by resume, ``load_from``
and ``init_cfg=dict(type='Pretrained')``) by :func:`load_from_local`, which
keeps ``weights_only=True`` and allows exactly the extra globals our
checkpoints need (:func:`safe_globals`). ``getattr`` is served by
:func:`_history_buffer_getattr`, which only returns registered
``HistoryBuffer`` statistics. Anything else is refused with
:class:`UnsafeCheckpointError`, naming the file.
"""
import os.path as osp
import pickle
from types import ModuleType
from typing import Callable, List, Optional, Tuple, Union

SafeGlobal = Union[Callable, Tuple[Callable, str]]
# registered by every HistoryBuffer.__init__, so a fresh process that has
# not made one yet does not list them in HistoryBuffer._statistics_methods
_BUILTIN_STATISTICS = ('min', 'max', 'current', 'mean')


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs a global that bevt does not allow to unpickle."""


def _history_buffer_getattr(obj: object, name: str) -> Callable:
    """A ``getattr`` restricted to ``HistoryBuffer``'s statistics methods.

    Args:
        obj (object): Must be the ``HistoryBuffer`` class.
        name (str): A registered statistics method, e.g. ``'mean'``.

    Returns:
        Callable: ``HistoryBuffer.<name>``.
    """
    from mmengine.logging import HistoryBuffer
    allowed = set(_BUILTIN_STATISTICS) | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowed: only the statistics '
        'methods of mmengine.logging.HistoryBuffer are')


def safe_globals() -> List[SafeGlobal]:
    """The globals an mmengine checkpoint written by bevt may contain.

    Returns:
        list: Entries for ``torch.serialization.safe_globals``; a tuple
        gives the name a global is pickled under.
    """
    import numpy as np
    from mmengine.logging import HistoryBuffer
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    allowed: List[SafeGlobal] = [
        HistoryBuffer,
        (_history_buffer_getattr, 'builtins.getattr'),
        np.ndarray,
        np.dtype,
    ]
    # numpy 1.x writes numpy.core.*, numpy 2.x numpy._core.*
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        allowed.append((multiarray._reconstruct, f'{module}._reconstruct'))
        allowed.append((multiarray.scalar, f'{module}.scalar'))
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25
    if dtypes is not None:
        allowed.extend(getattr(dtypes, name) for name in dtypes.__all__)
    return allowed


def load_from_local(filename: str,
                    map_location: Optional[Union[str, Callable]] = None):
    """Load a local checkpoint with ``weights_only=True``.

    Args:
        filename (str): Path of the checkpoint.
        map_location (str | Callable, optional): As in :func:`torch.load`.
            Defaults to None.

    Returns:
        dict: The loaded checkpoint.

    Raises:
        UnsafeCheckpointError: The pickle needs a global outside
            :func:`safe_globals`, i.e. it could run code.
    """
    import torch
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    with torch.serialization.safe_globals(safe_globals()):
        try:
            return torch.load(
                filename, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:
            lines = [line.strip() for line in str(e).splitlines()]
            detail = next(
                (line for line in lines if 'WeightsUnpickler error' in line),
                lines[-1])
            raise UnsafeCheckpointError(
                f'Refused to load checkpoint {filename}: it needs a pickle '
                'global that bevt does not allow, so loading it could run '
                f'arbitrary code. {detail} Load it only if you trust its '
                'source, e.g. after converting it with '
                '`torch.load(path, weights_only=False)` in a separate, '
                'trusted step.') from e


def use_safe_loader(checkpoint_module: ModuleType) -> None:
    """Make :func:`load_from_local` mmengine's loader for local files.

    Args:
        checkpoint_module (ModuleType): ``mmengine.runner.checkpoint``.
    """
    checkpoint_module.CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)
