# Copyright (c) bevt contributors. All rights reserved.
"""BEVT's joint training loops: one batch of every source per iteration.

mmaction2's ``MultiLoaderEpochBasedTrainLoop`` ends an epoch at the
*shortest* loader and restarts every loader each epoch. BEVT's official
runner defines the epoch by the primary (video) loader and lets the other
loaders (images) cycle: each iteration takes one batch from every loader and
makes one ``train_step`` on the summed loss. These loops do that, and add
what long runs need:

- every loader has its own sampler, re-seeded (``set_epoch``) at each epoch
  of the loop and at each restart of a secondary loader, so the image order
  changes every pass;
- the data randomness (the main process and the workers of non-persistent
  loaders) is re-seeded from ``(seed, epoch)`` at every epoch, so resuming
  from an epoch checkpoint gives the same batches, masks and losses as an
  uninterrupted run;
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
from mmengine.runner.utils import set_random_seed
from torch.utils.data import DataLoader

from bevt.registry import LOOPS

NONFINITE_POLICIES = ('raise', 'skip')


def _mix_seed(seed: int, value: int) -> int:
    """A seed for (seed, value) that numpy accepts (< 2**31)."""
    return (int(seed) + 1_000_003 * int(value)) % (2**31 - 1)


def _set_epoch(loader: DataLoader, epoch: int) -> None:
    sampler = getattr(loader, 'sampler', None)
    if hasattr(sampler, 'set_epoch'):
        sampler.set_epoch(epoch)
    batch_sampler = getattr(loader, 'batch_sampler', None)
    if hasattr(batch_sampler, 'set_epoch'):  # e.g. grouped samplers
        batch_sampler.set_epoch(epoch)


def _reseed_workers(loader: DataLoader, init_fn, value: int) -> None:
    """Give the workers of ``loader`` a seed for pass ``value``.

    mmengine's ``worker_init_fn`` seeds every worker with the same seed at
    each epoch (so non-persistent workers repeat their random draws every
    epoch); this swaps in the loader's original seed mixed with ``value``
    for the next iterator. Other ``init_fn`` are left alone.

    Args:
        loader (DataLoader): The loader.
        init_fn (callable, optional): Its original ``worker_init_fn``.
        value (int): The pass (epoch) the seed is for.
    """
    if isinstance(init_fn, functools.partial) and 'seed' in init_fn.keywords:
        seed = _mix_seed(init_fn.keywords['seed'], value)
        loader.worker_init_fn = functools.partial(
            init_fn.func, *init_fn.args, **{
                **init_fn.keywords, 'seed': seed
            })


class _CyclingLoader:
    """Endless iterator over a loader; each pass gets its own sampler epoch.

    Pass ``k`` of loop epoch ``e`` uses the sampler epoch (and, for workers
    that restart, the worker seed offset) ``e * PASS_STRIDE + k``: no two
    passes share an order or a random stream, and the value depends on
    nothing but (e, k), so a resumed run draws the same batches.

    Args:
        loader (DataLoader): The loader.
        reseed (bool): Re-seed the workers of each pass. Defaults to True.
    """

    PASS_STRIDE = 1_000_000

    def __init__(self, loader: DataLoader, reseed: bool = True) -> None:
        self.loader = loader
        self.reseed = reseed
        self.epoch = 0
        self.passes = 0
        self._init_fn = getattr(loader, 'worker_init_fn', None)
        self._iterator: Optional[Iterator] = None

    def _start_pass(self) -> None:
        value = self.epoch * self.PASS_STRIDE + self.passes
        _set_epoch(self.loader, value)
        if self.reseed:
            _reseed_workers(self.loader, self._init_fn, value)
        self._iterator = iter(self.loader)

    def restart(self, epoch: int) -> None:
        """Start a new pass at the beginning of a loop epoch."""
        self.epoch, self.passes = epoch, 0
        self._start_pass()

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
                       nonfinite_loss: str, reseed: bool) -> None:
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
        self.nonfinite_loss = nonfinite_loss
        self.reseed = reseed
        self.nonfinite_steps = 0
        self._primary_init_fn = getattr(self.dataloader, 'worker_init_fn',
                                        None)

    def _reseed_epoch(self, epoch: int) -> None:
        """Seed the data randomness from (seed, epoch) (see module doc)."""
        if not self.reseed:
            return
        diff_rank = self.runner._randomness_cfg.get('diff_rank_seed', False)
        seed = _mix_seed(self.runner.seed, epoch)
        set_random_seed(seed + (get_rank() if diff_rank else 0))
        _reseed_workers(self.dataloader, self._primary_init_fn, epoch)

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
        reseed_every_epoch (bool): Seed the data randomness from
            (seed, epoch) at each epoch. Defaults to True.
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
                 reseed_every_epoch: bool = True) -> None:
        super().__init__(runner, dataloader, max_epochs, val_begin,
                         val_interval, dynamic_intervals)
        self._setup_sources(runner, other_loaders, nonfinite_loss,
                            reseed_every_epoch)
        self.cycles = [
            _CyclingLoader(loader, reseed_every_epoch)
            for loader in self.other_loaders
        ]

    def run(self) -> torch.nn.Module:
        """Launch training (with the non-finite loss guard)."""
        self._install_loss_guard()
        return super().run()

    def run_epoch(self) -> None:
        """One epoch of the primary loader, the others cycling."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        gc.collect()
        self._reseed_epoch(self._epoch)
        _set_epoch(self.dataloader, self._epoch)
        for cycle in self.cycles:
            cycle.restart(self._epoch)
        for idx, primary in enumerate(self.dataloader):
            batch = (primary, *(next(cycle) for cycle in self.cycles))
            self.run_iter(idx, batch)
            if self.stop_training:
                break
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1


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
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 other_loaders: Sequence[Union[str, Dict, DataLoader]],
                 max_iters: int,
                 val_begin: int = 1,
                 val_interval: int = 1000,
                 dynamic_intervals: Optional[List] = None,
                 nonfinite_loss: str = 'raise') -> None:
        super().__init__(runner, dataloader, max_iters, val_begin,
                         val_interval, dynamic_intervals)
        self._setup_sources(runner, other_loaders, nonfinite_loss, False)
        # mmengine's iterator already cycles the primary loader
        self.cycles = [
            _CyclingLoader(loader, reseed=False)
            for loader in self.other_loaders
        ]

    def run(self) -> torch.nn.Module:
        """Launch training (with the non-finite loss guard)."""
        self._install_loss_guard()
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
            batch = (next(self.dataloader_iterator),
                     *(next(cycle) for cycle in self.cycles))
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
