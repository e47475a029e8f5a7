# Copyright (c) bevt contributors. All rights reserved.
"""Preflight: everything a run needs, checked before anything is built.

``tools/train.py`` and ``tools/test.py`` call :func:`run_preflight` after
the config is merged with the command line and before the runner builds the
datasets and the model. It reports **every** problem in one message, each
with the config key, the path and how to get it:

- the annotation list, data root and data prefix of every loader the run
  uses (``train_dataloader``, ``val_dataloader`` when validating, the
  loaders named in ``train_cfg.other_loaders`` such as ``img_dataloader``;
  ``test_dataloader`` for a test), through dataset wrappers, and that the
  first entry of each list exists under its data prefix;
- checkpoint files: ``pretrained`` and ``init_cfg=dict(type='Pretrained')``
  entries anywhere in ``model`` (the tokenizer weights of
  ``model.target_generator`` among them), ``load_from``, an explicit
  ``--resume PATH`` and the checkpoint given to ``tools/test.py``;
- values that would only fail later: batch sizes and worker counts, the
  tokenizer view size against the token grid times the tokenizer's
  downsampling, and the mask budgets against the grid (the last two in
  :mod:`.pipeline_checks`).

Loaders inside ``custom_hooks`` (e.g. the sets of a kNN monitor) are
optional: their problems are reported as warnings and do not stop the run.
Remote paths (``scheme://...``) are not checked. Nothing is built: the
model and transform classes are only looked up for their defaults.
"""
import functools
import os
import os.path as osp
import sys
import time
from typing import Any, Iterator, List, NamedTuple, Optional, Tuple

from .pipeline_checks import (check_pipeline, is_int, positive_int,
                              tokenizer_downsample, type_name)

#: Where each kind of data comes from: (a word of the path, the script that
#: writes its lists, the section of docs/data_preparation.md)
DATA_SOURCES = (
    ('kinetics', 'tools/data/kinetics400.py', 'Kinetics-400'),
    ('imagenet', 'tools/data/imagenet.py', 'ImageNet-1K'),
    ('sthv2', 'tools/data/sthv2.py', 'Something-Something-v2'),
    ('diving48', 'tools/data/diving48.py', 'Diving48'),
)
#: Environment variable of the process rank for each launcher
RANK_VARIABLES = dict(
    pytorch='RANK', slurm='SLURM_PROCID', mpi='OMPI_COMM_WORLD_RANK')
#: Seconds the other ranks wait before exiting on errors: the launchers
#: (torchrun, ``srun --kill-on-bad-exit``) kill every process when one fails,
#: and rank 0 must have printed the report by then
RANK_EXIT_DELAY_S = 5.0


class PreflightProblem(NamedTuple):
    """One problem found by :func:`preflight_problems`.

    Args:
        key (str): The config key (e.g.
            ``'train_dataloader.dataset.ann_file'``) or command-line
            argument it concerns.
        message (str): What is wrong, with the path or value.
        hint (str): How to fix it. Defaults to ''.
        warning (bool): True for an optional part (the run goes on without
            it), False for an error. Defaults to False.
    """
    key: str
    message: str
    hint: str = ''
    warning: bool = False


class PreflightError(RuntimeError):
    """The run cannot work; the message lists every problem.

    Args:
        problems (list[PreflightProblem]): Every problem found (errors and
            warnings).
        config (str, optional): The config file, named in the message.
            Defaults to None.
    """

    def __init__(self,
                 problems: List[PreflightProblem],
                 config: Optional[str] = None) -> None:
        self.problems = list(problems)
        super().__init__(format_preflight(self.problems, config))


def _is_remote(path: Any) -> bool:
    """Whether ``path`` is a URL-like ``scheme://...`` path."""
    return '://' in str(path)


def _local(path: Any) -> str:
    """``path`` with ``~`` expanded."""
    return osp.expanduser(str(path))


def _join(root: Any, path: Any) -> str:
    """``path`` joined to ``root`` as mmengine's ``BaseDataset`` does
    (relative paths only, and only with a non-empty root)."""
    path = str(path)
    if root and not osp.isabs(path) and not _is_remote(path):
        return osp.join(str(root), path)
    return path


