# Copyright (c) bevt contributors. All rights reserved.
"""BEVT's joint training loops: one batch of every source per iteration.

mmaction2's ``MultiLoaderEpochBasedTrainLoop`` ends an epoch at the
*shortest* loader and restarts every loader each epoch. BEVT's official
runner defines the epoch by the primary (video) loader and lets the other
loaders (images) cycle: each iteration takes one batch from every loader and
makes one ``train_step`` on the summed loss. These loops do that (and
:class:`BEVTEpochBasedTrainLoop` the same for one loader: stage 1,
fine-tuning), and add what long runs need:

- every loader has its own sampler, re-seeded (``set_epoch``) at each epoch
  of the loop and at each restart of a secondary loader, so the image order
  changes every pass;
- with ``reproducible=True`` (the default) every sample is drawn from its
  own seed (:mod:`bevt.datasets.per_sample_seed`: the run's seed, the
  sampler epoch or pass, the sample index) and the model's random draws of
  each iteration (drop path) from ``(seed, iteration)``; so a sample's
  augmentation and masks depend neither on ``num_workers`` /
  ``persistent_workers`` nor on the rank that loads it, and a run resumed
  from an epoch or an iteration checkpoint gives the batches, masks and
  losses of an uninterrupted one. Resuming in the middle of an epoch skips
  the batches already trained in it, in every loader, without loading them;
- a non-finite loss stops training with a clear message (``'raise'``) or
  skips the optimizer step on every rank (``'skip'``) instead of silently
  writing NaN into the weights.

The other loaders are given in ``train_cfg.other_loaders``, each as the
name of a top-level config key (``'img_dataloader'``: a dict that child
configs and ``--cfg-options img_dataloader.batch_size=...`` merge into, as
``train_dataloader``), as a dataloader config or as a ``DataLoader``.
"""
import functools
import gc
import logging
from typing import Dict, Iterator, List, Optional, Sequence, Union

import torch
from mmengine.dist import all_reduce, get_rank, get_world_size
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator
from mmengine.runner.utils import set_random_seed
from torch.utils.data import DataLoader

from bevt.datasets.per_sample_seed import (SeededDataset, mix_seed,
                                           seed_per_sample, seeded_sampler)
from bevt.registry import LOOPS

NONFINITE_POLICIES = ('raise', 'skip')


def _set_epoch(loader: DataLoader, epoch: int) -> None:
    sampler = seeded_sampler(loader) or getattr(loader, 'sampler', None)
    if hasattr(sampler, 'set_epoch'):
        sampler.set_epoch(epoch)
    batch_sampler = getattr(loader, 'batch_sampler', None)
    if hasattr(batch_sampler, 'set_epoch'):  # e.g. grouped samplers
        batch_sampler.set_epoch(epoch)


def _iterate_from(loader: DataLoader, batches: int) -> Iterator:
    """An iterator over ``loader`` that starts after ``batches`` batches.

    With per-sample seeds and a fixed batch size the skipped samples are
    left out by the sampler, unloaded; else the batches are loaded and
    dropped.
    """
    sampler = seeded_sampler(loader)
    if batches and sampler is not None and loader.batch_size is not None:
        sampler.skip_next(batches * loader.batch_size)
        return iter(loader)
    iterator = iter(loader)
    for _ in range(batches):
        next(iterator)
    return iterator


class _CyclingLoader:
    """Endless iterator over a loader; each pass gets its own sampler epoch.

    Pass ``k`` of loop epoch ``e`` uses the sampler epoch
    ``e * PASS_STRIDE + k``: no two passes share an order or (with
    per-sample seeds) a random draw, and the value depends on nothing but
    (e, k), so a resumed run draws the same batches.

    Args:
        loader (DataLoader): The loader.
    """

    PASS_STRIDE = 1_000_000

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader
        self.epoch = 0
        self.passes = 0
        self._iterator: Optional[Iterator] = None

    def _start_pass(self, skip: int = 0) -> None:
        _set_epoch(self.loader, self.epoch * self.PASS_STRIDE + self.passes)
        self._iterator = _iterate_from(self.loader, skip)

    def restart(self, epoch: int, done: int = 0) -> None:
        """Start loop epoch ``epoch``, after its first ``done`` batches."""
        self.epoch = epoch
        self.passes, skip = divmod(done, len(self.loader))
        self._start_pass(skip)

    def __next__(self):
        if self._iterator is None:
            self.restart(self.epoch)
        try:
            return next(self._iterator)
        except StopIteration:
            self.passes += 1
            self._start_pass()
            return next(self._iterator)


