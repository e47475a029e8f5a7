# Copyright (c) bevt contributors. All rights reserved.
"""mmaction2 / mmpretrain 1.2.0 with transformers >= 5 installed."""
import os
import types
import warnings

import pytest

from bevt.compat import multimodal
from bevt.testing import fresh_env, run_python


def fake_transformers(root, version: str) -> str:
    """A ``transformers`` distribution without what the multi-modal models
    of mmaction2 / mmpretrain 1.2.0 import (as in transformers 5)."""
    package = root / 'transformers'
    package.mkdir()
    (package / '__init__.py').write_text(f'__version__ = {version!r}\n')
    (package / 'modeling_utils.py').write_text('')
    info = root / f'transformers-{version}.dist-info'
    info.mkdir()
    (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: '
                                   f'transformers\nVersion: {version}\n')
    return str(root)


def test_models_import_with_transformers_5(tmp_path):
    path = fake_transformers(tmp_path, '5.17.0')
    env = fresh_env(
        PYTHONPATH=os.pathsep.join([path,
                                    os.environ.get('PYTHONPATH', '')]),
        PYTHONWARNINGS='default')
    result = run_python(
        'import transformers, mmaction.models, mmpretrain.models\n'
        'import mmaction.utils.dependency as a\n'
        'import mmpretrain.utils.dependency as p\n'
        'from mmaction.registry import MODELS\n'
        'print(transformers.__version__, a.WITH_MULTIMODAL, '
        'p.WITH_MULTIMODAL)\n'
        'try:\n'
        '    MODELS.build(dict(type="VindLURetrieval"))\n'
        'except ImportError as e:\n'
        '    print("ERROR", e)\n',
        env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == '5.17.0 False False'
    assert 'multi-modal dependencies' in lines[1]
    assert 'transformers 5.x is installed' in result.stderr


@pytest.mark.parametrize('major,flag,expected', [(5, True, False),
                                                 (4, True, True),
                                                 (0, False, False)])
def test_flag_only_turned_off_under_transformers_5(monkeypatch, major, flag,
                                                   expected):
    monkeypatch.setattr(multimodal, 'transformers_major', lambda: major)
    module = types.ModuleType('mmaction.utils.dependency')
    module.WITH_MULTIMODAL = flag
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        multimodal.disable_broken_multimodal(module)
    assert module.WITH_MULTIMODAL is expected
    assert len(caught) == (1 if flag and not expected else 0)
