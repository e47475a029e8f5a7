# Copyright (c) bevt contributors. All rights reserved.
"""Share of a config's tokenizer ids that change in float16 and bfloat16.

Builds ``model.target_generator`` of a config at random init (its real
sizes; nothing is loaded), encodes ``--frames`` frames of synthetic-motion
clips at the tokenizer view size, normalised by the config's data
preprocessor (``second_mean`` / ``second_std``), in full precision and under
``torch.autocast`` of each half dtype, and prints the share of ids that
differ from the full-precision ones.

Example::

    python tools/analysis_tools/target_precision.py \\
        configs/bevt/pretrain.py --frames 32
"""
import argparse
from typing import Optional, Sequence

import numpy as np
import torch

from bevt.utils.config_file import load_config


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Print the shares of changed ids (``argv``: the command line)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('--frames', type=int, default=32, help='frames')
    parser.add_argument('--size', type=int, default=112, help='view side')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda')
    args = parser.parse_args(argv)

    from mmengine.registry import init_default_scope

    import bevt.models  # noqa: F401  (registers the parts)
    from bevt.datasets.synthetic_motion import MOTIONS, make_clip
    from bevt.registry import MODELS

    config = load_config(args.config)
    init_default_scope(config.get('default_scope', 'bevt'))
    cfg = config.model
    cfg.target_generator.pop('init_cfg', None)
    rng = np.random.default_rng(0)
    clips = [
        make_clip(MOTIONS[i % len(MOTIONS)], rng, 16, args.size)
        for i in range(-(-args.frames // 16))
    ]  # each (16, size, size, 3), BGR
    frames = np.concatenate(clips)[:args.frames, ..., ::-1].copy()  # RGB
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()  # (F, 3, h, w)
    pre = cfg.data_preprocessor
    mean = torch.tensor(pre.get('second_mean', [0.] * 3)).view(1, 3, 1, 1)
    std = torch.tensor(pre.get('second_std', [1.] * 3)).view(1, 3, 1, 1)
    x = ((x - mean) / std).to(args.device)

    if MODELS.build(cfg.target_generator).vocab_size is None:
        parser.error(f'{cfg.target_generator.type} gives features, not ids')
    torch.backends.cudnn.allow_tf32 = False  # float32 is float32 on CUDA
    torch.backends.cuda.matmul.allow_tf32 = False
    ids = {}
    for dtype in (None, 'float16', 'bfloat16'):  # None: full precision
        torch.manual_seed(0)  # the same random weights for every dtype
        tok = MODELS.build(dict(cfg.target_generator, dtype=dtype))
        ids[dtype] = tok.to(args.device)(x)
    print(f'{type(tok).__name__}, {args.frames} frames of {args.size} px, '
          f'{ids[None].numel()} ids, device {args.device}')
    for dtype in ('float16', 'bfloat16'):
        share = (ids[dtype] != ids[None]).float().mean().item()
        print(f'{dtype}: {100 * share:.2f} % of the ids differ from the '
              'full-precision ones')


if __name__ == '__main__':
    main()
