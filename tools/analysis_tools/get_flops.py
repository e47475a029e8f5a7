# Copyright (c) bevt contributors. All rights reserved.
"""Forward FLOPs and parameters of a BEVT config's model.

Counts one clip (``--stream video``) or one image (``--stream img``)
through the backbone and the head's vocabulary projection on every token
(no mask: the cost of a full forward), and, separately, the tokenizer on
that sample's tokenizer view ((H/16) x its downsample pixels wide, e.g.
112 px for DALL-E on 224-px inputs). FLOPs come from
:class:`torch.utils.flop_counter.FlopCounterMode` and count a multiply-add
as **2** FLOPs (mmaction2's and Video Swin's tables count multiply-adds:
GMACs = GFLOPs / 2). All weights stay at random init; nothing is loaded.

Example::

    python tools/analysis_tools/get_flops.py configs/bevt/pretrain.py
    python tools/analysis_tools/get_flops.py configs/bevt/pretrain.py \\
        --stream img --shape 224 224
"""
import argparse
import os.path as osp
import sys
from typing import Any, Dict, Optional, Sequence, Tuple

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: The arguments.
    """
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(
        description='Forward FLOPs (a multiply-add = 2 FLOPs) and '
        'parameters of a BEVT model: backbone + head, and the tokenizer '
        'separately, for one clip or one image')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        help='input size: "T H W" (or "H W", "S") for a clip, "H W" (or '
        '"S") for an image (default: from the config\'s train pipeline)')
    parser.add_argument(
        '--stream',
        choices=['video', 'img'],
        default='video',
        help='count a clip (video) or an image (img)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, "key=value"')
    args = parser.parse_args(argv)
    if args.shape is not None:
        if len(args.shape) > (3 if args.stream == 'video' else 2) or any(
                s < 1 for s in args.shape):
            parser.error(f'Invalid --shape {args.shape} for --stream '
                         f'{args.stream}')
    return args


def input_shape(args: argparse.Namespace,
                cfg: Any) -> Tuple[Optional[int], int, int]:
    """(T or None, H, W) of the counted sample.

    Raises:
        ValueError: If neither ``--shape`` nor the config gives it.
    """
    from benchmark import stream_specs

    spec = stream_specs(cfg).get(args.stream)
    clip_len = spec.clip_len if spec is not None else None
    shape = args.shape
    if shape is None:
        if spec is None:
            raise ValueError(f'The config has no {args.stream} train '
                             'pipeline to read the input size from; pass '
                             '--shape')
        return clip_len, spec.crop[0], spec.crop[1]
    if len(shape) == 1:
        shape = [shape[0], shape[0]]
    if args.stream == 'img':
        return None, shape[0], shape[1]
    if len(shape) == 3:
        return shape[0], shape[1], shape[2]
    if clip_len is None:
        raise ValueError('--shape H W needs a clip length from the config; '
                         'pass --shape T H W')
    return clip_len, shape[0], shape[1]


def count(fn: Any, *inputs: Any) -> int:
    """FLOPs of ``fn(*inputs)`` under no-grad."""
    import torch
    from benchmark import flop_counter

    with torch.no_grad(), flop_counter() as counter:
        fn(*inputs)
    return int(counter.get_total_flops())


def params(module: Any) -> int:
    """Number of parameters of ``module`` (trainable or not)."""
    return sum(p.numel() for p in module.parameters())


def measure(model: Any, shape: Tuple[Optional[int], int,
                                     int]) -> Dict[str, Any]:
    """FLOPs and parameters of the parts for one sample of ``shape``.

    Args:
        model (BEVT): The model (eval mode).
        shape (tuple): (T or None, H, W).

    Returns:
        dict: GFLOPs, parameters in millions and the tensor shapes.
    """
    import torch

    frames, height, width = shape
    lead = (1, 3) + ((frames, ) if frames else ())
    x = torch.zeros(lead + (height, width))  # (1, 3, [T, ] H, W)
    backbone, head = model.backbone, model.head
    stride = backbone.patch_size[1] * getattr(backbone, 'mask_scale', 1)
    down = model.target_generator.downsample
    view = (height // stride * down, width // stride * down)
    tokens = {}

    def backbone_fn(inp):
        tokens['feats'] = backbone(inp)  # (1, L, C)

    backbone_flops = count(backbone_fn, x)
    head_flops = count(head.fc, tokens['feats'])
    tok_x = torch.rand(lead + view)  # (1, 3, [T, ] h, w)
    tok_flops = count(model.target_generator, tok_x)
    return dict(
        input=list(x.shape),
        tokenizer_input=list(tok_x.shape),
        tokens=int(tokens['feats'].shape[1]),
        backbone_gflops=backbone_flops / 1e9,
        head_gflops=head_flops / 1e9,
        model_gflops=(backbone_flops + head_flops) / 1e9,
        tokenizer_gflops=tok_flops / 1e9,
        backbone_mparams=params(backbone) / 1e6,
        head_mparams=params(head) / 1e6,
        model_mparams=(params(backbone) + params(head)) / 1e6,
        tokenizer_mparams=params(model.target_generator) / 1e6)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the FLOPs and parameters.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        int: The exit status.
    """
    args = parse_args(argv)
    from benchmark import build_model, make_random_init
    from mmengine.registry import init_default_scope

    import bevt.models  # noqa: F401  (registers the parts)
    from bevt.utils import load_config

    try:
        cfg = load_config(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        if 'backbone' not in (cfg.get('model') or {}):
            raise ValueError(f'{args.config} has no model with a backbone')
        init_default_scope(cfg.get('default_scope', 'bevt'))
        make_random_init(cfg)
        shape = input_shape(args, cfg)
        import torch
        model = build_model(cfg, torch.device('cpu'), 0).eval()
        out = measure(model, shape)
    except (ValueError, FileNotFoundError, KeyError, TypeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    sample = 'clip' if args.stream == 'video' else 'image'
    print(f'config: {args.config}\n'
          f'one {sample}: input {tuple(out["input"])}, {out["tokens"]} '
          f'tokens; tokenizer view {tuple(out["tokenizer_input"])}\n'
          'FLOPs: torch.utils.flop_counter.FlopCounterMode, a multiply-add '
          'counts as 2 FLOPs (GMACs = GFLOPs / 2); head = vocabulary '
          'projection of every token\n')
    rows = [('backbone + head', 'model'), ('  backbone', 'backbone'),
            ('  head', 'head'), ('tokenizer (frozen)', 'tokenizer')]
    for label, key in rows:
        print(f'{label:<20}{out[key + "_gflops"]:>12.2f} GFLOPs'
              f'{out[key + "_mparams"]:>10.2f} M params')
    return 0


if __name__ == '__main__':
    sys.exit(main())
