# Copyright (c) bevt contributors. All rights reserved.
"""Apply a fix when, and only when, the module it fixes is imported.

Two small meta path finders (duck-typed: ``importlib.abc`` alone costs
10 ms of start-up):

- :class:`PostImportFinder` (first on ``sys.meta_path``) lets the normal
  finders locate a watched module, runs it, then calls the callbacks
  registered with :func:`when_imported` on the fresh module.
- :class:`FallbackFinder` (last on ``sys.meta_path``) is only asked for a
  module after every other finder failed; it serves a replacement module
  registered with :func:`provide_if_missing`. A complete installation of
  the real module therefore always wins.

Standard library only: this runs at interpreter start-up.
"""
from __future__ import annotations
import importlib
import importlib.util
import sys
from types import ModuleType

# A callback is 'package.module:function', imported only when needed, so
# that registering a fix costs nothing at start-up.
_post_import: dict = {}  # watched module name -> [callback, ...]
_fallbacks: dict = {}  # missing module name -> filler callback
_fallback_packages: set = set()


def _resolve(callback: str):
    module_name, _, attr = callback.partition(':')
    return getattr(importlib.import_module(module_name), attr)


def _run_callbacks(module: ModuleType) -> None:
    for callback in _post_import.get(module.__name__, ()):
        _resolve(callback)(module)


class _PostImportLoader:
    """Wraps the real loader and runs the callbacks after ``exec_module``."""

    def __init__(self, loader) -> None:
        self._loader = loader

    def create_module(self, spec) -> ModuleType | None:
        """Delegate module creation to the real loader."""
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        """Run the module with the real loader, then the callbacks."""
        self._loader.exec_module(module)
        # Hand introspection (inspect, linecache) the real loader again.
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        _run_callbacks(module)

    def __getattr__(self, name: str):
        return getattr(self._loader, name)


class PostImportFinder:
    """Finds watched modules with the other finders and wraps their loader."""

    def find_spec(self,
                  fullname: str,
                  path: list | None,
                  target: ModuleType | None = None):
        """Return the real spec of a watched module with a wrapped loader."""
        if fullname not in _post_import:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, 'find_spec'):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _PostImportLoader(spec.loader)
                return spec
        return None


class _FillingLoader:
    """Creates a replacement module and fills it with ``filler``."""

    def __init__(self, filler: str) -> None:
        self._filler = filler

    def create_module(self, spec) -> None:
        """Use the default module creation."""
        return None

    def exec_module(self, module: ModuleType) -> None:
        """Fill the replacement module."""
        _resolve(self._filler)(module)


class FallbackFinder:
    """Serves replacement modules that no other finder could find."""

    def find_spec(self,
                  fullname: str,
                  path: list | None,
                  target: ModuleType | None = None):
        """Return a spec for a registered replacement module, else None."""
        filler = _fallbacks.get(fullname)
        if filler is None:
            return None
        return importlib.util.spec_from_loader(
            fullname,
            _FillingLoader(filler),
            is_package=fullname in _fallback_packages)


_POST_IMPORT_FINDER = PostImportFinder()
_FALLBACK_FINDER = FallbackFinder()


def when_imported(name: str, callback: str) -> None:
    """Call ``callback(module)`` once module ``name`` has been executed.

    If the module is already imported, the callback runs at once.

    Args:
        name (str): Full module name, e.g. ``'mmengine.config.utils'``.
        callback (str): ``'package.module:function'``; the function
            receives the module object.
    """
    callbacks = _post_import.setdefault(name, [])
    if callback in callbacks:
        return
    callbacks.append(callback)
    module = sys.modules.get(name)
    if module is not None and _is_initialised(module):
        _resolve(callback)(module)


def provide_if_missing(name: str,
                       filler: str,
                       is_package: bool = False) -> None:
    """Serve a replacement for module ``name`` when no finder finds it.

    Args:
        name (str): Full module name.
        filler (str): ``'package.module:function'`` that fills the new,
            empty module object.
        is_package (bool): Whether the replacement is a package (it then has
            an empty ``__path__``, so submodules can be served too).
            Defaults to False.
    """
    _fallbacks[name] = filler
    if is_package:
        _fallback_packages.add(name)


def _is_initialised(module: ModuleType) -> bool:
    spec = getattr(module, '__spec__', None)
    return not getattr(spec, '_initializing', False)


def install() -> None:
    """Put both finders on ``sys.meta_path`` (idempotent)."""
    if _POST_IMPORT_FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _POST_IMPORT_FINDER)
    if _FALLBACK_FINDER not in sys.meta_path:
        sys.meta_path.append(_FALLBACK_FINDER)


def uninstall() -> None:
    """Remove both finders from ``sys.meta_path`` (used by tests)."""
    for finder in (_POST_IMPORT_FINDER, _FALLBACK_FINDER):
        while finder in sys.meta_path:
            sys.meta_path.remove(finder)
