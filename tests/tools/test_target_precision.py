# Copyright (c) bevt contributors. All rights reserved.
"""tools/analysis_tools/target_precision.py on the nano smoke configs."""
import importlib.util
import os.path as osp
import re

import pytest
from mmengine.registry import DefaultScope

from bevt.testing import PRETRAIN_SMOKE_CONFIG, REPO_ROOT, config_path

SCRIPT = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'target_precision.py')


def _load_tool():
    spec = importlib.util.spec_from_file_location('target_precision', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prints_the_share_of_changed_ids(capsys):
    _load_tool().main([PRETRAIN_SMOKE_CONFIG, '--frames', '3', '--size', '32'])
    out = capsys.readouterr().out
    assert 'BEVTDALLETokenizer, 3 frames of 32 px, 48 ids, device cpu' in out
    for dtype in ('float16', 'bfloat16'):
        share = re.search(rf'{dtype}: ([\d.]+) % of the ids differ', out)
        assert share and 0 <= float(share.group(1)) <= 100


def test_refuses_feature_targets():
    hog = config_path('bevt/smoke/bevt-hog_swin-nano-p244-w444_1xb4-8x2x1-'
                      '3e_synthetic-motion-shapes.py')
    with pytest.raises(SystemExit):
        _load_tool().main([hog, '--frames', '1', '--size', '32'])


def test_builds_in_the_config_scope_whatever_scope_is_current(capsys):
    """Another library's scope left current (as by an earlier runner in the
    same process) must not hide the config's parts."""
    with DefaultScope.overwrite_default_scope('mmengine'):
        _load_tool().main(
            [PRETRAIN_SMOKE_CONFIG, '--frames', '1', '--size', '32'])
    assert 'BEVTDALLETokenizer, 1 frames of 32 px' in capsys.readouterr().out
