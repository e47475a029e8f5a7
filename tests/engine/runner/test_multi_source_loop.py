# Copyright (c) bevt contributors. All rights reserved.
import glob
import itertools
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import bevt.engine  # noqa: F401  (registers the loops)
from bevt.engine.runner import BEVTMultiSourceEpochLoop
from bevt.registry import DATASETS

RUN_IDS = itertools.count()


class NoisyRange(Dataset):
    """Sample i = (i, noise): the noise comes from the global numpy RNG,
    as random augmentations and masks do."""

    def __init__(self, length: int, tag: int) -> None:
        self.length, self.tag = length, tag
        self.loaded = []  # indices loaded (in this process)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i):
        self.loaded.append(i)
        return dict(
            index=torch.tensor(i),
            tag=torch.tensor(self.tag),
            noise=torch.tensor(np.random.rand(), dtype=torch.float32))


class ToyModel(BaseModel):
    """Records every batch tuple; its loss depends on the data."""

    def __init__(self, nan_at=None) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))
        self.nan_at = nan_at
        self.seen = []
        self.losses = []
        self.draws = []  # the model's own random draws (as drop path)

    def forward(self, *batches, mode='tensor', **batch):
        batches = batches or (batch, )  # one loader: the batch's keys
        self.seen.append(
            tuple((int(b['tag'][0]), b['index'].tolist()) for b in batches))
        noise = sum(b['noise'].sum() for b in batches)
        self.draws.append(float(torch.rand(())))
        loss = (self.w * noise - self.draws[-1])**2
        if self.nan_at is not None and len(self.seen) == self.nan_at:
            loss = loss * float('nan')
        self.losses.append(float(loss.detach()))
        return dict(loss=loss)


def loader(length,
           tag,
           batch_size=2,
           shuffle=True,
           workers=0,
           persistent=False):
    return dict(
        dataset=dict(type=NoisyRange, length=length, tag=tag),
        sampler=dict(type='DefaultSampler', shuffle=shuffle),
        batch_size=batch_size,
        num_workers=workers,
        persistent_workers=persistent,
        collate_fn=dict(type='default_collate'))


def make_runner(work_dir,
                model=None,
                max_epochs=3,
                resume=False,
                load_from=None,
                checkpoint=None,
                workers=0,
                persistent=False,
                single=False,
                **loop):
    train_cfg = dict(
        type='BEVTMultiSourceEpochLoop',
        other_loaders=[loader(4, 1, workers=workers, persistent=persistent)],
        max_epochs=max_epochs)
    if single:
        train_cfg = dict(type='BEVTEpochBasedTrainLoop', max_epochs=max_epochs)
    train_cfg.update(loop)
    return Runner(
        model=model or ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=loader(6, 0, workers=workers, persistent=persistent),
        train_cfg=train_cfg,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(
            checkpoint=checkpoint or dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=3),
        resume=resume,
        load_from=load_from,
        default_scope='bevt',
        # a logger of its own (runners of one second share one by default)
        experiment_name=f'{osp.basename(str(work_dir))}_{next(RUN_IDS)}')


def test_epoch_follows_primary_and_secondary_cycles(tmp_path):
    runner = make_runner(tmp_path / 'a', max_epochs=2)
    runner.train()
    model = runner.model
    assert isinstance(runner.train_loop, BEVTMultiSourceEpochLoop)
    assert runner.train_loop.max_iters == 2 * 3  # len(primary) = 3
    assert len(model.seen) == 6
    # every iteration: (primary batch, secondary batch)
    assert all(s[0][0] == 0 and s[1][0] == 1 for s in model.seen)
    # each epoch covers the primary set once ...
    for epoch in range(2):
        primary = sorted(i for s in model.seen[3 * epoch:3 * epoch + 3]
                         for i in s[0][1])
        assert primary == list(range(6))
    # ... and the secondary loader (2 batches) wraps, in a new order
    secondary = [tuple(s[1][1]) for s in model.seen]
    first_pass = sorted(i for b in secondary[:2] for i in b)
    assert first_pass == [0, 1, 2, 3]
    passes = [secondary[0:2], secondary[2:3], secondary[3:5]]
    assert len({tuple(p[0]) for p in passes}) > 1


def test_resume_from_epoch_checkpoint_gives_the_same_losses(tmp_path):
    full = make_runner(tmp_path / 'full', max_epochs=4)
    full.train()
    expected = full.model.losses

    half = make_runner(tmp_path / 'half', max_epochs=2)
    half.train()
    resumed = make_runner(tmp_path / 'half', max_epochs=4, resume=True)
    resumed.train()
    assert half.model.losses == expected[:6]
    np.testing.assert_allclose(resumed.model.losses, expected[6:], rtol=0)
    assert resumed.model.seen == full.model.seen[6:]


def test_resume_from_an_iteration_checkpoint_skips_the_trained_batches(
        tmp_path):
    """A checkpoint in the middle of epoch 2 (iteration 5 of 3 per epoch):
    the resumed run trains the rest exactly as the uninterrupted one, and
    loads only the samples of the batches it trains."""
    full = make_runner(tmp_path / 'full', max_epochs=3)
    full.train()
    every_iter = dict(type='CheckpointHook', interval=1, by_epoch=False)
    half = make_runner(tmp_path / 'half', max_epochs=3, checkpoint=every_iter)
    half.train()
    assert osp.isfile(tmp_path / 'half' / 'iter_5.pth')
    resumed = make_runner(
        tmp_path / 'resumed',
        max_epochs=3,
        resume=True,
        load_from=str(tmp_path / 'half' / 'iter_5.pth'))
    resumed.train()
    assert resumed.model.seen == full.model.seen[5:]
    assert resumed.model.losses == full.model.losses[5:]
    assert resumed.model.draws == full.model.draws[5:]
    primary = resumed.train_dataloader.dataset.dataset
    secondary = resumed.train_loop.other_loaders[0].dataset.dataset
    assert len(primary.loaded) == 4 * 2  # 1 batch of epoch 2, 3 of epoch 3
    assert len(secondary.loaded) == 4 * 2