def _data_hint(path: str, is_list: bool) -> str:
    """How to get the annotation list (``is_list``) or data folder
    ``path``."""
    lowered = path.lower()
    if 'synthetic' in lowered:
        return ('generate the data with `python tools/data/synthetic_motion'
                '.py DIR` and set BEVT_DATA=DIR (README, "Data")')
    for word, script, section in DATA_SOURCES:
        if word in lowered:
            where = f'docs/data_preparation.md, "{section}"'
            if is_list:
                return f'write it with {script} ({where})'
            return f'download and prepare the data as in {where}'
    return ('see docs/data_preparation.md for the lists and the layout the '
            'configs expect')


def _first_entry(ann_file: str) -> Tuple[Optional[str], Optional[str]]:
    """The first non-empty line of a text list, or an error message."""
    try:
        with open(ann_file, encoding='utf-8') as f:
            for line in f:
                if line.strip():
                    return line.strip(), None
    except (OSError, UnicodeDecodeError) as err:
        return None, f'cannot be read ({type(err).__name__}: {err})'
    return None, 'is empty'


def _entry_candidates(line: str) -> List[str]:
    """The paths a list line may name: the first field (mmaction2's
    ``path label`` lines), everything before the last field (mmpretrain's
    ``rsplit``) and the whole line (a list without labels)."""
    fields = line.split()
    candidates = [fields[0]]
    if len(fields) > 1:
        candidates.append(line.rsplit(None, 1)[0])
    candidates.append(line)
    return list(dict.fromkeys(candidates))


def _datasets(dataset: Any, key: str) -> Iterator[Tuple[str, dict]]:
    """``(key, dataset config)`` of every leaf dataset, through wrappers
    (``dataset.dataset``, ``dataset.datasets`` lists)."""
    if not isinstance(dataset, dict):
        return
    inner = dataset.get('dataset')
    many = dataset.get('datasets')
    if isinstance(inner, dict):
        yield from _datasets(inner, f'{key}.dataset')
    elif isinstance(many, (list, tuple)):
        for idx, item in enumerate(many):
            yield from _datasets(item, f'{key}.datasets.{idx}')
    else:
        yield key, dataset