def _loader_from_config(runner, key: str) -> dict:
    """The dataloader config at top-level key ``key`` of the run's config.

    Args:
        runner (Runner): The runner (``runner.cfg`` is the whole config).
        key (str): E.g. ``'img_dataloader'``.

    Returns:
        dict: The dataloader config.
    """
    loader = (runner.cfg or {}).get(key)
    if not isinstance(loader, dict):
        raise ValueError(f'train_cfg.other_loaders names {key!r}, but the '
                         f'config has no dataloader dict under {key!r} (got '
                         f'{type(loader).__name__})')
    return loader


class _MultiSourceMixin:
    """What the epoch- and iteration-based loops share."""

    def _setup_sources(self, runner,
                       other_loaders: Sequence[Union[str, Dict, DataLoader]],
                       nonfinite_loss: str, reproducible: bool) -> None:
        if nonfinite_loss not in NONFINITE_POLICIES:
            raise ValueError(f'train_cfg.nonfinite_loss must be one of '
                             f'{NONFINITE_POLICIES}, got {nonfinite_loss!r}')
        if not isinstance(other_loaders, (list, tuple)):
            raise TypeError('train_cfg.other_loaders must be a list of '
                            'config keys or dataloaders, got '
                            f'{type(other_loaders)}')
        diff_rank_seed = runner._randomness_cfg.get('diff_rank_seed', False)
        self.other_loaders: List[DataLoader] = []
        for loader in other_loaders:
            if isinstance(loader, str):
                loader = _loader_from_config(runner, loader)
            if isinstance(loader, dict):
                loader = runner.build_dataloader(
                    loader, seed=runner.seed, diff_rank_seed=diff_rank_seed)
            self.other_loaders.append(loader)
        if reproducible:
            self.dataloader = seed_per_sample(self.dataloader, runner.seed)
            self.other_loaders = [
                seed_per_sample(loader, runner.seed)
                for loader in self.other_loaders
            ]
        self.cycles = [_CyclingLoader(loader) for loader in self.other_loaders]
        self._built_seed = int(runner.seed)
        self.nonfinite_loss = nonfinite_loss
        self.reproducible = reproducible
        self.nonfinite_steps = 0

    def _use_run_seed(self) -> None:
        """After a resume that changed the run's seed (mmengine takes the
        checkpoint's, after the loaders were built with the command line's),
        give it to the per-sample seeds and the samplers' shuffles (before
        any worker starts)."""
        seed = int(self.runner.seed)
        if seed == self._built_seed:
            return
        for loader in (self.dataloader, *self.other_loaders):
            sampler = seeded_sampler(loader)
            if sampler is not None and hasattr(sampler.sampler, 'seed'):
                sampler.sampler.seed = seed  # mmengine's DefaultSampler
            if isinstance(loader.dataset, SeededDataset):
                loader.dataset.seed = seed
        self._built_seed = seed

    def _seed_iteration(self) -> None:
        """Seed the main process's generators from (seed, iteration[, rank
        with ``diff_rank_seed``]), for the model's random draws."""
        if not self.reproducible:
            return
        rank = get_rank() if self.runner._randomness_cfg.get(
            'diff_rank_seed', False) else 0
        set_random_seed(mix_seed(self.runner.seed, self._iter, rank))

    def _batch(self, primary):
        """The iteration's data: the primary batch with one batch of every
        other loader, or the primary batch alone when there is none."""
        if not self.cycles:
            return primary
        return (primary, *(next(cycle) for cycle in self.cycles))

    # ------------------------------------------------------------------
    # non-finite loss guard around OptimWrapper.update_params
    def _install_loss_guard(self) -> None:
        optim_wrapper = self.runner.optim_wrapper
        if getattr(optim_wrapper, '_bevt_guarded', False):
            return
        if not hasattr(optim_wrapper, 'update_params'):
            return  # e.g. OptimWrapperDict: the model steps itself
        update_params = optim_wrapper.update_params

        @functools.wraps(update_params)
        def guarded_update_params(loss: torch.Tensor, *args, **kwargs):
            bad = (~torch.isfinite(loss.detach())).float().reshape(1)
            if get_world_size() > 1:
                all_reduce(bad)  # every rank takes the same decision
            if bad.item() == 0:
                return update_params(loss, *args, **kwargs)
            self._on_nonfinite_loss(loss, optim_wrapper)

        optim_wrapper.update_params = guarded_update_params
        optim_wrapper._bevt_guarded = True

    def _on_nonfinite_loss(self, loss: torch.Tensor, optim_wrapper) -> None:
        where = f'epoch {self.epoch + 1}, iteration {self.iter + 1}'
        if self.nonfinite_loss == 'raise':
            raise FloatingPointError(
                f'The training loss is {loss.item()} at {where} (on this '
                'or another rank); the weights were not updated. Resume '
                'from the last checkpoint with a lower learning rate, '
                'gradient clipping, bf16 instead of fp16, or set '
                "train_cfg.nonfinite_loss='skip' to skip such steps.")
        self.nonfinite_steps += 1
        print_log(
            f'non-finite loss ({loss.item()}) at {where}: optimizer step '
            f'skipped ({self.nonfinite_steps} so far)',
            logger='current',
            level=logging.WARNING)
        # a zero backward keeps DDP's reducer in step on every rank; the
        # gradients of the skipped step (and its accumulation) are dropped
        params = [
            p for group in optim_wrapper.optimizer.param_groups
            for p in group['params'] if p.requires_grad
        ]
        if get_world_size() > 1 and params:
            zero = sum(p.sum() for p in params) * 0.
            zero.backward()
        optim_wrapper.zero_grad()
        self.runner.message_hub.update_scalar('train/nonfinite_steps',
                                              self.nonfinite_steps)


