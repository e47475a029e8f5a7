# Copyright (c) bevt contributors. All rights reserved.
"""Fixes for the OpenMMLab stack as pip installs it (README: Installation).

One module per problem, each applied by :mod:`.import_hooks` when the
module it fixes is imported (the fix module itself is imported only then):

- :mod:`.mmaction_drn`: mmaction2 1.2.0's missing ``localizers/drn``;
- :mod:`.checkpoint`: mmengine checkpoints under torch >= 2.6, with
  ``weights_only`` kept on;
- :mod:`.config_pkg`: ``bevt::`` config paths;
- :mod:`.multimodal`: mmaction's and mmpretrain's multi-modal imports under
  transformers >= 5;
- :mod:`.versions`: the tested version ranges of mmengine, mmcv, mmaction.
"""
from . import import_hooks

# module being fixed -> the fix that runs right after it is imported
POST_IMPORT_FIXES = {
    'mmaction':
    'bevt.compat.versions:check_versions',
    'mmengine.config.utils':
    'bevt.compat.config_pkg:register_package',
    'mmengine.config.config':
    'bevt.compat.config_pkg:patch_get_installed_path',
    'mmengine.runner.checkpoint':
    'bevt.compat.checkpoint:use_safe_loader',
    'mmaction.utils.dependency':
    'bevt.compat.multimodal:disable_broken_multimodal',
    'mmpretrain.utils.dependency':
    'bevt.compat.multimodal:disable_broken_multimodal',
}
# missing module -> (filler of the placeholder, is it a package)
PLACEHOLDERS = {
    'mmaction.models.localizers.drn':
    ('bevt.compat.mmaction_drn:fill_package', True),
    'mmaction.models.localizers.drn.drn':
    ('bevt.compat.mmaction_drn:fill_module', False),
}


def install() -> None:
    """Install the import hooks and register every fix (idempotent)."""
    import_hooks.install()
    for name, fix in POST_IMPORT_FIXES.items():
        import_hooks.when_imported(name, fix)
    for name, (filler, is_package) in PLACEHOLDERS.items():
        import_hooks.provide_if_missing(name, filler, is_package)


__all__ = ['install', 'POST_IMPORT_FIXES', 'PLACEHOLDERS']
