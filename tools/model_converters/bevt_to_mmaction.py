# Copyright (c) bevt contributors. All rights reserved.
"""Convert a BEVT pretraining checkpoint for mmaction2 fine-tuning.

Input: a checkpoint of bevt's ``BEVT`` model, or an official BEVT one (its
names are mapped first). Output: the weights of mmaction2's
``SwinTransformer3D``:

- the ``backbone.*`` keys (``module.`` / ``encoder.`` prefixes stripped);
- dropped: ``patch_embed_2d``, ``mask_token``, the fusion decoders
  (``image_decoder`` / ``video_decoder``, officially ``lm_down*`` /
  ``fpn*``), ``head`` / ``cls_head`` (with the tokenizer),
  ``attn_mask``, and ``relative_position_index`` (rebuilt for the target
  window);
- the top-level official ``norm`` becomes ``norm3`` (bevt's is already);
- ``--window-size T H W``: every relative-position table is resized per
  head with trilinear interpolation over its (2Wd-1, 2Wh-1, 2Ww-1) grid,
  e.g. (15*13*13, nH) -> (31*13*13, nH) for window (16, 7, 7).

The result is verified by a strict load into a ``SwinTransformer3D`` built
from the shapes in the file (mmengine's ``Pretrained`` init only warns on a
missing key or a shape mismatch and leaves random weights). Saved as
``{'state_dict': {'backbone.<key>': ...}, 'meta': ...}`` for
``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``,
or with ``--bare`` without the prefix for ``pretrained=...``; in both cases
set ``pretrained2d=False``.

Example::

    python tools/model_converters/bevt_to_mmaction.py \\
        work_dirs/bevt_pretrain/epoch_150.pth \\
        checkpoints/bevt_swin-base_w1677_mmaction.pth --window-size 16 7 7
"""
import argparse
import os.path as osp
import sys
from typing import Optional, Sequence


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (Sequence[str], optional): Arguments. Defaults to None
            (``sys.argv[1:]``).

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='Convert a BEVT pretraining checkpoint (bevt or '
        'official) into mmaction2 SwinTransformer3D weights.')
    parser.add_argument('src', help='BEVT pretraining checkpoint')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument(
        '--window-size',
        type=int,
        nargs=3,
        metavar=('T', 'H', 'W'),
        help='target window; the relative-position tables are resized '
        '(trilinear) to it, e.g. 16 7 7 (default: keep the source window)')
    parser.add_argument(
        '--source-window',
        type=int,
        nargs=3,
        metavar=('T', 'H', 'W'),
        help='window of SRC, if the tables do not tell (default: inferred, '
        '(8, 7, 7) for Swin-B)')
    parser.add_argument(
        '--bare',
        action='store_true',
        help='save the keys without the "backbone." prefix, for the '
        'backbone\'s pretrained= argument')
    parser.add_argument(
        '--trust-pickle',
        action='store_true',
        help='unpickle SRC with weights_only=False (can run code stored in '
        'the file: only for a file you trust)')
    parser.add_argument(
        '--verbose', action='store_true', help='list every key')
    return parser.parse_args(argv)


def convert(args: argparse.Namespace) -> None:
    """Convert, verify, save and print the summary.

    Args:
        args (argparse.Namespace): See :func:`parse_args`.
    """
    from bevt.utils import checkpoint_convert as cc
    report = cc.ConversionReport()
    checkpoint = cc.load_checkpoint_file(args.src, args.trust_pickle)
    state_dict = cc.extract_state_dict(checkpoint, args.src, report)
    try:
        result = cc.convert_bevt_to_mmaction(state_dict, args.window_size,
                                             args.source_window, report)
        cc.verify_mmaction_backbone(result.state_dict, result.window_size)
    except ValueError as e:
        raise ValueError(f'{args.src}: {e}') from e

    kwargs = cc.infer_swin3d_kwargs(result.state_dict)
    window = list(result.window_size)
    meta = dict(
        converter='tools/model_converters/bevt_to_mmaction.py',
        source=osp.basename(args.src),
        arch=kwargs['arch'],
        patch_size=list(kwargs['patch_size']),
        window_size=window)
    prefix = '' if args.bare else 'backbone.'
    cc.save_checkpoint({
        prefix + k: v
        for k, v in result.state_dict.items()
    }, args.dst, meta)
    print(report.summary(args.verbose))
    print('verified: loads strictly into mmaction2 '
          f'{cc.describe_swin3d(kwargs, result.window_size)}')
    if args.bare:
        init = f'pretrained=\'{args.dst}\''
    else:
        init = (f'init_cfg=dict(type=\'Pretrained\', checkpoint='
                f'\'{args.dst}\', prefix=\'backbone.\')')
    print(f'saved {args.dst}; fine-tune with backbone=dict('
          f'type=\'SwinTransformer3D\', arch={kwargs["arch"]}, '
          f'window_size={tuple(window)}, pretrained2d=False, {init})')


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the conversion.

    Args:
        argv (Sequence[str], optional): Arguments. Defaults to None.

    Returns:
        int: 0 on success, 1 (after printing the error) otherwise.
    """
    from bevt.utils import checkpoint_convert as cc

    return cc.run_conversion(convert, parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
