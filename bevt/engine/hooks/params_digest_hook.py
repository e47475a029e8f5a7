# Copyright (c) bevt contributors. All rights reserved.
"""Write a digest of the model weights of every rank at the end of training.

Under DDP every rank must end with the same weights. This hook makes that
checkable: each rank writes ``params_rank{rank}.txt`` in the work directory
with the SHA-256 of its parameters and buffers (in ``state_dict`` order).
"""
import hashlib
import os.path as osp
from typing import Optional

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from bevt.registry import HOOKS


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of every tensor of ``model.state_dict()`` (names included).

    Args:
        model (nn.Module): The model (wrappers are unwrapped).

    Returns:
        str: The hex digest.
    """
    if is_model_wrapper(model):
        model = model.module
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@HOOKS.register_module()
class BEVTParamsDigestHook(Hook):
    """Each rank writes its weights' digest after training.

    Args:
        filename (str, optional): Name pattern in the work directory.
            Defaults to ``'params_rank{rank}.txt'``.
    """

    priority = 'LOWEST'

    def __init__(self, filename: Optional[str] = None) -> None:
        self.filename = filename or 'params_rank{rank}.txt'

    def after_train(self, runner) -> None:
        """Write the digest of this rank."""
        path = osp.join(runner.work_dir, self.filename.format(rank=get_rank()))
        with open(path, 'w') as f:
            f.write(weights_digest(runner.model) + '\n')
