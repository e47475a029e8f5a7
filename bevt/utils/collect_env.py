# Copyright (c) bevt contributors. All rights reserved.
"""Collect the environment's versions.

Run as ``python -m bevt.utils.collect_env``.
"""
from mmengine.utils import get_git_hash
from mmengine.utils.dl_utils import collect_env as collect_base_env

import bevt


def collect_env() -> dict:
    """Collect the information of the running environment.

    Returns:
        dict: Name -> version of Python, torch, CUDA, the OpenMMLab packages
        and bevt.
    """
    import mmaction
    import mmcv
    import mmpretrain
    env_info = collect_base_env()
    env_info['MMCV'] = mmcv.__version__
    env_info['MMAction2'] = mmaction.__version__
    env_info['MMPretrain'] = mmpretrain.__version__
    env_info['bevt'] = f'{bevt.__version__}+{get_git_hash(digits=7)}'
    return env_info


if __name__ == '__main__':
    for name, val in collect_env().items():
        print(f'{name}: {val}')
