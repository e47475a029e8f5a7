# Copyright (c) bevt contributors. All rights reserved.
"""Convert an official BEVT checkpoint (xyzforever/BEVT) to bevt's layout.

The official stage-2 file (mmcv 1.x: ``state_dict`` / ``model`` / ``module``
with keys ``backbone.*`` of ``SwinTransformerBEVT``, ``cls_head.lm_head.*``
and the DALL-E encoder ``cls_head.vae_encoder.*``) becomes
``{'state_dict': ..., 'meta': ...}`` for bevt's ``BEVT`` model:

- ``backbone.lm_down`` / ``fpn.0`` -> ``backbone.image_decoder.reduce`` /
  ``upsample_spatial``; ``backbone.lm_down_st.0`` / ``fpn_s.0`` /
  ``fpn_t.0`` -> ``backbone.video_decoder.reduce`` / ``upsample_spatial`` /
  ``upsample_temporal``; the final ``backbone.norm`` -> ``backbone.norm3``;
- ``cls_head.lm_head`` -> ``head.fc``;
- ``module.`` prefixes stripped, ``attn_mask`` dropped,
  ``relative_position_index`` rebuilt; the tokenizer keys are dropped and,
  with ``--tokenizer-out``, saved (prefix stripped) as a plain state dict
  for ``BEVTDALLETokenizer(init_cfg=dict(type='Pretrained', ...))``.

The backbone is verified by a strict load into a ``BEVTSwinTransformer3D``
of the architecture read from the weights. Use the result with
``load_from`` in a BEVT pretraining config, or convert it further with
``bevt_to_mmaction.py`` for fine-tuning.

Example::

    python tools/model_converters/bevt_official.py \\
        checkpoints/bevt_official_k400.pth \\
        checkpoints/bevt_swin-base_in1k-k400.pth \\
        --tokenizer-out checkpoints/dalle_encoder.pth
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
        description='Convert an official BEVT checkpoint into a checkpoint '
        'of bevt\'s BEVT model (and optionally its DALL-E tokenizer).')
    parser.add_argument('src', help='official BEVT checkpoint')
    parser.add_argument('dst', help='output checkpoint for bevt\'s BEVT')
    parser.add_argument(
        '--tokenizer-out',
        metavar='PATH',
        help='also save the cls_head.vae_encoder.* weights, prefix '
        'stripped, as a plain DALLEEncoder state dict')
    parser.add_argument(
        '--source-window',
        type=int,
        nargs=3,
        metavar=('T', 'H', 'W'),
        help='window of the model, if the relative-position tables do not '
        'tell (default: inferred, (8, 7, 7) for Swin-B)')
    parser.add_argument(
        '--trust-pickle',
        action='store_true',
        help='unpickle SRC with weights_only=False (can run code stored in '
        'the file: only for a file you trust); by default only tensors and '
        'plain metadata are read')
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
        result = cc.convert_official_bevt(state_dict, args.source_window,
                                          report)
        backbone = {
            k[len('backbone.'):]: v
            for k, v in result.state_dict.items() if k.startswith('backbone.')
        }
        model = cc.verify_bevt_backbone(backbone, result.window_size)
        fc = result.state_dict['head.fc.weight']
        if fc.dim() != 2 or fc.shape[1] != model.out_channels:
            raise ValueError(f'head.fc.weight has shape {list(fc.shape)}; '
                             f'expected (vocabulary, {model.out_channels})')
        if args.tokenizer_out:
            if not result.tokenizer:
                raise ValueError(
                    'no cls_head.vae_encoder.* keys: nothing to write to '
                    '--tokenizer-out')
            cc.verify_dalle_encoder(result.tokenizer)
    except ValueError as e:
        raise ValueError(f'{args.src}: {e}') from e

    kwargs = cc.infer_swin3d_kwargs(backbone)
    meta = dict(
        converter='tools/model_converters/bevt_official.py',
        source=osp.basename(args.src),
        arch=kwargs['arch'],
        window_size=list(result.window_size),
        vocab_size=int(fc.shape[0]))
    cc.save_checkpoint(result.state_dict, args.dst, meta)
    print(report.summary(args.verbose))
    print(f'backbone: BEVT{cc.describe_swin3d(kwargs, result.window_size)}; '
          f'head: Linear({fc.shape[1]}, {fc.shape[0]})')
    print(f'saved {args.dst}: use it with load_from=\'{args.dst}\'')
    if args.tokenizer_out:
        cc.save_checkpoint(result.tokenizer, args.tokenizer_out, plain=True)
        print(f'saved {args.tokenizer_out} ({len(result.tokenizer)} keys): '
              'target_generator=dict(type=\'BEVTDALLETokenizer\', '
              f'init_cfg=dict(type=\'Pretrained\', '
              f'checkpoint=\'{args.tokenizer_out}\'))')
    elif result.tokenizer:
        print('the DALL-E tokenizer weights were dropped; pass '
              '--tokenizer-out PATH to keep them')


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
