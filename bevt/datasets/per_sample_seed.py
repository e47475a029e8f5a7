# Copyright (c) bevt contributors. All rights reserved.
"""Per-sample randomness: every sample's augmentation from its own seed.

mmaction2's and mmpretrain's transforms (frame offsets, crops, flips, colour
jitter, RandAugment, erasing, bevt's block and tube masks) draw from the
global generators of ``random``, NumPy and torch. In a DataLoader worker
their state depends on the worker's seed and on every sample the worker
loaded before, so a sample's augmentation changes with ``num_workers``,
``persistent_workers`` (a persistent worker carries its state from epoch to
epoch, a fresh one starts over), the rank that loads it and whether the run
was resumed.

:func:`seed_per_sample` rebuilds a DataLoader so that this no longer
matters: its sampler hands the dataset ``(epoch, index)`` pairs instead of
indices (``epoch`` is the sampler's ``set_epoch`` value: the loop's epoch,
or for a cycling loader its epoch and pass), and the dataset loads sample
``index`` with the three global generators seeded from
``(seed, epoch, index)`` by :func:`sample_seed`, and restores their states
afterwards (so with ``num_workers=0`` the main process's draws, e.g. drop
path, are left alone). The transforms need no change.

The same rebuilt sampler can skip the first samples of its next pass
(:meth:`SeededSampler.skip_next`) without loading them: a run resumed in the
middle of an epoch continues with the batches an uninterrupted run would
have seen, drawn the same way.
"""
import contextlib
import random
from typing import Any, Iterator, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

#: What :class:`SeededSampler` yields: (sampler epoch, sample index).
SampleKey = Tuple[int, int]


def mix_seed(*values: int) -> int:
    """A 32-bit seed mixed from non-negative ints
    (``numpy.random.SeedSequence``): any change of any value gives an
    unrelated seed."""
    return int(
        np.random.SeedSequence([int(v) for v in values]).generate_state(1)[0])


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The 32-bit seed of sample ``index`` in sampler epoch ``epoch``.

    Args:
        seed (int): The run's seed (non-negative).
        epoch (int): The sampler epoch (non-negative).
        index (int): The sample's index in the dataset.

    Returns:
        int: :func:`mix_seed` of the three, in [0, 2**32).
    """
    return mix_seed(seed, epoch, index)


@contextlib.contextmanager
def seeded_global_rngs(seed: int) -> Iterator[None]:
    """Seed ``random``, NumPy's and torch's CPU global generators, then
    restore their states on exit.

    Args:
        seed (int): Seed in [0, 2**32).
    """
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)  # not the CUDA generators
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


class SeededSampler(Sampler):
    """Yield ``(epoch, index)`` for every index of ``sampler``.

    ``set_epoch`` is passed on to the wrapped sampler (mmengine's
    ``DefaultSampler`` reshuffles with it) and is the ``epoch`` of the keys.

    Args:
        sampler (Sampler): The sampler whose indices are keyed.
    """

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.epoch = int(getattr(sampler, 'epoch', 0))
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch of the next pass (also of the wrapped sampler)."""
        self.epoch = int(epoch)
        if hasattr(self.sampler, 'set_epoch'):
            self.sampler.set_epoch(epoch)

    def skip_next(self, count: int) -> None:
        """Leave out the first ``count`` indices of the next pass only."""
        self._skip = int(count)

    def __iter__(self) -> Iterator[SampleKey]:
        skip, self._skip = self._skip, 0
        for position, index in enumerate(self.sampler):
            if position >= skip:
                yield self.epoch, int(index)

    def __len__(self) -> int:
        return len(self.sampler)


class SeededDataset(Dataset):
    """Load each sample with the global generators seeded for it.

    ``dataset[(epoch, index)]`` is ``dataset.dataset[index]`` drawn under
    :func:`seeded_global_rngs` with :func:`sample_seed` of
    ``(seed, epoch, index)``. Other attributes (``metainfo``, ...) are the
    wrapped dataset's.

    Args:
        dataset (Dataset): The dataset (a plain or wrapped mmengine
            dataset, e.g. :class:`~bevt.datasets.BEVTTolerantDataset`).
        seed (int): The run's seed.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = int(seed)

    def __getitem__(self, key: SampleKey) -> Any:
        if not (isinstance(key, tuple) and len(key) == 2):
            raise TypeError(
                f'{type(self).__name__} takes (epoch, index) keys from a '
                f'SeededSampler, got {key!r}; build the loader with '
                'seed_per_sample()')
        epoch, index = key
        with seeded_global_rngs(sample_seed(self.seed, epoch, index)):
            return self.dataset[index]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        # only reached for attributes this wrapper lacks; the guard keeps
        # copy/pickle (which probe before ``__init__`` ran) from recursing
        if name.startswith('__') or name == 'dataset':
            raise AttributeError(name)
        return getattr(self.dataset, name)


def seed_per_sample(loader: DataLoader, seed: int) -> DataLoader:
    """The same loader with per-sample seeds (see the module docstring).

    The loader is rebuilt with the same settings around
    :class:`SeededDataset` and :class:`SeededSampler` (``loader.sampler``
    is the :class:`SeededSampler`; a custom ``batch_sampler`` gets its
    ``sampler`` wrapped in place). A loader that already has per-sample
    seeds is returned as is.

    Args:
        loader (DataLoader): A map-style loader, e.g. built by mmengine.
        seed (int): The run's seed.

    Returns:
        DataLoader: The rebuilt loader.
    """
    if isinstance(loader.dataset, SeededDataset):
        return loader
    settings = dict(
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context,
        generator=loader.generator,
        prefetch_factor=loader.prefetch_factor,
        persistent_workers=loader.persistent_workers,
        pin_memory_device=loader.pin_memory_device)
    dataset = SeededDataset(loader.dataset, seed)
    if loader.batch_size is not None:  # torch's own BatchSampler
        return DataLoader(
            dataset,
            batch_size=loader.batch_size,
            drop_last=loader.drop_last,
            sampler=SeededSampler(loader.sampler),
            **settings)
    batch_sampler = loader.batch_sampler
    if not hasattr(batch_sampler, 'sampler'):
        raise TypeError(
            f'cannot key the samples of {type(batch_sampler).__name__}: '
            'per-sample seeds need a batch sampler that draws its indices '
            'from a `sampler` attribute')
    if not isinstance(batch_sampler.sampler, SeededSampler):
        batch_sampler.sampler = SeededSampler(batch_sampler.sampler)
    return DataLoader(dataset, batch_sampler=batch_sampler, **settings)


def seeded_sampler(loader: DataLoader) -> Optional[SeededSampler]:
    """The :class:`SeededSampler` of a loader from :func:`seed_per_sample`,
    or None."""
    for sampler in (loader.sampler,
                    getattr(loader.batch_sampler, 'sampler', None)):
        if isinstance(sampler, SeededSampler):
            return sampler
    return None
