# Copyright (c) bevt contributors. All rights reserved.
"""A dataset wrapper that replaces unreadable samples by random others.

A missing, empty, truncated or undecodable video (or image) makes
mmaction2's loading transforms raise (``DecordInit`` has no error handling),
and one such file stops a multi-day run. :class:`BEVTTolerantDataset` catches
the error, loads another random sample of the same dataset instead (at most
``max_retries`` times) and writes the files it skipped into the returned
sample, where :class:`~bevt.engine.hooks.BEVTSkippedFilesHook` finds them
in the main process, even when the sample was loaded in a DataLoader worker.
"""
import copy
from typing import Any, List, Optional, Tuple, Union

import numpy as np
from mmengine.structures import BaseDataElement
from torch.utils.data import Dataset

from bevt.registry import DATASETS

#: Metainfo key (of the data sample) listing the files a sample replaced.
SKIPPED_FILES_KEY = 'skipped_files'
#: Metainfo key listing, in the same order, why each file was skipped.
SKIP_REASONS_KEY = 'skip_reasons'
#: ``data_info`` keys that name the file of a sample, in order of preference
#: (mmaction ``VideoDataset``, ``RawframeDataset``, mmpretrain datasets).
FILE_KEYS = ('filename', 'frame_dir', 'img_path', 'video_path', 'audio_path')
#: Longest reason kept per skipped file, in characters.
MAX_REASON_CHARS = 300


def describe_error(error: BaseException) -> str:
    """One short line naming an exception, e.g. ``'RuntimeError: ...'``.

    Args:
        error (BaseException): The exception.

    Returns:
        str: Type name and the first line of the message, at most
        :data:`MAX_REASON_CHARS` characters.
    """
    lines = str(error).strip().splitlines()
    message = lines[0].strip() if lines else ''
    text = f'{type(error).__name__}: {message}' if message else type(
        error).__name__
    if len(text) > MAX_REASON_CHARS:
        text = text[:MAX_REASON_CHARS - 3] + '...'
    return text


def attach_skipped(sample: Any, files: List[str], reasons: List[str]) -> Any:
    """Record skipped files in a sample, appending to any already there.

    The files go into the metainfo of the sample's data sample (the first
    one when ``data_samples`` is a list); a dict sample without data samples
    gets them as top-level keys, each a ``'\\n'``-joined string.

    Args:
        sample (Any): A sample as returned by a dataset, usually
            ``dict(inputs=..., data_samples=BaseDataElement)``.
        files (list[str]): Files that were skipped.
        reasons (list[str]): Why, one per file.

    Returns:
        Any: ``sample``, changed in place where possible.
    """
    if not files:
        return sample
    target = None
    if isinstance(sample, dict):
        data_samples = sample.get('data_samples')
        if isinstance(data_samples, (list, tuple)) and data_samples:
            data_samples = data_samples[0]
        if isinstance(data_samples, BaseDataElement):
            target = data_samples
    if target is not None:
        old_files = list(target.metainfo.get(SKIPPED_FILES_KEY, []))
        old_reasons = list(target.metainfo.get(SKIP_REASONS_KEY, []))
        target.set_metainfo({
            SKIPPED_FILES_KEY: old_files + list(files),
            SKIP_REASONS_KEY: old_reasons + list(reasons)
        })
    elif isinstance(sample, dict):
        # one string per sample: mmengine's collate functions transpose
        # lists, which would mix up the files of different samples
        for key, values in ((SKIPPED_FILES_KEY, files), (SKIP_REASONS_KEY,
                                                         reasons)):
            old = sample.get(key)
            sample[key] = '\n'.join(([old] if old else []) + list(values))
    return sample


