# Copyright (c) bevt contributors. All rights reserved.
"""Weighted kNN accuracy of a pretrained backbone (top-1 / top-5).

The protocol and the code of the kNN monitor ``BEVTKNNHook``
(``bevt/engine/hooks/knn_hook.py``): the backbone of CONFIG's model embeds a
labelled bank set and a labelled query set (unmasked centre views,
mean-pooled stage-4 tokens), and each query is classified by the
similarity-weighted vote of its k nearest bank samples (DINO's
``eval_knn.py``: L2-normalised features, k = 20, temperature 0.07). For the
same checkpoint and sets it prints what the hook logged.

CHECKPOINT is a bevt pretraining checkpoint, or one converted for mmaction2
by ``tools/model_converters/bevt_to_mmaction.py`` without ``--window-size``
(its ``backbone.`` keys, or bare keys with ``--bare``; it has no image patch
embedding, so only video sets can be used); ``--random-init`` uses the
backbone's random initialisation instead. The sets are those of the
``BEVTKNNHook`` in the config's ``custom_hooks``; ``--bank`` / ``--query``
replace their annotation lists (and ``--bank-prefix`` / ``--query-prefix``
their data folders). Under an ``AmpOptimWrapper`` config on a GPU the
features are extracted under autocast, as the hook does.

Example::

    python tools/analysis_tools/knn_eval.py \\
        configs/bevt/pretrain.py work_dirs/pretrain/epoch_150.pth \\
        --max-samples 4000
"""
import argparse
import os.path as osp
import sys
from typing import Any, Optional, Sequence, Tuple

#: Backbone weights that a checkpoint converted for mmaction2 lacks: the
#: pretraining-only modules and the derived index buffers.
PRETRAIN_ONLY = ('patch_embed_2d.', 'mask_token', 'image_decoder.',
                 'video_decoder.')
DERIVED = ('relative_position_index', 'attn_mask')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('config', help='a bevt pretraining config')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='bevt pretraining checkpoint or one converted for mmaction2')
    parser.add_argument(
        '--random-init',
        action='store_true',
        help='no checkpoint: the backbone at random init (--seed)')
    for name in ('bank', 'query'):
        parser.add_argument(
            f'--{name}',
            metavar='LIST',
            help=f'annotation list of the {name} set (default: the '
            'config\'s BEVTKNNHook)')
        parser.add_argument(
            f'--{name}-prefix',
            metavar='DIR',
            help=f'data folder of the {name} set\'s files')
    parser.add_argument(
        '--max-samples', type=int, help='samples kept of each set')
    parser.add_argument('--k', type=int, help='neighbours (default 20)')
    parser.add_argument(
        '--temperature', type=float, help='vote temperature (default 0.07)')
    parser.add_argument('--batch-size', type=int, help='batch of both sets')
    parser.add_argument('--num-workers', type=int, help='loader workers')
    parser.add_argument(
        '--device', help='e.g. cpu, cuda (default: cuda if available)')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of --random-init')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value')
    args = parser.parse_args(argv)
    if (args.checkpoint is None) == (not args.random_init):
        parser.error('give a CHECKPOINT or --random-init (not both)')
    return args


def hook_config(cfg: Any, args: argparse.Namespace) -> dict:
    """The ``BEVTKNNHook`` settings of the config, with the command line's.

    Raises:
        ValueError: The config has no ``BEVTKNNHook``.
    """
    import copy
    hooks = [
        h for h in cfg.get('custom_hooks', None) or []
        if h.get('type') in ('BEVTKNNHook', 'bevt.BEVTKNNHook')
    ]
    if not hooks:
        raise ValueError('the config has no BEVTKNNHook in custom_hooks: '
                         'its kNN sets (datasets and pipelines) come from '
                         'there')
    hook = copy.deepcopy(dict(hooks[0]))
    hook.pop('type')
    for key in ('k', 'temperature'):
        if getattr(args, key) is not None:
            hook[key] = getattr(args, key)
    for name in ('bank', 'query'):
        loader = dict(hook[name])
        # on each set: a set's own max_samples wins over the hook's
        for key in ('batch_size', 'num_workers', 'max_samples'):
            if getattr(args, key) is not None:
                loader[key] = getattr(args, key)
        if getattr(args, name) is not None:
            loader['dataset'] = _replace(loader['dataset'], 'ann_file',
                                         getattr(args, name))
        prefix = getattr(args, f'{name}_prefix')
        if prefix is not None:
            loader['dataset'] = _replace(loader['dataset'], 'data_prefix',
                                         prefix)
        hook[name] = loader
    return hook


