# Copyright (c) bevt contributors. All rights reserved.
"""What the data preparation scripts in this folder share: reading
JSON annotations, writing list files, the command line of a split-file
dataset and listing its videos with the missing ones set aside."""
import argparse
import json
import os
import os.path as osp
from typing import Any, Iterable, List, Optional, Sequence, Set, Tuple


def write_lines(path: str, lines: Iterable[str]) -> None:
    """Write one line per item (UTF-8), creating the folder."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as file:
        file.writelines(f'{line}\n' for line in lines)


def load_json(path: str) -> Any:
    """Load a JSON file, with errors that name it.

    Args:
        path (str): The file.

    Returns:
        Any: Its content.

    Raises:
        OSError: If it cannot be read.
        ValueError: If it is not JSON (the message has the line).
    """
    with open(path, encoding='utf-8') as file:
        try:
            return json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f'{path}:{error.lineno}: not valid JSON: '
                             f'{error.msg} (column {error.colno})') from None


def add_video_list_arguments(parser: argparse.ArgumentParser, root: str,
                             ann_help: str, ext: str, ext_help: str) -> None:
    """The options of a dataset whose split files name videos in one
    folder: ``--root`` (default ``root``), ``--ann-dir``, ``--video-dir``,
    ``--out-dir``, ``--ext`` (default ``ext``), ``--missing-out``,
    ``--no-check``."""
    parser.add_argument(
        '--root',
        default=root,
        help='dataset folder; default for the options below '
        '(default: %(default)s)')
    parser.add_argument(
        '--ann-dir', help=f'folder of {ann_help} (default: ROOT/annotations)')
    parser.add_argument(
        '--video-dir', help='the videos (default: ROOT/videos)')
    parser.add_argument('--out-dir', help='where the lists go (default: ROOT)')
    parser.add_argument('--ext', default=ext, help=ext_help)
    parser.add_argument(
        '--missing-out',
        help='write the paths of the videos that are not on disk here')
    parser.add_argument(
        '--no-check',
        action='store_true',
        help='list every entry without looking for its video on disk')


def video_list_dirs(args: argparse.Namespace) -> Tuple[str, str, str]:
    """``(ann_dir, video_dir, out_dir)`` from the options of
    :func:`add_video_list_arguments`, defaults under ``--root``."""
    return (args.ann_dir or osp.join(args.root, 'annotations'), args.video_dir
            or osp.join(args.root, 'videos'), args.out_dir or args.root)


def videos_on_disk(video_dir: str, no_check: bool) -> Optional[Set[str]]:
    """The file names in ``video_dir``, or None with ``--no-check``.

    Raises:
        ValueError: If the folder does not exist (and checks are on).
    """
    if no_check:
        return None
    if not osp.isdir(video_dir):
        raise ValueError(f'the video folder {video_dir} does not exist '
                         '(set --root or --video-dir, or pass --no-check)')
    return set(os.listdir(video_dir))


def list_videos(items: Sequence[Tuple[str, int]], ext: str,
                on_disk: Optional[Set[str]], video_dir: str,
                missing: List[str]) -> List[str]:
    """The list lines ``"<name>.<ext> <label>"`` of the videos on disk.

    Args:
        items (Sequence[tuple]): ``(video name without extension, label)``.
        ext (str): Video extension, without the dot.
        on_disk (set, optional): File names present; None lists every item.
        video_dir (str): The video folder (for the missing paths).
        missing (list): The paths of absent videos are appended here.

    Returns:
        list: The lines, in the order of ``items``.
    """
    lines = []
    for video, label in items:
        name = f'{video}.{ext}'
        if on_disk is not None and name not in on_disk:
            missing.append(osp.join(video_dir, name))
            continue
        lines.append(f'{name} {label}')
    return lines
