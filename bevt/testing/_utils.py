# Copyright (c) bevt contributors. All rights reserved.
"""Test helpers: repository paths and fresh Python processes."""
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, Optional

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SMOKE_CONFIG = osp.join(
    REPO_ROOT, 'configs', 'bevt', 'smoke',
    'swin-nano-p244-w444_scratch_1xb8-8x2x1-12e_synthetic-motion.py')
# the two-stream BEVT pretraining of the nano Video Swin (videos + images)
PRETRAIN_SMOKE_CONFIG = osp.join(
    REPO_ROOT, 'configs', 'bevt', 'smoke',
    'bevt_swin-nano-p244-w444_1xb4-8x2x1-4e_synthetic-motion-shapes.py')


def config_path(relative: str) -> str:
    """Absolute path of ``configs/<relative>`` in the checkout."""
    return osp.join(REPO_ROOT, 'configs', relative)


def fresh_env(**overrides: Optional[str]) -> Dict[str, str]:
    """The current environment for a child process, start-up hook on.

    Args:
        **overrides: Variables to set; ``None`` removes a variable.

    Returns:
        dict: The environment.
    """
    env = dict(os.environ)
    env.pop('BEVT_NO_STARTUP_HOOK', None)
    env.setdefault('PYTHONWARNINGS', 'ignore')
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_python(code: str,
               python: str = sys.executable,
               cwd: Optional[str] = None,
               env: Optional[Dict[str, str]] = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter; capture its output as text.

    Args:
        code (str): The program.
        python (str): The interpreter. Defaults to the current one.
        cwd (str, optional): Working directory. Defaults to None.
        env (dict, optional): Environment. Defaults to :func:`fresh_env`.
        timeout (float): Seconds before the child is killed.

    Returns:
        subprocess.CompletedProcess: With ``returncode``, ``stdout`` and
        ``stderr``.
    """
    return subprocess.run([python, '-c', code],
                          cwd=cwd,
                          env=fresh_env() if env is None else env,
                          capture_output=True,
                          text=True,
                          timeout=timeout)
