# Copyright (c) bevt contributors. All rights reserved.
"""mmengine checkpoints under torch >= 2.6, with ``weights_only`` kept on."""
import os
import pickle

import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner import checkpoint as mmengine_checkpoint
from torch.utils.data import Dataset

from bevt.compat.checkpoint import UnsafeCheckpointError, load_from_local

# mmengine's own loader, reached without the scheme table bevt replaced
MMENGINE_LOAD_FROM_LOCAL = mmengine_checkpoint.load_from_local


class ToyModel(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(inputs)
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


class ToyDataset(Dataset):
    metainfo = dict(classes=('a', 'b'))

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> dict:
        return dict(inputs=torch.full((2, ), float(index)))


def make_runner(work_dir, max_epochs, **kwargs) -> Runner:
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyDataset(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=2,
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-2)),
        param_scheduler=dict(type='CosineAnnealingLR', by_epoch=True),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        randomness=dict(seed=0),
        experiment_name=f'toy_{os.path.basename(str(work_dir))}_{max_epochs}',
        **kwargs)


@pytest.fixture(scope='module')
def trained_checkpoint(tmp_path_factory) -> str:
    """The epoch-1 checkpoint of a real (tiny) mmengine run."""
    work_dir = tmp_path_factory.mktemp('toy_run')
    make_runner(work_dir, max_epochs=1).train()
    return str(work_dir / 'epoch_1.pth')


def test_checkpoint_carries_more_than_weights(trained_checkpoint):
    # the reason for the fix: torch's default refuses this file
    with pytest.raises(pickle.UnpicklingError, match='Weights only load'):
        MMENGINE_LOAD_FROM_LOCAL(trained_checkpoint, 'cpu')
    checkpoint = load_from_local(trained_checkpoint, 'cpu')
    assert checkpoint['meta']['epoch'] == 1
    assert isinstance(checkpoint['message_hub']['log_scalars']['train/loss'],
                      HistoryBuffer)


def test_resume_and_load_from(trained_checkpoint, tmp_path):
    runner = make_runner(
        tmp_path / 'resumed',
        max_epochs=2,
        resume=True,
        load_from=trained_checkpoint)
    runner.train()
    assert runner.epoch == 2 and runner.iter == 8
    loaded = make_runner(
        tmp_path / 'loaded', max_epochs=1, load_from=trained_checkpoint)
    loaded.load_or_resume()
    expected = load_from_local(trained_checkpoint, 'cpu')['state_dict']
    torch.testing.assert_close(loaded.model.state_dict()['linear.weight'],
                               expected['linear.weight'])


def test_resume_fails_without_fix(trained_checkpoint, tmp_path, monkeypatch):
    loader = mmengine_checkpoint.CheckpointLoader
    monkeypatch.setitem(loader._schemes, '', MMENGINE_LOAD_FROM_LOCAL)
    runner = make_runner(
        tmp_path / 'unfixed',
        max_epochs=2,
        resume=True,
        load_from=trained_checkpoint)
    with pytest.raises(pickle.UnpicklingError):
        runner.train()


class RunsCode:
    """Unpickling this object would call ``marker.write_text('pwned')``."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (self.marker.write_text, ('pwned', ))


class GetattrAbuse:
    """Pickled as ``getattr(HistoryBuffer, '__init__')``."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


@pytest.mark.parametrize('payload', ['code', 'getattr'])
def test_malicious_checkpoint_is_refused(tmp_path, payload):
    marker = tmp_path / 'marker.txt'
    path = tmp_path / f'evil_{payload}.pth'
    evil = RunsCode(marker) if payload == 'code' else GetattrAbuse()
    torch.save(dict(state_dict=dict(w=torch.zeros(1)), meta=evil), str(path))
    with pytest.raises(UnsafeCheckpointError) as error:
        mmengine_checkpoint._load_checkpoint(str(path), map_location='cpu')
    assert str(path) in str(error.value)
    assert 'could run' in str(error.value)
    assert not marker.exists()


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing.pth'):
        load_from_local(str(tmp_path / 'nothing.pth'), 'cpu')
