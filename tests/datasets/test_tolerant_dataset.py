# Copyright (c) bevt contributors. All rights reserved.
import os.path as osp
import pickle

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope
from torch.utils.data import Dataset

from bevt.datasets.tolerant_dataset import (BEVTTolerantDataset,
                                            attach_skipped, describe_error)
from bevt.registry import DATASETS

GOOD = ['good_0.mp4', 'good_1.mp4', 'good_2.mp4', 'good_3.mp4']
BAD = ['zero.mp4', 'truncated.mp4', 'random.mp4', 'missing.mp4']
BAD_LABEL = 9  # every bad file has this label, no good one has


def _write_video(path: str, seed: int) -> None:
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), 8,
                             (32, 32))
    rng = np.random.default_rng(seed)
    for _ in range(16):
        writer.write(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    writer.release()


def _make_data(root: str, good=GOOD, bad=BAD) -> str:
    """Good videos (label = index) and bad ones (label 9); the list."""
    for i, name in enumerate(good):
        _write_video(osp.join(root, name), i)
    _write_video(osp.join(root, 'whole.mp4'), 99)
    with open(osp.join(root, 'whole.mp4'), 'rb') as file:
        data = file.read()
    if 'zero.mp4' in bad:
        open(osp.join(root, 'zero.mp4'), 'wb').close()
    if 'truncated.mp4' in bad:
        with open(osp.join(root, 'truncated.mp4'), 'wb') as file:
            file.write(data[:len(data) // 2])
    if 'random.mp4' in bad:
        with open(osp.join(root, 'random.mp4'), 'wb') as file:
            file.write(np.random.default_rng(0).bytes(4000))
    lines = [f'{name} {i}' for i, name in enumerate(good)]
    lines += [f'{name} {BAD_LABEL}' for name in bad]
    ann_file = osp.join(root, 'list.txt')
    with open(ann_file, 'w') as file:
        file.write('\n'.join(lines) + '\n')
    return ann_file


def _video_cfg(root: str, ann_file: str) -> dict:
    return dict(
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


@pytest.fixture
def data(tmp_path):
    root = str(tmp_path)
    return root, _make_data(root)


def _build(root, ann_file, **kwargs):
    with DefaultScope.overwrite_default_scope('bevt'):
        return DATASETS.build(
            dict(
                type='BEVTTolerantDataset',
                dataset=_video_cfg(root, ann_file),
                **kwargs))


def test_every_index_gives_a_good_sample(data):
    root, ann_file = data
    dataset = _build(root, ann_file)
    assert isinstance(dataset, BEVTTolerantDataset)
    assert len(dataset) == len(GOOD) + len(BAD)
    bad_paths = {osp.join(root, name) for name in BAD}
    np.random.seed(0)
    skipped_by_index = {}
    for idx in range(len(dataset)):
        sample = dataset[idx]
        assert sample['inputs'].shape == (1, 3, 4, 32, 32)
        data_sample = sample['data_samples']
        label = int(data_sample.gt_label)
        assert label != BAD_LABEL, 'a bad file was returned'
        files = data_sample.metainfo.get('skipped_files', [])
        reasons = data_sample.metainfo.get('skip_reasons', [])
        assert len(files) == len(reasons)
        assert all(reason for reason in reasons)
        assert set(files) <= bad_paths
        skipped_by_index[idx] = files
    for idx, name in enumerate(BAD, start=len(GOOD)):
        # the failing file of the index comes first
        assert skipped_by_index[idx][0] == osp.join(root, name)
    for idx in range(len(GOOD)):
        assert skipped_by_index[idx] == []


def test_reasons_name_the_error(data):
    root, ann_file = data
    dataset = _build(root, ann_file)
    np.random.seed(1)
    reasons = {}
    for idx in range(len(GOOD), len(dataset)):
        meta = dataset[idx]['data_samples'].metainfo
        reasons[osp.basename(
            meta['skipped_files'][0])] = meta['skip_reasons'][0]
    assert 'missing.mp4' in reasons['missing.mp4']
    assert all(':' in reason for reason in reasons.values())


def test_all_bad_raises_naming_files(tmp_path):
    root = str(tmp_path)
    ann_file = _make_data(root, good=[])
    dataset = _build(root, ann_file, max_retries=3)
    np.random.seed(0)
    with pytest.raises(RuntimeError) as info:
        dataset[0]
    message = str(info.value)
    assert '4 samples in a row' in message
    assert osp.join(root, 'zero.mp4') in message
    assert 'check_videos.py' in message
    for line in message.splitlines()[1:5]:
        assert any(name in line for name in BAD), line


def test_no_retries_raises_on_first_failure(data):
    root, ann_file = data
    dataset = _build(root, ann_file, max_retries=0)
    assert int(dataset[0]['data_samples'].gt_label) == 0
    with pytest.raises(RuntimeError, match='1 samples in a row'):
        dataset[len(GOOD)]


def test_same_seed_same_replacement(data):
    root, ann_file = data
    dataset = _build(root, ann_file)
    labels = []
    for _ in range(2):
        np.random.seed(123)
        labels.append([
            int(dataset[idx]['data_samples'].gt_label)
            for idx in range(len(dataset))
        ])
    assert labels[0] == labels[1]


def test_passthrough_and_wrappers(data):
    root, ann_file = data
    with DefaultScope.overwrite_default_scope('bevt'):
        inner = DATASETS.build(_video_cfg(root, ann_file))
        repeated = DATASETS.build(
            dict(
                type='BEVTTolerantDataset',
                dataset=dict(
                    type='RepeatDataset',
                    times=2,
                    dataset=_video_cfg(root, ann_file)),
                lazy_init=True))
    dataset = BEVTTolerantDataset(inner)
    assert dataset.dataset is inner
    assert dataset.metainfo == inner.metainfo
    assert dataset.get_data_info(1)['filename'] == osp.join(root, GOOD[1])
    assert dataset.test_mode is False  # read from the wrapped dataset
    with pytest.raises(AttributeError):
        dataset.no_such_attribute
    assert dataset.file_of(len(GOOD)) == osp.join(root, BAD[0])
    assert 'BEVTTolerantDataset' in repr(dataset)

    assert not repeated._fully_initialized
    repeated.full_init()
    assert len(repeated) == 2 * len(dataset)
    np.random.seed(0)
    sample = repeated[len(dataset) + len(GOOD)]  # zero.mp4, 2nd copy
    assert sample['data_samples'].skipped_files[0] == osp.join(
        root, 'zero.mp4')

    # picklable, as spawned DataLoader workers need
    copy = pickle.loads(pickle.dumps(dataset))
    assert len(copy) == len(dataset)
    assert int(copy[2]['data_samples'].gt_label) == 2


def test_invalid_arguments(data):
    root, ann_file = data
    with pytest.raises(TypeError, match='config dict or a Dataset'):
        BEVTTolerantDataset([1, 2, 3])
    with pytest.raises(ValueError, match='max_retries'):
        _build(root, ann_file, max_retries=-1)


class _ToyDataset(Dataset):
    """Index i returns a plain dict, None (even i) or raises (i % 3 == 0)."""

    def __init__(self) -> None:
        self.metainfo = dict(classes=('a', ))

    def __len__(self) -> int:
        return 6

    def get_data_info(self, idx: int) -> dict:
        return dict(img_path=f'img_{idx}.png')

    def __getitem__(self, idx: int):
        if idx == 0:
            raise OSError('cannot identify image file')
        if idx == 2:
            return None
        return dict(inputs=torch.full((2, ), float(idx)))


def test_none_and_plain_dict_samples():
    dataset = BEVTTolerantDataset(_ToyDataset(), max_retries=50)
    assert dataset.metainfo == dict(classes=('a', ))
    np.random.seed(0)
    sample = dataset[2]
    assert int(sample['inputs'][0]) not in (0, 2)
    files = sample['skipped_files'].split('\n')
    reasons = sample['skip_reasons'].split('\n')
    assert files[0] == 'img_2.png'
    assert reasons[0] == 'the dataset returned None'
    assert len(files) == len(reasons)
    assert set(files) <= {'img_0.png', 'img_2.png'}
    sample = dataset[0]
    assert sample['skipped_files'].split('\n')[0] == 'img_0.png'
    assert sample['skip_reasons'].startswith('OSError: cannot identify')
    assert 'skipped_files' not in dataset[1]


def test_memory_error_is_not_swallowed():

    class _Oom(_ToyDataset):

        def __getitem__(self, idx):
            raise MemoryError

    with pytest.raises(MemoryError):
        BEVTTolerantDataset(_Oom())[1]


def test_helpers():
    assert describe_error(ValueError('a\nb')) == 'ValueError: a'
    assert describe_error(KeyError()) == 'KeyError'
    assert len(describe_error(ValueError('x' * 1000))) == 300
    sample = dict(inputs=None)
    assert attach_skipped(sample, [], []) == dict(inputs=None)
    attach_skipped(sample, ['a'], ['r1'])
    attach_skipped(sample, ['b'], ['r2'])
    assert sample['skipped_files'] == 'a\nb'
    assert sample['skip_reasons'] == 'r1\nr2'


def test_mmpretrain_image_dataset(tmp_path):
    root = str(tmp_path)
    for i in range(3):
        cv2.imwrite(
            osp.join(root, f'good_{i}.png'),
            np.full((16, 16, 3), 50 * i, np.uint8))
    with open(osp.join(root, 'bad.png'), 'wb') as file:
        file.write(b'not a png' * 20)
    with open(osp.join(root, 'list.txt'), 'w') as file:
        file.write('good_0.png 0\ngood_1.png 1\nbad.png 9\ngood_2.png 2\n')
    with DefaultScope.overwrite_default_scope('bevt'):
        dataset = DATASETS.build(
            dict(
                type='BEVTTolerantDataset',
                dataset=dict(
                    type='mmpretrain.CustomDataset',
                    ann_file=osp.join(root, 'list.txt'),
                    data_prefix=root,
                    pipeline=[
                        dict(type='mmpretrain.LoadImageFromFile'),
                        dict(type='mmpretrain.PackInputs')
                    ])))
    np.random.seed(0)
    for idx in range(4):
        sample = dataset[idx]
        assert sample['inputs'].shape == (3, 16, 16)
        label = int(sample['data_samples'].gt_label)
        assert label != 9
        files = sample['data_samples'].metainfo.get('skipped_files', [])
        assert set(files) == ({osp.join(root, 'bad.png')}
                              if idx == 2 else set())