class _Checker:
    """Collects the problems of one config (see :func:`preflight_problems`)."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.problems: List[PreflightProblem] = []
        self._tokenizer: Optional[Tuple[Optional[int], str]] = None

    def tokenizer(self) -> Tuple[Optional[int], str]:
        """:func:`tokenizer_downsample` of the config's model, looked up
        once."""
        if self._tokenizer is None:
            self._tokenizer = tokenizer_downsample(self.cfg.get('model'))
        return self._tokenizer

    def add(self,
            key: str,
            message: str,
            hint: str = '',
            warning: bool = False) -> None:
        """Record one problem (see :class:`PreflightProblem`)."""
        self.problems.append(PreflightProblem(key, message, hint, warning))

    # files --------------------------------------------------------------
    def checkpoint(self,
                   key: str,
                   path: Any,
                   hint: str,
                   what: str = 'checkpoint') -> None:
        """Report ``path`` if it is a local file that does not exist."""
        if not path or not isinstance(path, str) or _is_remote(path):
            return
        if not osp.isfile(_local(path)):
            self.add(key, f'the {what} {path} does not exist', hint)

    def model_files(self, model: Any, key: str = 'model') -> None:
        """Every ``pretrained`` path and ``Pretrained`` init_cfg in
        ``model``."""
        if isinstance(model, (list, tuple)):
            for idx, item in enumerate(model):
                self.model_files(item, f'{key}.{idx}')
            return
        if not isinstance(model, dict):
            return
        for name, value in model.items():
            where = f'{key}.{name}'
            if name == 'init_cfg':
                self.init_cfg_files(value, where)
            elif name == 'pretrained' and isinstance(value, str):
                self.checkpoint(where, value,
                                _checkpoint_hint(where, self.cfg.get('model')))
            else:
                self.model_files(value, where)

    def init_cfg_files(self, init_cfg: Any, key: str) -> None:
        """The checkpoint of every ``Pretrained`` entry of an ``init_cfg``
        (a dict or a list of dicts)."""
        entries = [
            (f'{key}.{idx}', entry) for idx, entry in enumerate(init_cfg)
        ] if isinstance(init_cfg, (list, tuple)) else [(key, init_cfg)]
        for where, entry in entries:
            if isinstance(entry, dict) and entry.get('type') == 'Pretrained':
                where = f'{where}.checkpoint'
                is_tokenizer = where.startswith('model.target_generator.')
                self.checkpoint(
                    where,
                    entry.get('checkpoint'),
                    _checkpoint_hint(where, self.cfg.get('model')),
                    what='tokenizer weights file'
                    if is_tokenizer else 'checkpoint')

    # loaders ------------------------------------------------------------
    def loader(self, key: str, loader: Any, optional: bool = False) -> None:
        """The values, files and pipelines of one dataloader config."""
        if loader is None:
            self.add(
                key,
                'the config has no dataloader here, and the run needs one',
                warning=optional)
            return
        if not isinstance(loader, dict):
            self.add(
                key, f'expected a dataloader dict, got '
                f'{type(loader).__name__}',
                warning=optional)
            return
        batch_size = loader.get('batch_size', 1)
        if not positive_int(batch_size):
            self.add(
                f'{key}.batch_size',
                f'batch_size must be a positive int, got {batch_size!r}',
                warning=optional)
        workers = loader.get('num_workers', 0)
        if not is_int(workers) or workers < 0:
            self.add(
                f'{key}.num_workers', 'num_workers must be a non-negative '
                f'int, got {workers!r}',
                warning=optional)
        elif workers == 0 and loader.get('persistent_workers'):
            self.add(
                f'{key}.persistent_workers', 'persistent_workers=True needs '
                'num_workers > 0 (the DataLoader refuses it)',
                hint=f'set {key}.persistent_workers=False',
                warning=optional)
        if 'dataset' not in loader:
            self.add(key, 'the dataloader has no dataset', warning=optional)
            return
        for where, dataset in _datasets(loader['dataset'], f'{key}.dataset'):
            self.dataset_files(where, dataset, optional)
            check_pipeline(
                functools.partial(self.add, warning=optional), where,
                dataset.get('pipeline'), self.tokenizer)

    def dataset_files(self, key: str, dataset: dict, optional: bool) -> None:
        """The list, data root and data prefix of one dataset (joined as
        mmengine's ``BaseDataset`` joins them)."""
        data_root = dataset.get('data_root') or ''
        if data_root and not _is_remote(data_root) and not osp.isdir(
                _local(data_root)):
            self.add(
                f'{key}.data_root',
                f'the data root {data_root} does not exist',
                _data_hint(str(data_root), False),
                warning=optional)
            return  # every path below is inside it
        prefix = dataset.get('data_prefix')
        if isinstance(prefix, str):  # mmpretrain: dict(img_path=prefix)
            prefixes = [(f'{key}.data_prefix', prefix)]
        elif isinstance(prefix, dict):
            prefixes = [(f'{key}.data_prefix.{name}', value)
                        for name, value in prefix.items()
                        if isinstance(value, str)]
        else:
            prefixes = []
        folders, folder_missing = [], False
        for where, value in prefixes:
            folder = _join(data_root, value)
            if not folder or _is_remote(folder):
                continue
            if osp.isdir(_local(folder)):
                folders.append(folder)
            else:
                folder_missing = True
                self.add(
                    where,
                    f'the data folder {folder} does not exist',
                    _data_hint(folder, False),
                    warning=optional)
        ann_file = dataset.get('ann_file')
        if not ann_file or not isinstance(ann_file, str):
            return
        ann_file = _join(data_root, ann_file)
        if _is_remote(ann_file):
            return
        if not osp.isfile(_local(ann_file)):
            self.add(
                f'{key}.ann_file',
                f'the annotation list {ann_file} does not exist',
                _data_hint(ann_file, True),
                warning=optional)
            return
        if ann_file.endswith('.json') or folder_missing:
            return  # not a text list, or its folder is already reported
        line, error = _first_entry(_local(ann_file))
        if line is None:
            self.add(
                f'{key}.ann_file',
                f'the annotation list {ann_file} {error}',
                _data_hint(ann_file, True),
                warning=optional)
            return
        roots = folders or [data_root or '']
        candidates = _entry_candidates(line)
        if any(
                osp.exists(_local(_join(root, path))) for root in roots
                for path in candidates):
            return
        first = _join(roots[0], candidates[0])
        self.add(
            f'{key}.ann_file',
            f'the first entry of {ann_file}, {candidates[0]!r}, is not at '
            f'{first}', 'check the data prefix of the list (the path of '
            'each entry is relative to it; docs/data_preparation.md, '
            '"What the configs expect")',
            warning=optional)

    def loaders(self, mode: str) -> None:
        """Every loader the run builds, and those of ``custom_hooks``."""
        cfg = self.cfg
        if mode == 'test':
            self.loader('test_dataloader', cfg.get('test_dataloader'))
        else:
            self.loader('train_dataloader', cfg.get('train_dataloader'))
            if cfg.get('val_cfg') is not None and cfg.get('val_dataloader'):
                self.loader('val_dataloader', cfg.get('val_dataloader'))
            train_cfg = cfg.get('train_cfg') or {}
            others = train_cfg.get('other_loaders') or []
            for idx, other in enumerate(others):
                if isinstance(other, str):
                    if isinstance(cfg.get(other), dict):
                        self.loader(other, cfg.get(other))
                    else:
                        self.add(
                            f'train_cfg.other_loaders.{idx}',
                            f'names {other!r}, but the config has no '
                            f'dataloader dict under {other!r}')
                else:
                    self.loader(f'train_cfg.other_loaders.{idx}', other)
        for idx, hook in enumerate(cfg.get('custom_hooks') or []):
            if not isinstance(hook, dict):
                continue
            for name, value in hook.items():
                if isinstance(value, dict) and 'dataset' in value:
                    self.loader(
                        f'custom_hooks.{idx}.{name}', value, optional=True)


def _checkpoint_hint(key: str, model: Any) -> str:
    """How to get the checkpoint at config key ``key``."""
    override = f'or pass --cfg-options {key}=PATH'
    if key.startswith('model.target_generator.'):
        tokenizer = (model or {}).get('target_generator') or {}
        if 'DALLE' in type_name(tokenizer).upper().replace('-', ''):
            return ('convert OpenAI\'s encoder.pkl with `python tools/'
                    'model_converters/dalle_openai.py encoder.pkl '
                    'checkpoints/dalle_encoder.pth --trust-pickle` (README, '
                    f'"Pretraining"), {override}')
        return f'see configs/bevt/README.md, {override}'
    if key == 'model.backbone.pretrained':
        return ('the stage-1 image-stream checkpoint: train stage 1 (README, '
                '"Pretraining") or convert the official one with tools/'
                f'model_converters/bevt_official.py; {override} (None '
                'starts from random weights)')
    if key.startswith('model.backbone.init_cfg'):
        return ('a BEVT pretraining checkpoint converted with `python tools/'
                'model_converters/bevt_to_mmaction.py SRC DST` (README, '
                f'"Fine-tuning"), {override} (or init_cfg=None to train '
                'from scratch)')
    return override


def preflight_problems(cfg: Any,
                       mode: str = 'train',
                       resume: Optional[str] = None,
                       checkpoint: Optional[str] = None
                       ) -> List[PreflightProblem]:
    """Find every problem that would stop a run of ``cfg``, building
    nothing.

    Args:
        cfg (mmengine.config.Config): The config, merged with the command
            line.
        mode (str): ``'train'`` (the training and validation loaders and
            ``train_cfg.other_loaders``) or ``'test'`` (the test loader).
            Defaults to ``'train'``.
        resume (str, optional): The checkpoint given to ``--resume PATH``
            (None for no or automatic resumption). Defaults to None.
        checkpoint (str, optional): The checkpoint given to
            ``tools/test.py``. Defaults to None.

    Returns:
        list[PreflightProblem]: The problems, in config order; those with
        ``warning=True`` concern optional parts (``custom_hooks``).
    """
    if mode not in ('train', 'test'):
        raise ValueError(f'Invalid mode: {mode!r}; expected train or test')
    checker = _Checker(cfg)
    checker.model_files(cfg.get('model'))
    if resume:
        checker.checkpoint(
            '--resume', resume,
            'a checkpoint written by a run of this config (e.g. WORK_DIR/'
            'epoch_N.pth); a bare --resume takes the latest one of the work '
            'directory')
    if checkpoint:
        checker.checkpoint('CHECKPOINT', checkpoint,
                           'the checkpoint to test (the second argument)')
    load_from = cfg.get('load_from')
    if load_from not in (resume, checkpoint):
        checker.checkpoint(
            'load_from', load_from, 'a checkpoint of this model, or pass '
            '--cfg-options load_from=None')
    checker.loaders(mode)
    return checker.problems


def format_preflight(problems: List[PreflightProblem],
                     config: Optional[str] = None) -> str:
    """The report of :func:`preflight_problems`: errors first, then warnings.

    Args:
        problems (list[PreflightProblem]): The problems.
        config (str, optional): The config file, named in the first line.
            Defaults to None.

    Returns:
        str: One message with every problem, its key and its fix.
    """
    errors = [p for p in problems if not p.warning]
    warnings = [p for p in problems if p.warning]
    name = config or 'the config'
    lines = []
    if errors:
        lines.append(f'{name} cannot run: {len(errors)} problem'
                     f'{"s" if len(errors) != 1 else ""} found before '
                     'building anything:')
    else:
        lines.append(f'preflight of {name}: OK')
    for idx, problem in enumerate(errors, 1):
        lines.append(f'  {idx}. {problem.key}: {problem.message}')
        if problem.hint:
            lines.append(f'     -> {problem.hint}')
    if warnings:
        lines.append(f'{len(warnings)} warning'
                     f'{"s" if len(warnings) != 1 else ""} (optional parts '
                     'that turn themselves off):')
        for problem in warnings:
            lines.append(f'  - {problem.key}: {problem.message}')
            if problem.hint:
                lines.append(f'     -> {problem.hint}')
    return '\n'.join(lines)


def is_launch_rank0(launcher: Any) -> bool:
    """Whether this process is rank 0 of its launcher (read from the
    environment: the process group does not exist yet)."""
    variable = RANK_VARIABLES.get(str(launcher))
    return variable is None or os.environ.get(variable, '0') == '0'


def run_preflight(cfg: Any,
                  config: Optional[str] = None,
                  mode: str = 'train',
                  resume: Optional[str] = None,
                  checkpoint: Optional[str] = None,
                  check_only: bool = False) -> None:
    """The tools' preflight: report and stop, or go on.

    Only rank 0 (by ``cfg.launcher``) prints; every rank stops alike. With
    errors, each rank exits with status 1 (rank 0 prints the report to
    stderr; the others exit :data:`RANK_EXIT_DELAY_S` later, so that the
    launcher does not kill rank 0 before it has printed). Without errors,
    warnings are printed and the run goes on, except with ``check_only``,
    which prints the report and exits with 0.

    Args:
        cfg (mmengine.config.Config): The merged config.
        config (str, optional): The config file, named in the report.
            Defaults to None.
        mode (str): ``'train'`` or ``'test'``. Defaults to ``'train'``.
        resume (str, optional): The ``--resume PATH`` file. Defaults to
            None.
        checkpoint (str, optional): The checkpoint to test. Defaults to
            None.
        check_only (bool): Stop after the preflight (``--check``).
            Defaults to False.

    Raises:
        SystemExit: With status 1 when a problem is an error; with status
            0 after a successful ``check_only``.
    """
    problems = preflight_problems(
        cfg, mode, resume=resume, checkpoint=checkpoint)
    main = is_launch_rank0(cfg.get('launcher', 'none'))
    if any(not problem.warning for problem in problems):
        if not main:
            time.sleep(RANK_EXIT_DELAY_S)
            raise SystemExit(1)
        raise SystemExit('error: ' + str(PreflightError(problems, config)))
    if main and (problems or check_only):
        print(
            format_preflight(problems, config),
            file=sys.stdout if check_only else sys.stderr,
            flush=True)
    if check_only:
        raise SystemExit(0)
