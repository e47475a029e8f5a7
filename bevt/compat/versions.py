# Copyright (c) bevt contributors. All rights reserved.
"""Check the versions of mmengine, mmcv and mmaction that bevt was tested on.

The check runs when ``mmaction`` is imported (mmaction imports mmengine and
mmcv first), not when ``bevt`` is: ``bevt`` itself is imported at
interpreter start-up and must stay cheap (see :mod:`bevt`).
"""
from types import ModuleType

# name -> (minimum, exclusive maximum)
VERSION_RANGES = {
    'mmengine': ('0.10.7', '0.11.0'),
    'mmcv': ('2.0.0rc4', '2.2.0'),
    'mmaction': ('1.2.0', '1.3.0'),
}


def check_versions(mmaction_module: ModuleType) -> None:
    """Raise if mmengine, mmcv or mmaction is outside the tested range.

    Args:
        mmaction_module (ModuleType): The freshly imported ``mmaction``.
    """
    import mmcv
    import mmengine
    from mmengine.utils import digit_version
    modules = dict(mmengine=mmengine, mmcv=mmcv, mmaction=mmaction_module)
    for name, (low, high) in VERSION_RANGES.items():
        version = modules[name].__version__
        if not (digit_version(low) <= digit_version(version) <
                digit_version(high)):
            raise ImportError(
                f'{name}=={version} is installed, but bevt needs '
                f'{low} <= {name} < {high}: run `pip install -r '
                'requirements/runtime.txt` (or `make dev`).')
