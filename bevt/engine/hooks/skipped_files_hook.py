# Copyright (c) bevt contributors. All rights reserved.
"""Report the unreadable files that :class:`BEVTTolerantDataset` skipped."""
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Union

import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.structures import BaseDataElement

from bevt.datasets.tolerant_dataset import SKIP_REASONS_KEY, SKIPPED_FILES_KEY
from bevt.registry import HOOKS

DATA_BATCH = Optional[Union[dict, tuple, list]]
#: Key of the running count in the message hub (shown in the log line as
#: ``skipped_files``).
LOG_KEY = 'train/skipped_files'
CHECK_TOOL = 'tools/analysis_tools/check_videos.py'


def _split(value: Any) -> List[str]:
    """Flatten a list of names or ``'\\n'``-joined strings into names."""
    if value is None:
        return []
    if isinstance(value, str):
        return [line for line in value.split('\n') if line]
    if isinstance(value, (list, tuple)):
        return [name for item in value for name in _split(item)]
    return [str(value)]


def _num_items(inputs: Any) -> int:
    """Batch size of an ``inputs`` entry (list or stacked tensor)."""
    if isinstance(inputs, torch.Tensor):
        return int(inputs.shape[0]) if inputs.dim() > 0 else 1
    if isinstance(inputs, (list, tuple)):
        return len(inputs)
    if isinstance(inputs, dict) and inputs:
        return max(_num_items(value) for value in inputs.values())
    return 0


def _walk(obj: Any, found: Dict[str, Any]) -> None:
    """Add the samples and skipped files of ``obj`` to ``found``."""
    if isinstance(obj, BaseDataElement):
        found['samples'] += 1
        files = _split(obj.metainfo.get(SKIPPED_FILES_KEY))
        reasons = _split(obj.metainfo.get(SKIP_REASONS_KEY))
        found['files'] += files
        found['reasons'] += reasons + [''] * (len(files) - len(reasons))
    elif isinstance(obj, dict):
        before = found['samples']
        if SKIPPED_FILES_KEY in obj:
            files = _split(obj[SKIPPED_FILES_KEY])
            reasons = _split(obj.get(SKIP_REASONS_KEY))
            found['files'] += files
            found['reasons'] += reasons + [''] * (len(files) - len(reasons))
        for key, value in obj.items():
            if key not in (SKIPPED_FILES_KEY, SKIP_REASONS_KEY):
                _walk(value, found)
        if found['samples'] == before and 'inputs' in obj:
            found['samples'] += _num_items(obj['inputs'])
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            _walk(item, found)


def collect_skipped(data_batch: Any) -> Tuple[int, List[str], List[str]]:
    """Find the loaded samples and the skipped files in a data batch.

    Args:
        data_batch (dict | tuple | list): What the train loop gave the
            model: ``dict(inputs=..., data_samples=[...])``, or a tuple or
            list of such dicts (one per loader of a multi-loader loop).

    Returns:
        tuple[int, list[str], list[str]]: The number of samples in the
        batch, the skipped files and, in the same order, why each was
        skipped.
    """
    found: Dict[str, Any] = dict(samples=0, files=[], reasons=[])
    _walk(data_batch, found)
    return found['samples'], found['files'], found['reasons']


