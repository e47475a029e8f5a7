# Copyright (c) bevt contributors. All rights reserved.
"""``bevt::`` config paths, from configs outside the repository."""
import importlib.util
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig

import pytest

from bevt.testing import REPO_ROOT, fresh_env, run_python

DOWNSTREAM = ("_base_ = 'bevt::_base_/default_runtime.py'\n"
              'downstream = True\n')
READ_CONFIG = ('import sys\n'
               'from mmengine.config import Config\n'
               'cfg = Config.fromfile({path!r})\n'
               'import bevt\n'
               'print(cfg.default_scope, cfg.downstream, bevt.__file__)\n')


@pytest.fixture
def downstream_config(tmp_path) -> str:
    path = tmp_path / 'downstream.py'
    path.write_text(DOWNSTREAM)
    return str(path)


def test_fresh_process_resolves_bevt_configs(downstream_config):
    # the child never imports bevt itself before reading the config
    result = run_python(
        READ_CONFIG.format(path=downstream_config),
        cwd=osp.dirname(downstream_config))
    assert result.returncode == 0, result.stderr
    scope, downstream, bevt_file = result.stdout.split()
    assert (scope, downstream) == ('bevt', 'True')
    assert bevt_file == osp.join(REPO_ROOT, 'bevt', '__init__.py')


def test_fails_without_fix(downstream_config):
    result = run_python(
        READ_CONFIG.format(path=downstream_config),
        env=fresh_env(BEVT_NO_STARTUP_HOOK='1'))
    assert result.returncode != 0
    assert 'mmengine does not support to load bevt config' in result.stderr


def test_missing_mim_folder_is_explained(tmp_path, monkeypatch):
    from mmengine.config import config as config_module

    import bevt.compat.config_pkg as config_pkg
    monkeypatch.setattr(config_pkg, 'package_dir', lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r'\.mim.*pip install \.'):
        config_module.get_installed_path('bevt')


def test_mmaction2_train_py_reads_downstream_config(motion_data, tmp_path):
    """mmaction2's own tools/train.py (which never imports bevt) trains a
    downstream config that inherits a shipped bevt config."""
    mmaction_dir = osp.dirname(importlib.util.find_spec('mmaction').origin)
    train_py = osp.join(mmaction_dir, '.mim', 'tools', 'train.py')
    config = tmp_path / 'my_project_config.py'
    config.write_text(
        "_base_ = 'bevt::bevt/smoke/"
        "swin-nano-p244-w444_scratch_1xb8-8x2x1-12e_synthetic-motion.py'\n"
        'train_cfg = dict(max_epochs=1, val_interval=10)\n'
        'train_dataloader = dict(batch_size=8, num_workers=0,\n'
        '                        persistent_workers=False)\n')
    result = subprocess.run([
        sys.executable, train_py,
        str(config), '--work-dir',
        str(tmp_path / 'work')
    ],
                            cwd=str(tmp_path),
                            env=fresh_env(BEVT_DATA=motion_data),
                            capture_output=True,
                            text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / 'work' / 'epoch_1.pth').is_file()


def test_non_editable_install(downstream_config, tmp_path):
    """``pip install .`` (a wheel, .mim copied) into a fresh environment."""
    source = tmp_path / 'source'
    shutil.copytree(
        REPO_ROOT,
        source,
        ignore=shutil.ignore_patterns('.venv', '.git', '.mim', 'build',
                                      'work_dirs', 'data', '__pycache__',
                                      '*.egg-info', '.pytest_cache'))
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
    python = str(venv / 'bin' / 'python')
    # reuse this environment's packages (torch, mmengine, ...) by path only:
    # its .pth files (bevt's editable install, start-up hook) are not run
    child_site = run_python(
        'import sysconfig; print(sysconfig.get_paths()["purelib"])',
        python=python).stdout.strip()
    with open(osp.join(child_site, '_parent_env.pth'), 'w') as f:
        f.write(sysconfig.get_paths()['purelib'] + '\n')
    install = subprocess.run([
        python, '-m', 'pip', 'install', '-q', '--no-deps',
        '--no-build-isolation', '--no-index',
        str(source)
    ],
                             capture_output=True,
                             text=True,
                             env=fresh_env(),
                             timeout=600)
    assert install.returncode == 0, install.stderr
    installed = osp.join(child_site, 'bevt')
    mim_base = osp.join(installed, '.mim', 'configs', '_base_',
                        'default_runtime.py')
    assert osp.isfile(mim_base) and not osp.islink(
        osp.join(installed, '.mim', 'configs'))
    assert osp.isfile(osp.join(child_site, 'bevt-startup.pth'))
    result = run_python(
        READ_CONFIG.format(path=downstream_config),
        python=python,
        cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    scope, downstream, bevt_file = result.stdout.split()
    assert (scope, downstream) == ('bevt', 'True')
    assert bevt_file == osp.join(installed, '__init__.py')
