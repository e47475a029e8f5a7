# Copyright (c) bevt contributors. All rights reserved.
"""bevt: BEVT (BERT Pretraining of Video Transformers) for OpenMMLab 2.x.

`BEVT: BERT Pretraining of Video Transformers
<https://arxiv.org/abs/2112.01529>`_.

Importing ``bevt`` is cheap on purpose: it uses the standard library only,
because the installed ``bevt-startup.pth`` imports it in every interpreter of
the environment (that is how ``bevt::`` configs resolve in a process that
never imported bevt, e.g. mmaction2's own ``tools/train.py``). All fixes to
the OpenMMLab stack in :mod:`bevt.compat` are applied when the module they
fix is imported, never before; the version-range check of mmengine, mmcv and
mmaction runs when ``mmaction`` is imported.
"""
from .compat import install as _install_compat
from .version import __version__, version_info

_install_compat()

__all__ = ['__version__', 'version_info']
