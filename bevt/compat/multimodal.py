# Copyright (c) bevt contributors. All rights reserved.
"""mmaction2 1.2.0 and mmpretrain 1.2.0 break under transformers >= 5.

Both import their multi-modal models (mmaction's VindLU, mmpretrain's BLIP,
BLIP-2, OFA, ...) whenever ``transformers>=4.28`` is installed
(``WITH_MULTIMODAL`` in ``<pkg>.utils.dependency``), and those models import
names that transformers 5 removed (``transformers.modeling_utils.
apply_chunking_to_forward``, ...). So ``import mmaction.models`` raises
``ImportError`` on a machine that merely has a current transformers (seen on
a GPU image with transformers 5.17), and every bevt model with it. bevt uses
none of those models: with transformers >= 5 the flag is turned off, so the
packages register their placeholders ("requires extra multi-modal
dependencies") instead. Older transformers are left alone.
"""
import importlib.metadata
import warnings
from types import ModuleType

#: transformers versions from this major on lack what the models import
BROKEN_MAJOR = 5


def transformers_major() -> int:
    """Major version of the installed transformers (0 if none)."""
    try:
        version = importlib.metadata.version('transformers')
    except importlib.metadata.PackageNotFoundError:
        return 0
    head = version.split('.')[0]
    return int(head) if head.isdigit() else 0


def disable_broken_multimodal(dependency: ModuleType) -> None:
    """Turn ``WITH_MULTIMODAL`` off under transformers >= 5.

    Args:
        dependency (ModuleType): The freshly imported
            ``mmaction.utils.dependency`` or ``mmpretrain.utils.dependency``.
    """
    if not getattr(dependency, 'WITH_MULTIMODAL', False):
        return
    major = transformers_major()
    if major < BROKEN_MAJOR:
        return
    dependency.WITH_MULTIMODAL = False
    package = dependency.__name__.split('.')[0]
    warnings.warn(
        f'transformers {major}.x is installed; {package}\'s multi-modal '
        'models need transformers < 5, so bevt turned them off '
        f'({package}.utils.dependency.WITH_MULTIMODAL = False) to keep '
        f'`import {package}.models` working',
        stacklevel=2)
