# Copyright (c) bevt contributors. All rights reserved.
"""mmaction2 1.2.0 from PyPI lacks ``models/localizers/drn``."""
import importlib.util
import os.path as osp
import shutil

import pytest

from bevt.testing import fresh_env, run_python

MMACTION_DIR = osp.dirname(importlib.util.find_spec('mmaction').origin)
DRN_MISSING = not osp.isdir(
    osp.join(MMACTION_DIR, 'models', 'localizers', 'drn'))


def test_import_mmaction_models_with_fix():
    result = run_python(
        'import mmaction.models, mmaction.models.localizers.drn.drn as drn\n'
        'from mmaction.registry import MODELS\n'
        'print(getattr(drn, "BEVT_PLACEHOLDER", False))\n'
        'try:\n'
        '    MODELS.build(dict(type="DRN"))\n'
        'except RuntimeError as e:\n'
        '    print("ERROR", e)\n')
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == str(DRN_MISSING)
    if DRN_MISSING:  # building DRN gives a clear error
        assert 'DRN is unavailable' in lines[1]
        assert 'mmaction2#2714' in lines[1]


@pytest.mark.skipif(not DRN_MISSING, reason='this mmaction2 has its DRN')
def test_import_mmaction_models_fails_without_fix():
    # neither the start-up hook nor an import of bevt: the bare failure
    result = run_python(
        'import mmaction.models', env=fresh_env(BEVT_NO_STARTUP_HOOK='1'))
    assert result.returncode != 0
    assert "No module named 'mmaction.models.localizers.drn'" in (
        result.stderr)
    # importing bevt first (no start-up hook) is enough
    result = run_python(
        'import bevt, mmaction.models',
        env=fresh_env(BEVT_NO_STARTUP_HOOK='1'))
    assert result.returncode == 0, result.stderr
    # with the hooks removed again, the failure is back
    result = run_python('import bevt.compat.import_hooks as h\n'
                        'h.uninstall()\n'
                        'import mmaction.models\n')
    assert result.returncode != 0
    assert 'mmaction.models.localizers.drn' in result.stderr


def test_complete_mmaction_is_left_alone(tmp_path):
    """With a real ``drn`` package present, bevt serves no placeholder."""
    site = tmp_path / 'site'
    shutil.copytree(
        MMACTION_DIR,
        site / 'mmaction',
        ignore=shutil.ignore_patterns('.mim', '__pycache__'))
    drn = site / 'mmaction' / 'models' / 'localizers' / 'drn'
    drn.mkdir(exist_ok=True)
    (drn / '__init__.py').write_text('')
    (drn / 'drn.py').write_text('from mmaction.registry import MODELS\n'
                                'REAL = True\n'
                                '@MODELS.register_module()\n'
                                'class DRN:\n'
                                '    def __init__(self):\n'
                                '        self.real = True\n')
    result = run_python(
        'import bevt, mmaction, mmaction.models\n'
        'import mmaction.models.localizers.drn.drn as drn\n'
        'from mmaction.registry import MODELS\n'
        'assert mmaction.__file__.startswith(%r), mmaction.__file__\n'
        'print(getattr(drn, "BEVT_PLACEHOLDER", False), drn.REAL,\n'
        '      MODELS.build(dict(type="DRN")).real)\n' % str(site),
        env=fresh_env(PYTHONPATH=str(site)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['False', 'True', 'True']