@LOOPS.register_module()
class BEVTMultiSourceEpochLoop(_MultiSourceMixin, EpochBasedTrainLoop):
    """Epoch loop over several sources; the epoch is the primary loader's.

    Each iteration yields the tuple ``(primary batch, other batches...)``
    (for BEVT stage 2: ``(video batch, image batch)``) and makes one
    ``train_step``. ``max_iters`` (and so iteration-based schedulers,
    ``auto_scale_lr`` and ``accumulative_counts``) follow the primary
    loader: ``max_epochs * len(dataloader)``.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): The primary (video) loader.
        other_loaders (list[str | dict | DataLoader]): The other loaders,
            cycled: names of top-level config keys (``'img_dataloader'``),
            dataloader configs or loaders.
        max_epochs (int): Epochs of the primary loader.
        val_begin (int): First epoch with validation. Defaults to 1.
        val_interval (int): Validation interval. Defaults to 1.
        dynamic_intervals (list, optional): As mmengine. Defaults to None.
        nonfinite_loss (str): ``'raise'`` or ``'skip'``. Defaults to
            ``'raise'``.
        reproducible (bool): Per-sample seeds for the data and
            per-iteration seeds for the model (see the module docstring).
            Defaults to True.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 other_loaders: Sequence[Union[str, Dict, DataLoader]],
                 max_epochs: int,
                 val_begin: int = 1,
                 val_interval: int = 1,
                 dynamic_intervals: Optional[List] = None,
                 nonfinite_loss: str = 'raise',
                 reproducible: bool = True) -> None:
        super().__init__(runner, dataloader, max_epochs, val_begin,
                         val_interval, dynamic_intervals)
        self._setup_sources(runner, other_loaders, nonfinite_loss,
                            reproducible)

    def run(self) -> torch.nn.Module:
        """Launch training (with the non-finite loss guard)."""
        self._install_loss_guard()
        self._use_run_seed()
        return super().run()

    def run_epoch(self) -> None:
        """One epoch of the primary loader, the others cycling.

        After a resume from an iteration checkpoint, the epoch starts after
        the batches it had already trained.
        """
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        gc.collect()
        done = self._iter - self._epoch * len(self.dataloader)
        if not 0 <= done < len(self.dataloader):
            raise RuntimeError(
                f'resumed at iteration {self._iter} of epoch '
                f'{self._epoch + 1}, which has {len(self.dataloader)} '
                'iterations: the checkpoint was written with another '
                'dataset or batch size')
        if done:
            print_log(
                f'resuming epoch {self._epoch + 1} after its first {done} '
                'iterations: their batches are skipped in every loader',
                logger='current')
        _set_epoch(self.dataloader, self._epoch)
        primaries = _iterate_from(self.dataloader, done)
        for cycle in self.cycles:
            cycle.restart(self._epoch, done)
        for idx, primary in enumerate(primaries, start=done):
            batch = self._batch(primary)
            self._seed_iteration()
            self.run_iter(idx, batch)
            if self.stop_training:
                break
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1


@LOOPS.register_module()
class BEVTEpochBasedTrainLoop(BEVTMultiSourceEpochLoop):
    """mmengine's ``EpochBasedTrainLoop`` (one loader) with what
    :class:`BEVTMultiSourceEpochLoop` adds: per-sample seeds, per-iteration
    model seeds, mid-epoch resume and the non-finite loss guard.

    For the runs with one source: stage 1 (images), the video-only stage 2
    and fine-tuning. Each iteration's data is the loader's batch.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): The loader.
        max_epochs (int): Epochs.
        val_begin (int): First epoch with validation. Defaults to 1.
        val_interval (int): Validation interval. Defaults to 1.
        dynamic_intervals (list, optional): As mmengine. Defaults to None.
        nonfinite_loss (str): ``'raise'`` or ``'skip'``. Defaults to
            ``'raise'``.
        reproducible (bool): Per-sample seeds for the data and
            per-iteration seeds for the model. Defaults to True.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 max_epochs: int,
                 val_begin: int = 1,
                 val_interval: int = 1,
                 dynamic_intervals: Optional[List] = None,
                 nonfinite_loss: str = 'raise',
                 reproducible: bool = True) -> None:
        super().__init__(runner, dataloader, (), max_epochs, val_begin,
                         val_interval, dynamic_intervals, nonfinite_loss,
                         reproducible)


