# Copyright (c) bevt contributors. All rights reserved.
import glob
import os
import os.path as osp
import time

import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.runner.checkpoint import save_checkpoint

from bevt.engine.runner import (AtomicLocalBackend, checkpoint_problem,
                                find_resumable_checkpoint)
from bevt.testing import REPO_ROOT
from bevt.utils import load_config

ATOMIC = dict(backend='atomic_local')


def test_mmengine_saves_through_the_atomic_backend(tmp_path):
    path = str(tmp_path / 'sub' / 'epoch_1.pth')
    assert isinstance(
        get_file_backend(path, backend_args=ATOMIC), AtomicLocalBackend)
    save_checkpoint({'state_dict': {
        'w': torch.ones(3)
    }},
                    path,
                    backend_args=ATOMIC)
    assert checkpoint_problem(path) is None
    assert torch.load(path)['state_dict']['w'].sum() == 3
    assert os.listdir(tmp_path / 'sub') == ['epoch_1.pth']


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / 'epoch_1.pth'
    AtomicLocalBackend().put(b'old', path)

    def fail(*args):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'fsync', fail)
    with pytest.raises(OSError, match='disk full'):
        AtomicLocalBackend().put(b'new, longer', path)
    assert path.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['epoch_1.pth']  # no partial file


def test_saving_again_removes_what_a_killed_writer_left(tmp_path):
    (tmp_path / 'iter_6.pth.tmp-4242').write_bytes(b'half of a checkpoint')
    (tmp_path / 'iter_7.pth.tmp-4242').write_bytes(b'another file\'s')
    AtomicLocalBackend().put(b'whole', tmp_path / 'iter_6.pth')
    assert sorted(
        os.listdir(tmp_path)) == ['iter_6.pth', 'iter_7.pth.tmp-4242']


def _save(path, value):
    torch.save({'state_dict': {'w': torch.full((4, ), value)}}, str(path))
    time.sleep(0.02)  # distinct modification times


def test_find_resumable_checkpoint_passes_over_unreadable_ones(tmp_path):
    assert find_resumable_checkpoint(str(tmp_path)) == (None, [])
    for i in (1, 2, 3):
        _save(tmp_path / f'iter_{i}.pth', i)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_3.pth'))
    assert find_resumable_checkpoint(str(tmp_path)) == (str(tmp_path /
                                                            'iter_3.pth'), [])
    data = (tmp_path / 'iter_3.pth').read_bytes()
    (tmp_path / 'iter_3.pth').write_bytes(data[:len(data) // 2])
    (tmp_path / 'iter_2.pth').write_bytes(b'')
    (tmp_path / 'iter_4.pth.tmp-123').write_bytes(b'partial')
    path, unreadable = find_resumable_checkpoint(str(tmp_path))
    assert path == str(tmp_path / 'iter_1.pth')
    assert [p for p, _ in unreadable
            ] == [str(tmp_path / 'iter_3.pth'),
                  str(tmp_path / 'iter_2.pth')]
    assert all('truncated' in why for _, why in unreadable)


def test_every_config_writes_checkpoints_atomically():
    configs = glob.glob(
        osp.join(REPO_ROOT, 'configs', 'bevt', '**', '*.py'), recursive=True)
    assert configs
    for path in configs:
        cfg = load_config(path)
        hook = cfg.default_hooks.checkpoint
        assert hook.get('backend_args') == ATOMIC, path
