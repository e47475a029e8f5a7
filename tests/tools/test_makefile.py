# Copyright (c) bevt contributors. All rights reserved.
"""The Makefile's disk-space check before it creates an environment."""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    shutil.which('make') is None, reason='needs GNU make')


def make(*args):
    return subprocess.run(['make', '--no-print-directory', *args],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=60)


def test_refuses_a_new_environment_without_space(tmp_path):
    venv = tmp_path / 'not' / 'yet' / 'venv'  # parents do not exist yet
    result = make('dev', f'BEVT_VENV={venv}', 'VENV_MIN_FREE_MB=999999999')
    assert result.returncode != 0
    assert f'creating the environment {venv} needs about 999999999 MB ' \
        f'free, {tmp_path} has' in result.stderr
    assert 'BEVT_VENV' in result.stderr
    assert not (tmp_path / 'not').exists()  # nothing was created


def test_space_check_passes_with_room(tmp_path):
    result = make('check-space', f'BEVT_VENV={tmp_path}/venv',
                  'VENV_MIN_FREE_MB=0')
    assert result.returncode == 0, result.stderr
