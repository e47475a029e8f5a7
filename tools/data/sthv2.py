# Copyright (c) bevt contributors. All rights reserved.
"""Write mmaction2 video lists for Something-Something-v2.

Reads the official annotations in ``--ann-dir``:

- ``something-something-v2-labels.json``: ``{template: "id", ...}`` (174
  templates);
- ``something-something-v2-train.json`` and
  ``something-something-v2-validation.json``: lists of
  ``{"id": ..., "template": "Putting [something] on [something]", ...}``;
  the label is the id of the template with its brackets removed
  (``[something]`` -> ``something``), as mmaction2 does,

and writes, into ``--out-dir``, ``sthv2_train_list_videos.txt`` and
``sthv2_val_list_videos.txt`` (one ``{id}.webm label`` per line, relative
to ``--video-dir``; ``--ext mp4`` after ``resize_videos.py``) and
``sthv2_classes.txt`` (line ``i`` = the template of label ``i``). Videos
that are not in ``--video-dir`` are skipped and counted (``--missing-out``
lists them; ``--no-check`` lists every entry). The test split has no labels
and is not read.

Example::

    python tools/data/sthv2.py --root data/sthv2 --ext mp4
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import annotation_lists  # noqa: E402

PREFIX = 'sthv2'
LABELS_FILE = 'something-something-v2-labels.json'
SPLIT_FILES = {
    'train': 'something-something-v2-train.json',
    'val': 'something-something-v2-validation.json'
}


def strip_brackets(template: str) -> str:
    """``'Putting [something] on [something]'`` -> ``'Putting something on
    something'``."""
    return template.replace('[', '').replace(']', '')


def read_labels(path: str) -> List[str]:
    """Read the template -> id map.

    Args:
        path (str): ``something-something-v2-labels.json``.

    Returns:
        list[str]: The templates; index = label.

    Raises:
        ValueError: If the map is malformed or the ids are not
            ``0 .. N-1``.
    """
    labels = annotation_lists.load_json(path)
    if not isinstance(labels, dict) or not labels:
        raise ValueError(f'{path}: expected a JSON object '
                         '{"template": "id", ...}')
    templates: Dict[int, str] = {}
    for template, value in labels.items():
        try:
            label = int(value)
        except (TypeError, ValueError):
            raise ValueError(f'{path}: template {template!r} has the '
                             f'invalid id {value!r}') from None
        if label in templates:
            raise ValueError(f'{path}: id {label} is used by {template!r} '
                             f'and {templates[label]!r}')
        templates[label] = template
    if sorted(templates) != list(range(len(templates))):
        raise ValueError(f'{path}: the ids are not 0 .. {len(templates) - 1}')
    return [templates[i] for i in range(len(templates))]


def read_split(path: str, labels: Dict[str, int],
               labels_path: str) -> List[Tuple[str, int]]:
    """Read one split file.

    Args:
        path (str): The split's JSON list.
        labels (dict[str, int]): Template (brackets removed) -> label.
        labels_path (str): The labels file, for messages.

    Returns:
        list[tuple[str, int]]: ``(video id, label)`` per entry.

    Raises:
        ValueError: For a malformed entry or an unknown template, naming
            the file and the entry.
    """
    entries = annotation_lists.load_json(path)
    if not isinstance(entries, list):
        raise ValueError(f'{path}: expected a JSON list of entries')
    items = []
    for i, entry in enumerate(entries):
        where = f'{path}: entry {i}'
        if not isinstance(entry, dict) or 'id' not in entry or \
                'template' not in entry:
            raise ValueError(f'{where}: expected an object with "id" and '
                             f'"template", got {str(entry)[:100]}')
        template = strip_brackets(str(entry['template']))
        if template not in labels:
            raise ValueError(f'{where} (id {entry["id"]}): template '
                             f'{template!r} is not in {labels_path}')
        items.append((str(entry['id']), labels[template]))
    return items


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: The arguments.
    """
    parser = argparse.ArgumentParser(
        description='Write mmaction2 video lists ("{id}.webm label") for '
        'Something-Something-v2 from the official JSON annotations',
        epilog=f'Writes {PREFIX}_train_list_videos.txt, '
        f'{PREFIX}_val_list_videos.txt and {PREFIX}_classes.txt.')
    annotation_lists.add_video_list_arguments(
        parser,
        root='data/sthv2',
        ann_help=f'{LABELS_FILE}, {SPLIT_FILES["train"]} and '
        f'{SPLIT_FILES["val"]}',
        ext='webm',
        ext_help='video file extension: webm as released, mp4 after '
        'resize_videos.py (default: %(default)s)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write the lists.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        int: The exit code: 0, or 1 after an error (printed).
    """
    args = parse_args(argv)
    ann_dir, video_dir, out_dir = annotation_lists.video_list_dirs(args)
    ext = args.ext.lstrip('.')
    missing_all = []
    try:
        on_disk = annotation_lists.videos_on_disk(video_dir, args.no_check)
        labels_path = osp.join(ann_dir, LABELS_FILE)
        templates = read_labels(labels_path)
        labels = {strip_brackets(t): i for i, t in enumerate(templates)}
        summary = []
        for split, file_name in SPLIT_FILES.items():
            items = read_split(
                osp.join(ann_dir, file_name), labels, labels_path)
            lines = annotation_lists.list_videos(items, ext, on_disk,
                                                 video_dir, missing_all)
            path = osp.join(out_dir, f'{PREFIX}_{split}_list_videos.txt')
            annotation_lists.write_lines(path, lines)
            summary.append(f'{PREFIX}: {split}: {len(lines)} videos listed '
                           f'in {path}, {len(items) - len(lines)} missing '
                           f'in {video_dir}')
        classes_path = osp.join(out_dir, f'{PREFIX}_classes.txt')
        annotation_lists.write_lines(classes_path, templates)
        if args.missing_out:
            annotation_lists.write_lines(args.missing_out, missing_all)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        print(f'{PREFIX}: error: {error}', file=sys.stderr)
        return 1
    print('\n'.join(summary))
    print(f'{PREFIX}: {len(templates)} classes in {classes_path}')
    if args.missing_out:
        print(f'{PREFIX}: missing videos listed in {args.missing_out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
