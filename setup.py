# Copyright (c) bevt contributors. All rights reserved.
"""Install bevt.

Besides the package, an install ships two things mmengine needs to resolve
``bevt::`` configs (see README, "How `bevt::` configs resolve"):

- ``bevt/.mim/{configs,tools,model-index.yml}``: copied for a wheel or an
  sdist, symlinked for an editable install (as mmaction2's setup.py does,
  but also for PEP 660's ``editable_wheel``);
- ``bevt-startup.pth`` in site-packages: imports ``bevt`` (standard library
  only) at interpreter start-up, which installs the import hooks of
  :mod:`bevt.compat`.
"""
import os
import os.path as osp
import shutil
import sys
from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))
STARTUP_PTH = 'bevt-startup.pth'


def get_version() -> str:
    """Read ``__version__`` from ``bevt/version.py`` without importing."""
    scope = {}
    with open(osp.join(HERE, 'bevt', 'version.py')) as f:
        exec(compile(f.read(), 'bevt/version.py', 'exec'), scope)
    return scope['__version__']


def parse_requirements(fname: str) -> list:
    """Read requirement lines, following ``-r`` includes."""
    requirements = []
    with open(osp.join(HERE, fname)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            if line.startswith('-r '):
                requirements += parse_requirements(
                    osp.join(osp.dirname(fname), line[3:].strip()))
            else:
                requirements.append(line)
    return requirements


def add_mim_extension() -> None:
    """Put ``configs``, ``tools`` and ``model-index.yml`` into ``bevt/.mim``.

    Symlinks for an editable install (``develop`` or PEP 660
    ``editable_wheel``), copies for ``bdist_wheel`` / ``sdist``.
    """
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        mode = 'symlink'
    elif any(
            cmd in sys.argv
            for cmd in ('sdist', 'bdist_wheel', 'build', 'install')):
        mode = 'copy'
    else:
        return
    mim_path = osp.join(HERE, 'bevt', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in ('tools', 'configs', 'model-index.yml'):
        src_path = osp.join(HERE, name)
        tar_path = osp.join(mim_path, name)
        if osp.islink(tar_path) or osp.isfile(tar_path):
            os.remove(tar_path)
        elif osp.isdir(tar_path):
            shutil.rmtree(tar_path)
        if mode == 'symlink':
            os.symlink(osp.relpath(src_path, mim_path), tar_path)
        elif osp.isdir(src_path):
            shutil.copytree(
                src_path,
                tar_path,
                ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src_path, tar_path)


class BuildPyWithStartupHook(build_py):
    """``build_py`` that also puts ``bevt-startup.pth`` in site-packages.

    A regular wheel takes it from ``build_lib``; a PEP 660 editable wheel
    only takes files from the install folder that ``editable_wheel``
    prepares (``install.install_lib``), so it goes there too.
    """

    def run(self) -> None:
        """Build the package, then add the start-up hook."""
        super().run()
        source = osp.join(HERE, STARTUP_PTH)
        self.copy_file(source, osp.join(self.build_lib, STARTUP_PTH))
        if getattr(self, 'editable_mode', False):
            install = self.get_finalized_command('install')
            self.copy_file(source, osp.join(install.install_lib, STARTUP_PTH))


add_mim_extension()

setup(
    name='bevt',
    version=get_version(),
    description='BEVT: BERT pretraining of video transformers, '
    'for OpenMMLab 2.x',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    keywords='computer vision, video understanding, self-supervised, BEVT',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'tests.*')),
    include_package_data=True,
    python_requires='>=3.8',
    classifiers=[
        'Programming Language :: Python :: 3',
        'License :: OSI Approved :: Apache Software License',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    license='Apache License 2.0',
    install_requires=parse_requirements('requirements/runtime.txt'),
    extras_require={
        'tests':
        parse_requirements('requirements/tests.txt'),
        'optional':
        parse_requirements('requirements/optional.txt'),
        'all':
        parse_requirements('requirements/tests.txt') +
        parse_requirements('requirements/optional.txt'),
    },
    cmdclass={'build_py': BuildPyWithStartupHook},
    zip_safe=False)