@LOOPS.register_module()
class BEVTMultiSourceIterLoop(_MultiSourceMixin, IterBasedTrainLoop):
    """Iteration loop over several sources, every loader cycling.

    Each iteration yields ``(primary batch, other batches...)``. On resume
    the loaders are advanced past the batches already trained, as mmengine's
    ``IterBasedTrainLoop`` does.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): The primary loader.
        other_loaders (list[str | dict | DataLoader]): The other loaders:
            names of top-level config keys, dataloader configs or loaders.
        max_iters (int): Total iterations.
        val_begin (int): First iteration with validation. Defaults to 1.
        val_interval (int): Validation interval. Defaults to 1000.
        dynamic_intervals (list, optional): As mmengine. Defaults to None.
        nonfinite_loss (str): ``'raise'`` or ``'skip'``. Defaults to
            ``'raise'``.
        reproducible (bool): Per-sample seeds for the data and
            per-iteration seeds for the model (see the module docstring).
            Defaults to True.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 other_loaders: Sequence[Union[str, Dict, DataLoader]],
                 max_iters: int,
                 val_begin: int = 1,
                 val_interval: int = 1000,
                 dynamic_intervals: Optional[List] = None,
                 nonfinite_loss: str = 'raise',
                 reproducible: bool = True) -> None:
        super().__init__(runner, dataloader, max_iters, val_begin,
                         val_interval, dynamic_intervals)
        self._setup_sources(runner, other_loaders, nonfinite_loss,
                            reproducible)
        # mmengine's iterator cycles the primary loader (set_epoch per pass)
        self.dataloader_iterator = _InfiniteDataloaderIterator(self.dataloader)

    def run(self) -> torch.nn.Module:
        """Launch training (with the non-finite loss guard)."""
        self._install_loss_guard()
        self._use_run_seed()
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0:
            print_log(
                f'Advance the dataloaders {self._iter} steps to skip data '
                'that has already been trained',
                logger='current',
                level=logging.WARNING)
            for _ in range(self._iter):
                next(self.dataloader_iterator)
                for cycle in self.cycles:
                    next(cycle)
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            batch = self._batch(next(self.dataloader_iterator))
            self._seed_iteration()
            self.run_iter(batch)
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None
                    and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0
                         or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model
