# Copyright (c) bevt contributors. All rights reserved.
"""Test helpers: repository paths and fresh Python processes."""
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Any, Callable, Dict, List, Optional

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


def run_gloo_ranks(fn: Callable[[int], Any],
                   work_dir: str,
                   world_size: int = 2,
                   timeout: float = 120.) -> List[Any]:
    """Run ``fn(rank)`` in ``world_size`` forked processes that form a gloo
    process group, and return what each rank returned.

    Args:
        fn (callable): Called with the rank inside the process group; its
            result must be JSON-serialisable.
        work_dir (str): A folder for the group's rendezvous file and the
            results.
        world_size (int): Number of processes. Defaults to 2.
        timeout (float): Seconds each process may take (a rank hung in a
            collective is killed). Defaults to 120.

    Returns:
        list: The results, by rank.

    Raises:
        AssertionError: If a rank failed or hung (exit codes named).
    """
    import multiprocessing

    import torch.distributed as torch_dist

    def main(rank: int) -> None:
        torch_dist.init_process_group(
            'gloo',
            init_method=f'file://{osp.join(work_dir, "rendezvous")}',
            rank=rank,
            world_size=world_size)
        try:
            result = fn(rank)
            with open(osp.join(work_dir, f'rank{rank}.json'), 'w') as file:
                json.dump(result, file)
        finally:
            torch_dist.destroy_process_group()

    context = multiprocessing.get_context('fork')
    procs = [
        context.Process(target=main, args=(rank, ))
        for rank in range(world_size)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout)
    for proc in procs:
        if proc.is_alive():  # a rank hung in a collective
            proc.kill()
            proc.join()
    codes = [proc.exitcode for proc in procs]
    assert codes == [0] * world_size, f'exit codes of the ranks: {codes}'
    results = []
    for rank in range(world_size):
        with open(osp.join(work_dir, f'rank{rank}.json')) as file:
            results.append(json.load(file))
    return results
