# Copyright (c) bevt contributors. All rights reserved.
"""Convert OpenAI's pickled DALL-E encoder for mmpretrain's ``DALLEEncoder``.

OpenAI ships the dVAE encoder as ``encoder.pkl``, a pickled
``dall_e.encoder.Encoder`` module. Unpickling it needs the ``DALL-E`` pip
package (``pip install DALL-E``) and ``torch.load(weights_only=False)``,
which can run any code stored in the file: convert only a file you trust,
and confirm with ``--trust-pickle``.

The parameter names (``blocks.input.w``, ``blocks.group_1.block_1.
res_path.conv_1.w``, ...) are already mmpretrain's, so the output is the
module's state dict, saved as a plain dict after a strict load into a
``DALLEEncoder`` of the sizes read from the weights. Use it with
``BEVTDALLETokenizer(init_cfg=dict(type='Pretrained', checkpoint=DST))``.

Example::

    pip install DALL-E
    python tools/model_converters/dalle_openai.py encoder.pkl \\
        checkpoints/dalle_encoder.pth --trust-pickle
"""
import argparse
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
        description='Convert OpenAI\'s pickled DALL-E encoder (encoder.pkl) '
        'into a state dict for mmpretrain\'s DALLEEncoder.')
    parser.add_argument('encoder_pkl', help='OpenAI\'s encoder.pkl')
    parser.add_argument('dst', help='output state dict')
    parser.add_argument(
        '--trust-pickle',
        action='store_true',
        help='required: confirms ENCODER_PKL is trusted, since unpickling '
        'it (weights_only=False) can run code stored in the file')
    parser.add_argument(
        '--verbose', action='store_true', help='list every key')
    return parser.parse_args(argv)


def convert(args: argparse.Namespace) -> None:
    """Unpickle, verify, save and print the summary.

    Args:
        args (argparse.Namespace): See :func:`parse_args`.
    """
    from bevt.utils import checkpoint_convert as cc
    print(f'Unpickling {args.encoder_pkl} needs weights_only=False, which '
          'can run code stored in the file: only convert a file you trust.')
    state_dict = cc.load_pickled_dalle_encoder(args.encoder_pkl,
                                               args.trust_pickle)
    try:
        cc.verify_dalle_encoder(state_dict)
    except ValueError as e:
        raise ValueError(f'{args.encoder_pkl}: {e}') from e
    report = cc.ConversionReport()
    for key in state_dict:
        report.keep(key)
    cc.save_checkpoint(state_dict, args.dst, plain=True)
    cfg = cc.infer_dalle_encoder_cfg(state_dict)
    print(report.summary(args.verbose))
    print('verified: loads strictly into mmpretrain DALLEEncoder(' +
          ', '.join(f'{k}={v}' for k, v in cfg.items()) + ')')
    print(f'saved {args.dst}: target_generator=dict(type='
          '\'BEVTDALLETokenizer\', init_cfg=dict(type=\'Pretrained\', '
          f'checkpoint=\'{args.dst}\'))')


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the conversion.

    Args:
        argv (Sequence[str], optional): Arguments. Defaults to None.

    Returns:
        int: 0 on success, 1 (after printing the error) otherwise.
    """
    from bevt.utils import checkpoint_convert as cc

    # PermissionError (no --trust-pickle) is an OSError
    return cc.run_conversion(convert, parse_args(argv),
                             cc.CLI_ERRORS + (ImportError, ))


if __name__ == '__main__':
    sys.exit(main())
