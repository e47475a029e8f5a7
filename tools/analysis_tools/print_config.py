# Copyright (c) bevt contributors. All rights reserved.
"""Print a config with its ``_base_`` files and overrides resolved.

Example::

    python tools/analysis_tools/print_config.py configs/bevt/pretrain.py \\
        --cfg-options train_dataloader.batch_size=2
"""
import argparse
import sys
from typing import Optional, Sequence


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: The arguments.
    """
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(
        description='Print the fully resolved config')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the config.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        int: The exit status.
    """
    args = parse_args(argv)
    from bevt.utils import load_config
    try:
        cfg = load_config(args.config)
    except (FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    print(f'Config:\n{cfg.pretty_text}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