def test_one_loader_loop_resumes_mid_epoch_and_ignores_workers(tmp_path):
    """BEVTEpochBasedTrainLoop (stage 1, fine-tuning): the same guarantees
    with one loader, whose batch is the iteration's data."""
    full = make_runner(tmp_path / 'full', single=True)
    full.train()
    assert all(len(s) == 1 and s[0][0] == 0 for s in full.model.seen)
    every_iter = dict(type='CheckpointHook', interval=1, by_epoch=False)
    make_runner(
        tmp_path / 'half',
        single=True,
        checkpoint=every_iter,
        workers=2,
        persistent=True).train()
    resumed = make_runner(
        tmp_path / 'resumed',
        single=True,
        resume=True,
        load_from=str(tmp_path / 'half' / 'iter_4.pth'))
    resumed.train()
    assert resumed.model.seen == full.model.seen[4:]
    assert resumed.model.losses == full.model.losses[4:]
    assert resumed.model.draws == full.model.draws[4:]
    assert len(resumed.train_dataloader.dataset.dataset.loaded) == 5 * 2


@pytest.mark.parametrize('workers,persistent', [(2, False), (2, True)])
def test_workers_do_not_change_the_losses(tmp_path, workers, persistent):
    """Every sample is drawn from its own seed: in the main process, in
    fresh workers per epoch or in persistent ones, the same draws."""
    in_main = make_runner(tmp_path / 'main', max_epochs=2)
    in_main.train()
    with_workers = make_runner(
        tmp_path / 'workers',
        max_epochs=2,
        workers=workers,
        persistent=persistent)
    with_workers.train()
    assert with_workers.model.seen == in_main.model.seen
    assert with_workers.model.losses == in_main.model.losses


def test_without_per_sample_seeds_resume_diverges(tmp_path):
    """The control: without per-sample seeds, the resumed epochs draw other
    augmentations than the uninterrupted run."""
    kwargs = dict(reproducible=False)
    full = make_runner(tmp_path / 'full', max_epochs=4, **kwargs)
    full.train()
    make_runner(tmp_path / 'half', max_epochs=2, **kwargs).train()
    resumed = make_runner(
        tmp_path / 'half', max_epochs=4, resume=True, **kwargs)
    resumed.train()
    assert resumed.model.losses != full.model.losses[6:]


def test_nonfinite_loss_raises_by_default(tmp_path):
    runner = make_runner(tmp_path, model=ToyModel(nan_at=2))
    before = runner.model.w.detach().clone()
    with pytest.raises(FloatingPointError, match='loss is nan'):
        runner.train()
    assert torch.isfinite(runner.model.w).all()
    assert not torch.equal(runner.model.w.detach(), before)  # step 1 ran


def test_nonfinite_loss_can_skip_the_step(tmp_path):
    runner = make_runner(
        tmp_path, model=ToyModel(nan_at=2), nonfinite_loss='skip')
    runner.train()
    assert torch.isfinite(runner.model.w).all()
    assert runner.train_loop.nonfinite_steps == 1
    log = ''.join(
        open(path).read()
        for path in glob.glob(osp.join(str(tmp_path), '*', '*.log')))
    assert 'optimizer step skipped' in log
    assert 'nonfinite_steps: 1' in log
    assert runner.message_hub.get_scalar(
        'train/nonfinite_steps').current() == 1


def test_other_loader_named_by_a_config_key(tmp_path):
    """`other_loaders=['img_dataloader']` reads the top-level config key,
    so a child config merges into it like into `train_dataloader`."""
    runner = make_runner(
        tmp_path / 'named', max_epochs=1, other_loaders=['img_dataloader'])
    # a config holds the dataset's registered name (the runner prints it)
    name = f'ToyNoisyRange{next(RUN_IDS)}'
    DATASETS.register_module(name=name, module=NoisyRange)
    try:
        runner.cfg.img_dataloader = dict(
            loader(4, tag=1), dataset=dict(type=name, length=4, tag=1))
        runner.train()
    finally:
        DATASETS._module_dict.pop(name)
    assert len(runner.model.seen) == 3
    assert all(s[1][0] == 1 for s in runner.model.seen)
    missing = make_runner(tmp_path / 'missing', other_loaders=['img_loader'])
    with pytest.raises(ValueError, match="names 'img_loader'"):
        missing.train()


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='nonfinite_loss'):
        make_runner(tmp_path, nonfinite_loss='ignore').train()
    with pytest.raises(TypeError, match='other_loaders'):
        make_runner(tmp_path, other_loaders=loader(4, 1)).train()


def test_iteration_based_variant(tmp_path):
    runner = Runner(
        model=ToyModel(),
        work_dir=str(tmp_path),
        train_dataloader=loader(6, tag=0),
        train_cfg=dict(
            type='BEVTMultiSourceIterLoop',
            other_loaders=[loader(4, tag=1)],
            max_iters=7),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        randomness=dict(seed=0),
        default_scope='bevt')
    runner.train()
    seen = runner.model.seen
    assert len(seen) == 7
    assert all(s[0][0] == 0 and s[1][0] == 1 for s in seen)
    # the primary loader (3 batches) and the secondary (2) both cycle
    assert sorted(i for s in seen[:3] for i in s[0][1]) == list(range(6))
    assert sorted(i for s in seen[:2] for i in s[1][1]) == [0, 1, 2, 3]
