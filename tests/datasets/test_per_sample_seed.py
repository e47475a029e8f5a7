# Copyright (c) bevt contributors. All rights reserved.
import random

import numpy as np
import pytest
import torch
from mmengine.dataset import DefaultSampler, default_collate
from torch.utils.data import DataLoader, Dataset

from bevt.datasets.per_sample_seed import (SeededDataset, SeededSampler,
                                           sample_seed, seed_per_sample,
                                           seeded_global_rngs)
from bevt.testing import run_gloo_ranks


class Draws(Dataset):
    """Sample i: its index and one draw of each global generator, as an
    augmentation pipeline makes them."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i):
        return dict(
            index=i,
            draws=torch.tensor(
                [random.random(),
                 np.random.rand(),
                 float(torch.rand(()))],
                dtype=torch.float64))


def draws_by_index(loader, epochs=(0, 1)):
    """{(epoch, index): draws} over ``epochs`` of ``loader``."""
    found = {}
    for epoch in epochs:
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            for index, draws in zip(batch['index'].tolist(),
                                    batch['draws'].tolist()):
                found[f'{epoch}/{index}'] = draws
    return found


def make_loader(workers=0, persistent=False, seed=7):
    loader = DataLoader(
        Draws(),
        batch_size=3,
        sampler=DefaultSampler(Draws(), shuffle=True, seed=seed),
        num_workers=workers,
        persistent_workers=persistent,
        collate_fn=default_collate)
    return seed_per_sample(loader, seed)


def test_sample_seed_depends_on_run_epoch_and_index():
    seeds = {
        sample_seed(s, e, i)
        for s in range(3)
        for e in range(3)
        for i in range(3)
    }
    assert len(seeds) == 27
    assert all(0 <= s < 2**32 for s in seeds)
    assert sample_seed(1, 2, 3) == sample_seed(1, 2, 3)


def test_seeded_global_rngs_restore_the_states():
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    expected = (random.random(), np.random.rand(), float(torch.rand(())))
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    with seeded_global_rngs(123):
        inside = (random.random(), np.random.rand(), float(torch.rand(())))
    after = (random.random(), np.random.rand(), float(torch.rand(())))
    assert after == expected
    with seeded_global_rngs(123):
        again = (random.random(), np.random.rand(), float(torch.rand(())))
    assert again == inside


def test_draws_do_not_depend_on_workers():
    in_main = draws_by_index(make_loader())
    assert len(in_main) == 20
    # a sample's draws change with the epoch
    assert all(in_main[f'0/{i}'] != in_main[f'1/{i}'] for i in range(10))
    assert draws_by_index(make_loader(workers=2)) == in_main
    assert draws_by_index(make_loader(workers=2, persistent=True)) == in_main
    # the run's seed changes them
    assert draws_by_index(make_loader(seed=8))['0/0'] != in_main['0/0']


def test_skip_next_leaves_out_samples_once():
    loader = make_loader()
    order = [i for batch in loader for i in batch['index'].tolist()]
    loader.sampler.skip_next(6)
    assert [i for batch in loader
            for i in batch['index'].tolist()] == order[6:]
    assert [i for batch in loader for i in batch['index'].tolist()] == order


def test_wrapping_keeps_the_loader_settings():
    loader = make_loader(workers=2, persistent=True)
    assert isinstance(loader.dataset, SeededDataset)
    assert isinstance(loader.sampler, SeededSampler)
    assert (loader.batch_size, loader.num_workers,
            loader.persistent_workers) == (3, 2, True)
    assert seed_per_sample(loader, 7) is loader
    assert len(loader.dataset) == 10
    with pytest.raises(TypeError, match='seed_per_sample'):
        loader.dataset[3]


def test_two_ranks_draw_what_one_process_draws(tmp_path):
    ranks = run_gloo_ranks(
        lambda rank: draws_by_index(make_loader(workers=1, persistent=True)),
        str(tmp_path))
    # the ranks load different samples, each drawn as one process draws it
    assert not set(ranks[0]) & set(ranks[1])
    one_process = draws_by_index(make_loader())
    assert {**ranks[0], **ranks[1]} == one_process
