# Copyright (c) bevt contributors. All rights reserved.
import os
import os.path as osp
import re
import uuid

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmaction.structures import ActionDataSample
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.runner import Runner

import bevt.datasets.tolerant_dataset  # noqa: F401 (registers the dataset)
from bevt.engine.hooks.skipped_files_hook import (BEVTSkippedFilesHook,
                                                  collect_skipped)
from bevt.testing import run_gloo_ranks

BAD = ['zero.mp4', 'truncated.mp4', 'random.mp4', 'missing.mp4']


# --------------------------------------------------------------- helpers
def _write_video(path: str, seed: int) -> None:
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), 8,
                             (32, 32))
    rng = np.random.default_rng(seed)
    for _ in range(16):
        writer.write(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    writer.release()


def _make_data(root: str, num_good: int) -> str:
    """``num_good`` good videos, the four kinds of bad ones, the list."""
    good = [f'good_{i}.mp4' for i in range(num_good)]
    for i, name in enumerate(good):
        _write_video(osp.join(root, name), i)
    _write_video(osp.join(root, 'whole.mp4'), 99)
    with open(osp.join(root, 'whole.mp4'), 'rb') as file:
        data = file.read()
    open(osp.join(root, 'zero.mp4'), 'wb').close()
    with open(osp.join(root, 'truncated.mp4'), 'wb') as file:
        file.write(data[:len(data) // 2])
    with open(osp.join(root, 'random.mp4'), 'wb') as file:
        file.write(np.random.default_rng(0).bytes(4000))
    ann_file = osp.join(root, 'list.txt')
    with open(ann_file, 'w') as file:
        file.writelines(f'{name} 0\n' for name in good + BAD)
    return ann_file


class _ToyModel(BaseModel):
    """A linear layer over the mean of each clip."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack([clip.float().mean() / 255 for clip in inputs])
        out = self.linear(x.view(-1, 1))
        if mode == 'loss':
            return dict(loss=out.pow(2).mean())
        return out


def _runner(tmp_path, num_workers: int, num_good: int,
            **hook_kwargs) -> Runner:
    root = str(tmp_path / 'data')
    os.makedirs(root)
    ann_file = _make_data(root, num_good)
    video = dict(
        type='VideoDataset',
        ann_file=ann_file,
        data_prefix=dict(video=root),
        pipeline=[
            dict(type='DecordInit'),
            dict(
                type='SampleFrames', clip_len=4, frame_interval=1,
                num_clips=1),
            dict(type='DecordDecode'),
            dict(type='Resize', scale=(32, 32), keep_ratio=False),
            dict(type='FormatShape', input_format='NCTHW'),
            dict(type='PackActionInputs')
        ])
    return Runner(
        model=_ToyModel(),
        work_dir=str(tmp_path / 'work'),
        experiment_name=f'skipped_files_{uuid.uuid4().hex}',
        train_dataloader=dict(
            batch_size=2,
            num_workers=num_workers,
            persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=True),
            dataset=dict(type='BEVTTolerantDataset', dataset=video)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1), checkpoint=None),
        custom_hooks=[dict(type='BEVTSkippedFilesHook', **hook_kwargs)],
        randomness=dict(seed=0),
        default_scope='bevt')


def _hook_of(runner: Runner) -> BEVTSkippedFilesHook:
    hooks = [h for h in runner.hooks if isinstance(h, BEVTSkippedFilesHook)]
    assert len(hooks) == 1
    return hooks[0]


def _log_text(runner: Runner) -> str:
    path = osp.join(runner.log_dir, f'{runner.timestamp}.log')
    with open(path) as file:
        return file.read()


def _check_log(runner: Runner, tmp_path) -> None:
    hook = _hook_of(runner)
    text = _log_text(runner)
    root = str(tmp_path / 'data')
    for name in BAD:
        path = osp.join(root, name)
        assert text.count(f'skipped unreadable file {path} (') == 1, name
    assert 'skipped unreadable file ' + osp.join(root, 'good_') not in text
    counts = [int(c) for c in re.findall(r'skipped_files: (\d+)', text)]
    # one per logged iteration (2 epochs x 3 batches), never decreasing
    assert len(counts) == 6
    assert counts == sorted(counts)
    assert counts[-1] == len(BAD)
    # every bad index is visited once per epoch and fails at least once
    assert hook.num_skipped >= 2 * len(BAD)
    assert hook.num_loaded == 2 * (2 + len(BAD))
    assert {file
            for file, _ in hook.examples
            } == {osp.join(root, name)
                  for name in BAD}


class _FakeRunner:
    """What the hook uses of a runner: logger, message hub, iter."""

    def __init__(self) -> None:
        self.warnings = []
        self.logger = self
        self.message_hub = MessageHub(f'fake_{uuid.uuid4().hex}')
        self.iter = 0

    def warning(self, message: str) -> None:
        self.warnings.append(message)

    def step(self, hook: BEVTSkippedFilesHook, batch) -> None:
        hook.after_train_iter(self, self.iter, batch)
        self.iter += 1

    @property
    def logged(self) -> int:
        return int(
            self.message_hub.get_scalar('train/skipped_files').current())


def _batch(*skipped_lists) -> dict:
    """A packed batch; one data sample per list of skipped files."""
    samples = []
    for files in skipped_lists:
        sample = ActionDataSample()
        if files:
            sample.set_metainfo(
                dict(
                    skipped_files=list(files),
                    skip_reasons=[f'Err: {f}' for f in files]))
        samples.append(sample)
    return dict(inputs=[torch.zeros(1) for _ in samples], data_samples=samples)


# ----------------------------------------------------------- unit tests
def test_collect_skipped_batch_layouts():
    assert collect_skipped(_batch([], ['a'],
                                  ['b', 'c'
                                   ])) == (3, ['a', 'b', 'c'],
                                           ['Err: a', 'Err: b', 'Err: c'])
    # a multi-loader loop gives a tuple (or list) of batches
    assert collect_skipped(
        (_batch(['a']), _batch([], ['d']))) == (3, ['a',
                                                    'd'], ['Err: a', 'Err: d'])
    # samples without data samples: collated '\n'-joined strings
    plain = dict(
        inputs=torch.zeros(4, 2),
        skipped_files=['x\ny', '', 'z'],
        skip_reasons=['r1\nr2', '', 'r3'])
    assert collect_skipped(plain) == (4, ['x', 'y', 'z'], ['r1', 'r2', 'r3'])
    assert collect_skipped(None) == (0, [], [])
    assert collect_skipped(dict(inputs=torch.zeros(3, 2))) == (3, [], [])


def test_warns_once_counts_and_logs():
    hook = BEVTSkippedFilesHook(min_samples=0, max_skip_ratio=1)
    runner = _FakeRunner()
    runner.step(hook, _batch([], ['a']))
    assert runner.logged == 1
    runner.step(hook, _batch(['a', 'b'], []))  # 'a' again
    runner.step(hook, _batch(['b'], ['a']))
    assert runner.logged == 2  # distinct files
    assert hook.num_skipped == 5 and hook.num_loaded == 6
    assert len(runner.warnings) == 2
    assert 'skipped unreadable file a (Err: a)' in runner.warnings[0]
    assert 'skipped unreadable file b (Err: b)' in runner.warnings[1]
    # validation batches: a warning for new files only, no count
    hook.after_val_iter(runner, 0, _batch(['a', 'v']))
    assert len(runner.warnings) == 3 and 'file v ' in runner.warnings[2]
    assert 'val dataset' in runner.warnings[2]
    hook.after_test_iter(runner, 0, _batch(['v']))
    assert len(runner.warnings) == 3
    assert hook.num_skipped == 5 and runner.logged == 2
    # named in validation, then skipped in training: counted, not named
    runner.step(hook, _batch(['v']))
    assert runner.logged == 3 and len(runner.warnings) == 3


def test_interval_defers_sync():
    hook = BEVTSkippedFilesHook(min_samples=0, max_skip_ratio=1, interval=2)
    runner = _FakeRunner()
    runner.step(hook, _batch(['a']))
    assert runner.logged == 0 and runner.warnings == []
    runner.step(hook, _batch(['b']))
    assert runner.logged == 2 and len(runner.warnings) == 2
    assert hook.num_skipped == 2


def test_ratio_raises_after_min_samples_with_examples():
    hook = BEVTSkippedFilesHook(
        max_skip_ratio=0.3, min_samples=18, max_examples=2)
    runner = _FakeRunner()
    # 2 failed + 4 loaded per batch: 33% > 30%, checked from 18 loads
    runner.step(hook, _batch(['f0'], ['f1'], [], []))
    runner.step(hook, _batch(['f2'], ['f3'], [], []))
    with pytest.raises(RuntimeError) as info:
        runner.step(hook, _batch(['f4'], ['f5'], [], []))
    message = str(info.value)
    assert '6 of 18 sample loads (33.3%)' in message
    assert 'max_skip_ratio=30.0%' in message
    assert 'f0 (Err: f0)' in message and 'f1' in message
    assert 'f2' not in message
    assert '4 more' in message
    assert 'tools/analysis_tools/check_videos.py' in message


def test_ratio_within_limit_does_not_raise():
    hook = BEVTSkippedFilesHook(max_skip_ratio=0.25, min_samples=0)
    runner = _FakeRunner()
    for i in range(5):
        runner.step(hook, _batch([f'f{i}'], [], []))  # 1 of 4: 25%
    assert hook.num_skipped == 5


def test_invalid_arguments():
    with pytest.raises(ValueError, match='max_skip_ratio'):
        BEVTSkippedFilesHook(max_skip_ratio=1.5)
    with pytest.raises(ValueError, match='interval'):
        BEVTSkippedFilesHook(interval=0)
    with pytest.raises(ValueError, match='min_samples'):
        BEVTSkippedFilesHook(min_samples=-1)


# ------------------------------------------------------------- 2 ranks
def _rank_main(rank: int) -> dict:
    hook = BEVTSkippedFilesHook(max_skip_ratio=0.35, min_samples=8)
    runner = _FakeRunner()
    result = dict(logged=[], error=None)
    batches = {
        0: [_batch([], []),
            _batch(['r1_b'], []),
            _batch([], [])],
        1: [
            _batch(['r1_a'], []),
            _batch(['r1_a'], ['r1_b']),
            _batch(['x', 'y'], ['z'])
        ],
    }[rank]
    try:
        for batch in batches:
            runner.step(hook, batch)
            result['logged'].append(runner.logged)
    except RuntimeError as error:
        result['error'] = str(error)
    result.update(
        warnings=runner.warnings, num_loaded=hook.num_loaded, iter=runner.iter)
    return result


def test_two_ranks_share_counts_names_and_stop(tmp_path):
    results = run_gloo_ranks(_rank_main, str(tmp_path), timeout=60)
    for result in results:
        # distinct files of both ranks, the same everywhere
        assert result['logged'] == [1, 2]
        # rank 0 names the files rank 1 skipped; r1_b (skipped by both
        # ranks in the same iteration) is named once
        assert [w.split()[4] for w in result['warnings']
                ] == ['r1_a', 'r1_b', 'x', 'y', 'z']
        # iteration 2: 4 of 12 loads failed (33% <= 35%); iteration 3:
        # 7 of 19 (37%) > 35%: both ranks stop at the same iteration
        assert result['iter'] == 2
        assert '7 of 19 sample loads' in result['error']
        assert result['num_loaded'] == 12


# --------------------------------------------------------- real Runner
def test_runner_logs_each_bad_file_once_main_process(tmp_path):
    runner = _runner(
        tmp_path, num_workers=0, num_good=2, min_samples=0, max_skip_ratio=1)
    runner.train()
    _check_log(runner, tmp_path)


def test_runner_gets_failures_from_worker_processes(tmp_path):
    runner = _runner(
        tmp_path, num_workers=2, num_good=2, min_samples=0, max_skip_ratio=1)
    runner.train()
    _check_log(runner, tmp_path)


def test_runner_stops_when_too_many_files_fail(tmp_path):
    runner = _runner(
        tmp_path, num_workers=0, num_good=2, min_samples=4, max_skip_ratio=0.2)
    with pytest.raises(
            RuntimeError, match='Too many unreadable files') as info:
        runner.train()
    message = str(info.value)
    assert 'max_skip_ratio=20.0%' in message
    assert any(
        osp.join(str(tmp_path / 'data'), name) in message for name in BAD)
    assert 'check_videos.py' in message
    assert runner.iter < 6  # it stopped early