@DATASETS.register_module()
class BEVTTolerantDataset(Dataset):
    """Replace samples that fail to load by random samples of the dataset.

    Part of `BEVT: BERT Pretraining of Video Transformers
    <https://arxiv.org/abs/2112.01529>`_'s data tooling: a missing, empty,
    truncated or undecodable file must not stop pretraining.

    ``dataset[i]`` loads sample ``i`` of the wrapped dataset. When that
    raises (decord, OpenCV, I/O, ``ValueError``, ... anything but
    ``MemoryError``) or returns ``None``, the file of sample ``i`` is
    recorded and another index, drawn with NumPy's global generator (under
    BEVT's loops seeded per sample, see :mod:`.per_sample_seed`), is tried,
    at most
    ``max_retries`` times; then a ``RuntimeError`` names every file tried.

    The returned sample lists the files it replaced in the metainfo of its
    data sample, under ``'skipped_files'`` (with ``'skip_reasons'``), so that
    :class:`~bevt.engine.hooks.BEVTSkippedFilesHook` can warn about them,
    count them in the training log and stop training when too many fail;
    this also works when samples are loaded in worker processes. Nothing is
    logged here: every worker would name its files on its own, and the
    logs of ranks other than 0 are not kept by default.

    Put this wrapper outermost (around ``RepeatDataset``, ``ConcatDataset``
    or a plain dataset): mmengine's wrappers only accept ``BaseDataset``
    instances. Other attributes (``test_mode``, ``get_cat_ids``, ...) are
    read from the wrapped dataset.

    Args:
        dataset (dict | Dataset): The dataset, or its config (built with
            ``DATASETS.build``, so in the current default scope).
        max_retries (int): How many other samples are tried before giving
            up on one index. Defaults to 10.
        lazy_init (bool): Whether to defer ``full_init`` of the wrapped
            dataset. Defaults to False.

    Example:
        >>> train_dataloader = dict(
        ...     dataset=dict(
        ...         type='BEVTTolerantDataset',
        ...         dataset=dict(type='VideoDataset', ann_file=..., ...)))
    """

    def __init__(self,
                 dataset: Union[dict, Dataset],
                 max_retries: int = 10,
                 lazy_init: bool = False) -> None:
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dataset)
        elif not isinstance(dataset, Dataset):
            raise TypeError('dataset must be a config dict or a Dataset, '
                            f'but got {type(dataset)}')
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError('max_retries must be a non-negative int, '
                             f'but got {max_retries!r}')
        self.dataset = dataset
        self.max_retries = max_retries
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        """dict: A copy of the wrapped dataset's meta information."""
        return copy.deepcopy(getattr(self.dataset, 'metainfo', {}))

    def full_init(self) -> None:
        """Fully initialise the wrapped dataset (load its annotations)."""
        if self._fully_initialized:
            return
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        self._fully_initialized = True

    def get_data_info(self, idx: int) -> dict:
        """Annotation of sample ``idx`` of the wrapped dataset.

        Args:
            idx (int): Index of the sample.

        Returns:
            dict: The annotation (``filename``, ``label``, ...).
        """
        return self.dataset.get_data_info(idx)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        # only reached for attributes this wrapper lacks; the guard keeps
        # copy/pickle (which probe before ``__init__`` ran) from recursing
        if name.startswith('__') or name == 'dataset':
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def file_of(self, idx: int) -> str:
        """Name the file of sample ``idx``, for messages.

        Args:
            idx (int): Index of the sample.

        Returns:
            str: The path from its annotation (``filename``, ``frame_dir``
            or ``img_path``), else ``'<sample {idx}>'``.
        """
        try:
            info = self.get_data_info(idx)
        except Exception:  # a name is all we need here
            info = None
        if isinstance(info, dict):
            for key in FILE_KEYS:
                if info.get(key):
                    return str(info[key])
        return f'<sample {idx}>'

    def _try_load(self, idx: int) -> Tuple[Optional[Any], str]:
        """Load sample ``idx``; return ``(sample, '')`` or
        ``(None, reason)``."""
        try:
            sample = self.dataset[idx]
        except MemoryError:
            raise
        except Exception as error:  # decord's DECORDError is no OSError
            return None, describe_error(error)
        if sample is None:
            return None, 'the dataset returned None'
        return sample, ''

    def __getitem__(self, idx: int) -> Any:
        """Load sample ``idx``, or a random replacement if it fails.

        Args:
            idx (int): Index of the sample.

        Returns:
            Any: The sample; if it replaces failed ones, its data sample's
            metainfo lists them under ``'skipped_files'`` and
            ``'skip_reasons'``.

        Raises:
            RuntimeError: If ``max_retries + 1`` samples in a row failed.
        """
        if not self._fully_initialized:
            self.full_init()
        files: List[str] = []
        reasons: List[str] = []
        for attempt in range(self.max_retries + 1):
            if attempt > 0:
                idx = int(np.random.randint(0, len(self)))
            sample, reason = self._try_load(idx)
            if sample is not None:
                return attach_skipped(sample, files, reasons)
            files.append(self.file_of(idx))
            reasons.append(reason)
        tried = '\n'.join(f'  {file}: {reason}'
                          for file, reason in zip(files, reasons))
        raise RuntimeError(
            f'{len(files)} samples in a row failed to load (max_retries='
            f'{self.max_retries}); most files of the dataset may be '
            f'unreadable, or the pipeline is broken. Files tried:\n{tried}\n'
            'List every unreadable file with '
            'tools/analysis_tools/check_videos.py.')

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(max_retries={self.max_retries}, '
                f'dataset={self.dataset!r})')
