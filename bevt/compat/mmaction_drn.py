# Copyright (c) bevt contributors. All rights reserved.
"""Stand in for ``mmaction.models.localizers.drn`` where it is missing.

The mmaction2 1.2.0 wheel and sdist on PyPI lack the folder
``mmaction/models/localizers/drn/`` (it has no ``__init__.py`` upstream, so
packaging skips it), yet ``mmaction/models/localizers/__init__.py`` imports
``from .drn.drn import DRN``: ``import mmaction.models`` raises
``ModuleNotFoundError`` (open-mmlab/mmaction2#2714), and so does every
registry lookup that imports mmaction's models.

bevt serves a replacement package only when no other finder finds the real
one (:class:`bevt.compat.import_hooks.FallbackFinder` is the last finder),
so a complete mmaction2 is left alone. The replacement registers a ``DRN``
model whose construction raises a clear error.
"""
from types import ModuleType

PACKAGE = 'mmaction.models.localizers.drn'
MODULE = PACKAGE + '.drn'

MESSAGE = (
    'DRN is unavailable: the installed mmaction2 lacks '
    '`mmaction/models/localizers/drn/` (missing from the 1.2.0 packages on '
    'PyPI, open-mmlab/mmaction2#2714), so bevt put a placeholder there. '
    'To use DRN, install mmaction2 from a source checkout: '
    '`pip install git+https://github.com/open-mmlab/mmaction2.git@v1.2.0`.')


class DRN:
    """Placeholder for mmaction2's DRN localizer; constructing it raises."""

    def __init__(self, *args, **kwargs) -> None:
        raise RuntimeError(MESSAGE)


def fill_package(module: ModuleType) -> None:
    """Fill the placeholder ``mmaction.models.localizers.drn`` package."""
    module.__doc__ = f'bevt placeholder for a missing package. {MESSAGE}'
    module.BEVT_PLACEHOLDER = True


def fill_module(module: ModuleType) -> None:
    """Fill the placeholder ``...drn.drn`` module and register ``DRN``."""
    from mmaction.registry import MODELS
    module.__doc__ = f'bevt placeholder for a missing module. {MESSAGE}'
    module.BEVT_PLACEHOLDER = True
    module.DRN = DRN
    if 'DRN' not in MODELS.module_dict:
        MODELS.register_module(name='DRN', module=DRN)