def _replace(cfg: Any, key: str, value: str) -> Any:
    """``cfg`` with every ``key`` of its nested dicts set to ``value`` (the
    values of a ``data_prefix`` dict, e.g. ``dict(video=...)``)."""
    if isinstance(cfg, dict):
        out = {k: _replace(v, key, value) for k, v in cfg.items()}
        if key in cfg:
            old = cfg[key]
            out[key] = {
                k: value
                for k in old
            } if isinstance(old, dict) else value
        return out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(_replace(v, key, value) for v in cfg)
    return cfg


def load_backbone(model: Any, path: str) -> str:
    """Load the backbone weights of a checkpoint into ``model.backbone``.

    Returns:
        str: ``'bevt'`` (every weight found) or ``'mmaction2'`` (the
        pretraining-only modules missing).

    Raises:
        FileNotFoundError: No such file.
        ValueError: The file has unknown or too few backbone weights.
    """
    from mmengine.runner import CheckpointLoader
    if not osp.isfile(path):
        raise FileNotFoundError(f'No such checkpoint: {path}')
    ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    state = {
        k[len('module.'):] if k.startswith('module.') else k: v
        for k, v in state.items()
    }
    if any(k.startswith('backbone.') for k in state):
        state = {
            k[len('backbone.'):]: v
            for k, v in state.items() if k.startswith('backbone.')
        }
    missing, unexpected = model.backbone.load_state_dict(state, strict=False)
    if unexpected:
        raise ValueError(f'{path} has weights the backbone does not know: '
                         f'{", ".join(unexpected[:5])}')
    missing = [k for k in missing if not k.endswith(DERIVED)]
    lacking = [k for k in missing if not k.startswith(PRETRAIN_ONLY)]
    if lacking:
        raise ValueError(f'{path} lacks backbone weights: '
                         f'{", ".join(lacking[:5])}')
    return 'mmaction2' if missing else 'bevt'


def amp_of(cfg: Any, device: str) -> Tuple[bool, Optional[Any]]:
    """``(amp, dtype)`` as the runner's ``AmpOptimWrapper`` would use."""
    import torch
    wrapper = cfg.get('optim_wrapper', None) or {}
    if wrapper.get(
            'type') != 'AmpOptimWrapper' or not device.startswith('cuda'):
        return False, None
    dtype = wrapper.get('dtype')
    return True, getattr(torch, dtype) if isinstance(dtype, str) else dtype


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit status."""
    args = parse_args(argv)
    try:
        return _main(args)
    except (ValueError, FileNotFoundError, KeyError, TypeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    """:func:`main` after parsing."""
    import torch
    from mmengine.registry import init_default_scope
    from mmengine.runner import set_random_seed

    import bevt.datasets  # noqa: F401  (registers the parts)
    import bevt.engine  # noqa: F401
    import bevt.models  # noqa: F401
    from bevt.engine.hooks.knn_hook import BEVTKNNHook
    from bevt.registry import MODELS
    from bevt.utils import load_config

    cfg = load_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'bevt'))
    hook = BEVTKNNHook(**hook_config(cfg, args))
    missing = hook.check_sets()
    if missing:
        raise FileNotFoundError('the annotation files of the kNN sets are '
                                f'missing: {", ".join(missing)}')
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')

    set_random_seed(args.seed)
    model_cfg = cfg.model
    model_cfg.backbone.pretrained = None  # weights come from CHECKPOINT
    model = MODELS.build(model_cfg)
    if args.random_init:
        model.backbone.init_weights()
        source = f'random init (seed {args.seed})'
    else:
        kind = load_backbone(model, args.checkpoint)
        source = f'{args.checkpoint} ({kind})'
        if kind == 'mmaction2':
            for name, loader in hook.loaders().items():
                if loader.dataset[0]['inputs']['imgs'].dim() == 3:
                    raise ValueError(
                        f'the {name} set has images, and a checkpoint '
                        'converted for mmaction2 has no image patch '
                        'embedding: use video sets')
    model = model.to(device)
    amp, dtype = amp_of(cfg, device)
    result = hook.evaluate(model, amp, dtype)
    print(f'kNN (k={hook.k}, T={hook.temperature}) of {source} on '
          f'{result["num_bank"]} bank / {result["num_query"]} query samples'
          f'{" (autocast)" if amp else ""}:')
    print(f'top-1 {100 * result["top1"]:.2f} %  '
          f'top-5 {100 * result["top5"]:.2f} %')
    print(f'knn/top1: {result["top1"]:.4f}  knn/top5: {result["top5"]:.4f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
