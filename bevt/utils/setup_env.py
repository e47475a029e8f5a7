# Copyright (c) bevt contributors. All rights reserved.
"""Environment set-up shared by ``tools/train.py`` and ``tools/test.py``."""
import os

import torch
import torch.distributed as torch_dist
from mmengine.config import Config


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Let ``--launcher pytorch`` run as CPU processes when there is no GPU.

    mmengine 0.10.7 assumes CUDA for distributed runs: its PyTorch launcher
    calls ``torch.cuda.set_device`` and the runner wraps the model with
    ``device_ids=[LOCAL_RANK]``, which DDP rejects for a CPU module. Without
    a GPU this initialises the process group with gloo itself (the runner
    then skips its own initialisation) and asks for a DDP wrapper with
    ``device_ids=None``. With a GPU, or without a launcher, nothing changes.

    Args:
        cfg (Config): The config; ``env_cfg.dist_cfg`` and
            ``model_wrapper_cfg`` are updated in place.
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Returns:
        bool: Whether a CPU process group was set up.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return False
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel')
    wrapper['device_ids'] = None
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters',
                       cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
    if launcher == 'pytorch' and not torch_dist.is_initialized():
        torch_dist.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']))
    return True


def shutdown_distributed() -> None:
    """Leave the process group cleanly at the end of a tool.

    mmengine never destroys the default process group. Under gloo a rank
    that exits while another still finishes its last collective (or tears
    the group down in its destructor) can abort with "terminate called
    without an active exception"; a final barrier and an explicit
    ``destroy_process_group`` avoid that. Does nothing without a group.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()