@HOOKS.register_module()
class BEVTSkippedFilesHook(Hook):
    """Warn about, count and limit the files a tolerant dataset skipped.

    Part of `BEVT: BERT Pretraining of Video Transformers
    <https://arxiv.org/abs/2112.01529>`_'s data tooling. Pairs with
    :class:`~bevt.datasets.BEVTTolerantDataset`, which replaces a sample
    whose file cannot be read and lists the file in the replacement's data
    sample (``metainfo['skipped_files']``); the hook reads those lists from
    each training batch, so it sees failures from DataLoader workers too.

    - Every unreadable file is named in exactly one warning of the log
      (files skipped on other ranks are gathered, so rank 0 names them all).
    - The running number of distinct unreadable files (all ranks) is
      written to the message hub as ``'train/skipped_files'``, so every
      training log line shows ``skipped_files: N``.
    - When more than ``max_skip_ratio`` of all loads failed (skipped /
      (skipped + loaded), over every rank, counted once at least
      ``min_samples`` loads were made), every rank raises a ``RuntimeError``
      at the same iteration that lists example files.

    The counts are summed across ranks with :func:`mmengine.dist.all_reduce`
    every ``interval`` iterations (three numbers); file names are gathered
    only when a rank found a new one. In validation and test loops the hook
    only warns about new files.

    Args:
        max_skip_ratio (float): Largest tolerated fraction of failed loads,
            in [0, 1]. Defaults to 0.05.
        min_samples (int): Loads (skipped + loaded, all ranks) before the
            ratio is checked. Defaults to 1000.
        interval (int): Sum the counts across ranks, log them and check the
            ratio every ``interval`` training iterations. Defaults to 1.
        max_examples (int): Files listed in the error. Defaults to 10.

    Example:
        >>> custom_hooks = [
        ...     dict(type='BEVTSkippedFilesHook', max_skip_ratio=0.01)]
    """

    priority = 'NORMAL'  # before LoggerHook (BELOW_NORMAL) writes the line

    def __init__(self,
                 max_skip_ratio: float = 0.05,
                 min_samples: int = 1000,
                 interval: int = 1,
                 max_examples: int = 10) -> None:
        if not 0 <= max_skip_ratio <= 1:
            raise ValueError('max_skip_ratio must be in [0, 1], but got '
                             f'{max_skip_ratio}')
        if min_samples < 0:
            raise ValueError(f'Invalid min_samples: {min_samples}')
        if interval < 1:
            raise ValueError(f'Invalid interval: {interval}')
        self.max_skip_ratio = max_skip_ratio
        self.min_samples = min_samples
        self.interval = interval
        self.max_examples = max_examples
        self.num_skipped = 0  # failed loads, all ranks, to the last sync
        self.num_loaded = 0  # samples in the batches, idem
        self.skipped_files: Set[str] = set()  # distinct, training, all ranks
        self.examples: List[Tuple[str, str]] = []  # first seen first
        self._named: Set[str] = set()  # files already named in a warning
        self._pending_skipped = 0  # this rank, since the last sync
        self._pending_loaded = 0
        self._pending_new: Dict[str, str] = {}  # file -> reason

    def _record(self, data_batch: DATA_BATCH) -> None:
        """Add a training batch to the pending counts of this rank."""
        num_samples, files, reasons = collect_skipped(data_batch)
        self._pending_loaded += num_samples
        self._pending_skipped += len(files)
        for file, reason in zip(files, reasons):
            if file not in self.skipped_files:
                self._pending_new.setdefault(file, reason)

    def _name(self, runner, items: Sequence[Tuple[str, str]],
              mode: str) -> None:
        """Warn once about each file of ``items`` not named before."""
        for file, reason in items:
            if file in self._named:
                continue
            self._named.add(file)
            because = f' ({reason})' if reason else ''
            runner.logger.warning(
                f'BEVTSkippedFilesHook: skipped unreadable file {file}'
                f'{because}; a random other sample of the {mode} dataset '
                'was used instead.')

    def _sync(self, runner) -> None:
        """Sum the pending counts over ranks and name the new files."""
        new = list(self._pending_new.items())
        counts = [self._pending_skipped, self._pending_loaded, len(new)]
        if dist.get_world_size() > 1:
            summed = torch.tensor(counts, dtype=torch.int64)
            dist.all_reduce(summed, op='sum')
            counts = [int(value) for value in summed.tolist()]
            if counts[2] > 0:
                new = [
                    item for part in dist.all_gather_object(new)
                    for item in part
                ]
        self.num_skipped += counts[0]
        self.num_loaded += counts[1]
        self._pending_skipped = self._pending_loaded = 0
        self._pending_new = {}
        fresh: Dict[str, str] = {}  # ranks may report the same file
        for file, reason in new:
            if file not in self.skipped_files:
                fresh.setdefault(file, reason)
        self.skipped_files.update(fresh)
        self.examples.extend(fresh.items())
        self._name(runner, list(fresh.items()), 'train')

    def _check(self) -> None:
        """Raise if too large a fraction of the loads failed."""
        attempts = self.num_skipped + self.num_loaded
        if attempts == 0 or attempts < self.min_samples:
            return
        ratio = self.num_skipped / attempts
        if ratio <= self.max_skip_ratio:
            return
        shown = self.examples[:self.max_examples]
        lines = '\n'.join(f'  {file}' + (f' ({reason})' if reason else '')
                          for file, reason in shown)
        more = len(self.examples) - len(shown)
        more_text = (f'  ... and {more} more (each named in a warning of '
                     'the log)\n') if more > 0 else ''
        raise RuntimeError(
            f'Too many unreadable files: {self.num_skipped} of {attempts} '
            f'sample loads ({ratio:.1%}) failed, more than max_skip_ratio='
            f'{self.max_skip_ratio:.1%} of BEVTSkippedFilesHook. '
            f'{len(self.skipped_files)} distinct files so far, e.g.:\n'
            f'{lines}\n'
            f'{more_text}'
            f'List all of them with `python {CHECK_TOOL} ANN_FILE '
            '--data-prefix DATA_DIR --output bad.txt`, then fix or remove '
            'them from the annotation file (or raise max_skip_ratio).')

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        """Count the batch; sync, log and check every ``interval`` iters.

        Args:
            runner (Runner): The runner.
            batch_idx (int): Index of the batch in the epoch.
            data_batch (dict | tuple | list, optional): The batch.
            outputs (dict, optional): The model's outputs.
        """
        self._record(data_batch)
        if self.every_n_train_iters(runner, self.interval):
            self._sync(runner)
            self._check()
        runner.message_hub.update_scalar(LOG_KEY, len(self.skipped_files))

    def _after_eval_iter(self, runner, data_batch: DATA_BATCH,
                         mode: str) -> None:
        """Name new files of a validation or test batch (this rank)."""
        _, files, reasons = collect_skipped(data_batch)
        self._name(runner, list(zip(files, reasons)), mode)

    def after_val_iter(self,
                       runner,
                       batch_idx: int,
                       data_batch: DATA_BATCH = None,
                       outputs: Optional[Sequence] = None) -> None:
        """Warn about files skipped in a validation batch.

        Args:
            runner (Runner): The runner.
            batch_idx (int): Index of the batch.
            data_batch (dict | tuple | list, optional): The batch.
            outputs (Sequence, optional): The model's outputs.
        """
        self._after_eval_iter(runner, data_batch, 'val')

    def after_test_iter(self,
                        runner,
                        batch_idx: int,
                        data_batch: DATA_BATCH = None,
                        outputs: Optional[Sequence] = None) -> None:
        """Warn about files skipped in a test batch.

        Args:
            runner (Runner): The runner.
            batch_idx (int): Index of the batch.
            data_batch (dict | tuple | list, optional): The batch.
            outputs (Sequence, optional): The model's outputs.
        """
        self._after_eval_iter(runner, data_batch, 'test')
