# Copyright (c) bevt contributors. All rights reserved.
"""Make ``bevt::`` config paths resolve in mmengine 0.10.7.

``_base_ = 'bevt::_base_/default_runtime.py'`` needs two things mmengine
does not give a third-party package:

1. ``mmengine.config.utils.MODULE2PACKAGE`` is a hard-coded dict of
   OpenMMLab codebases and ``pkg::path`` asserts membership ("mmengine does
   not support to load bevt config"). bevt adds itself when that module is
   imported.
2. ``mmengine.config.config.get_installed_path`` looks for the package in
   site-packages, where an editable (PEP 660) install has no ``bevt``
   folder. For ``'bevt'`` it returns the imported package's folder instead,
   and says how to fix a missing ``.mim`` folder (the configs shipped there
   by ``setup.py``).

Both patches are applied by the post-import hooks of
:mod:`bevt.compat.import_hooks`, which the installed ``bevt-startup.pth``
sets up in every interpreter, so a fresh process that never imports bevt
(mmaction2's own ``tools/train.py`` reading a downstream config) resolves
``bevt::`` as well.
"""
import functools
import os.path as osp
import sys
from types import ModuleType

PACKAGE = 'bevt'


def package_dir() -> str:
    """Return the folder of the imported ``bevt`` package."""
    return osp.dirname(osp.abspath(sys.modules[PACKAGE].__file__))


def register_package(utils_module: ModuleType) -> None:
    """Add bevt to mmengine's ``MODULE2PACKAGE``.

    Args:
        utils_module (ModuleType): ``mmengine.config.utils``.
    """
    utils_module.MODULE2PACKAGE.setdefault(PACKAGE, PACKAGE)


def patch_get_installed_path(config_module: ModuleType) -> None:
    """Make ``get_installed_path('bevt')`` return the package folder.

    Args:
        config_module (ModuleType): ``mmengine.config.config``.
    """
    original = config_module.get_installed_path
    if getattr(original, '_bevt_patched', False):
        return

    @functools.wraps(original)
    def get_installed_path(package: str) -> str:
        if package != PACKAGE:
            return original(package)
        path = package_dir()
        if not osp.isdir(osp.join(path, '.mim', 'configs')):
            raise FileNotFoundError(
                f'{osp.join(path, ".mim", "configs")} is missing, so '
                '`bevt::` configs cannot be resolved. Install bevt with '
                '`pip install .` (or `make dev` for an editable install) '
                'from the repository root; this creates the `.mim` folder.')
        return path

    get_installed_path._bevt_patched = True
    config_module.get_installed_path = get_installed_path
