# Copyright (c) bevt contributors. All rights reserved.
"""Checkpoints that survive a killed job, and the checkpoint to resume from.

- :class:`AtomicLocalBackend` (mmengine file backend ``'atomic_local'``,
  set in ``default_hooks.checkpoint.backend_args`` of the configs) writes a
  checkpoint to a temporary file in the same folder and renames it: a job
  killed while saving leaves the previous checkpoints and a stray
  ``*.pth.tmp-<pid>`` (removed when the same file is saved again), never a
  truncated file under the final name.
- :func:`find_resumable_checkpoint` is what ``tools/train.py --resume``
  (no path) resumes from: the checkpoint ``last_checkpoint`` names, else
  the newest ``epoch_*.pth`` / ``iter_*.pth``, skipping (and naming) any
  that cannot be read.
"""
import glob
import os
import os.path as osp
import zipfile
from typing import List, Optional, Tuple, Union

from mmengine.fileio import LocalBackend, register_backend
from mmengine.runner.checkpoint import find_latest_checkpoint

#: Suffix of a checkpoint being written (then the writer's pid).
PARTIAL_SUFFIX = '.tmp-'


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """mmengine's local backend, writing files by write-then-rename."""

    def put(self, obj: bytes, filepath: Union[str, os.PathLike]) -> None:
        """Write ``obj`` to ``filepath`` whole or not at all.

        Args:
            obj (bytes): The content.
            filepath (str | PathLike): The final path (folders are created).
        """
        filepath = str(filepath)
        os.makedirs(osp.dirname(osp.abspath(filepath)), exist_ok=True)
        for stray in glob.glob(glob.escape(filepath) + PARTIAL_SUFFIX + '*'):
            os.remove(stray)  # left by a writer that was killed
        partial = f'{filepath}{PARTIAL_SUFFIX}{os.getpid()}'
        try:
            with open(partial, 'wb') as file:
                file.write(obj)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, filepath)
        finally:
            if osp.exists(partial):
                os.remove(partial)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, os.PathLike],
                 encoding: str = 'utf-8') -> None:
        """Write text to ``filepath`` whole or not at all."""
        self.put(obj.encode(encoding), filepath)


def checkpoint_problem(path: str) -> Optional[str]:
    """Why the checkpoint at ``path`` cannot be loaded, or None.

    Reads the zip directory of ``torch.save``'s format and checks the CRC
    of its pickle (the tensors' data is not read): a truncated or
    overwritten file fails here.

    Args:
        path (str): A checkpoint file.

    Returns:
        str | None: The reason, e.g. ``'truncated or not a torch
        checkpoint (File is not a zip file)'``.
    """
    if not osp.isfile(path):
        return 'no such file'
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith('data.pkl')]
            if not pickles:
                return 'no data.pkl in the archive'
            archive.read(pickles[0])  # raises on a CRC mismatch
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        return f'truncated or not a torch checkpoint ({error})'
    return None


def find_resumable_checkpoint(work_dir: str
                              ) -> Tuple[Optional[str], List[Tuple[str, str]]]:
    """The newest readable checkpoint of a work directory.

    Candidates, in order: the file ``last_checkpoint`` names, then every
    ``epoch_*.pth`` and ``iter_*.pth`` of ``work_dir``, newest first.

    Args:
        work_dir (str): The run's work directory.

    Returns:
        tuple: (path or None, [(unreadable path, reason), ...]) for the
        candidates newer than the one returned.
    """
    named = find_latest_checkpoint(work_dir)  # mmengine: last_checkpoint
    candidates = [named] if named else []
    found = glob.glob(osp.join(work_dir, 'epoch_*.pth')) + glob.glob(
        osp.join(work_dir, 'iter_*.pth'))
    candidates += sorted(found, key=osp.getmtime, reverse=True)
    skipped, seen = [], set()
    for path in candidates:
        if osp.abspath(path) in seen:
            continue
        seen.add(osp.abspath(path))
        problem = checkpoint_problem(path)
        if problem is None:
            return path, skipped
        skipped.append((path, problem))
    return None, skipped
