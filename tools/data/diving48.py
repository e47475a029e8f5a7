# Copyright (c) bevt contributors. All rights reserved.
"""Write mmaction2 video lists for Diving48 (V2 annotations).

Reads ``Diving48_V2_train.json`` and ``Diving48_V2_test.json`` from
``--ann-dir`` (lists of ``{"vid_name": ..., "label": ..., "start_frame":
..., "end_frame": ...}``) and writes, into ``--out-dir``,
``diving48_train_list_videos.txt`` and ``diving48_val_list_videos.txt``
(the test split is the validation set; one ``{vid_name}.mp4 label`` per
line, relative to ``--video-dir``). ``start_frame`` / ``end_frame`` are not
used: the released clips are already trimmed (mmaction2 ignores them too).
With ``Diving48_vocab.json`` in ``--ann-dir``, ``diving48_classes.txt``
gets one line per label (take-off, somersault, twist, flight). Videos that
are not in ``--video-dir`` are skipped and counted (``--missing-out`` lists
them; ``--no-check`` lists every entry).

The V1 annotations (with noisier labels) are not supported, as in
mmaction2; BEVT does not say which version its 86.7 % used.

Example::

    python tools/data/diving48.py --root data/diving48
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional, Sequence, Tuple

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import annotation_lists  # noqa: E402

PREFIX = 'diving48'
NUM_CLASSES = 48
SPLIT_FILES = {
    'train': 'Diving48_V2_train.json',
    'val': 'Diving48_V2_test.json'
}
VOCAB_FILE = 'Diving48_vocab.json'


def read_split(path: str,
               num_classes: int = NUM_CLASSES) -> List[Tuple[str, int]]:
    """Read one split file.

    Args:
        path (str): ``Diving48_V2_{train,test}.json``.
        num_classes (int): Labels must be in ``[0, num_classes)``.
            Defaults to 48.

    Returns:
        list[tuple[str, int]]: ``(vid_name, label)`` per entry.

    Raises:
        ValueError: For a malformed entry, naming the file and the entry.
    """
    entries = annotation_lists.load_json(path)
    if not isinstance(entries, list):
        raise ValueError(f'{path}: expected a JSON list of entries')
    items = []
    for i, entry in enumerate(entries):
        where = f'{path}: entry {i}'
        if not isinstance(entry, dict) or 'vid_name' not in entry or \
                'label' not in entry:
            raise ValueError(f'{where}: expected an object with "vid_name" '
                             f'and "label", got {str(entry)[:100]}')
        label = entry['label']
        if isinstance(label, bool) or not isinstance(label, int) or \
                not 0 <= label < num_classes:
            raise ValueError(f'{where} ({entry["vid_name"]}): invalid label '
                             f'{label!r} (expected an integer in '
                             f'[0, {num_classes}))')
        items.append((str(entry['vid_name']), label))
    return items


def read_vocab(path: str) -> List[str]:
    """Read ``Diving48_vocab.json`` as one class name per label.

    Args:
        path (str): The vocabulary (a list of
            ``[take-off, somersault, twist, flight]`` lists).

    Returns:
        list[str]: The names, e.g. ``'Back 15som 05Twis FREE'``.

    Raises:
        ValueError: If it is not a list.
    """
    vocab = annotation_lists.load_json(path)
    if not isinstance(vocab, list):
        raise ValueError(f'{path}: expected a JSON list of classes')
    return [
        ' '.join(map(str, item)) if isinstance(item, list) else str(item)
        for item in vocab
    ]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: The arguments.
    """
    parser = argparse.ArgumentParser(
        description='Write mmaction2 video lists ("{vid_name}.mp4 label") '
        'for Diving48 from the V2 JSON annotations',
        epilog=f'Writes {PREFIX}_train_list_videos.txt and '
        f'{PREFIX}_val_list_videos.txt (from the test split), and '
        f'{PREFIX}_classes.txt when {VOCAB_FILE} is there.')
    annotation_lists.add_video_list_arguments(
        parser,
        root='data/diving48',
        ann_help=f'{SPLIT_FILES["train"]} and {SPLIT_FILES["val"]}',
        ext='mp4',
        ext_help='video extension (default: mp4)')
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
    summary = []
    try:
        on_disk = annotation_lists.videos_on_disk(video_dir, args.no_check)
        for split, file_name in SPLIT_FILES.items():
            items = read_split(osp.join(ann_dir, file_name))
            lines = annotation_lists.list_videos(items, ext, on_disk,
                                                 video_dir, missing_all)
            path = osp.join(out_dir, f'{PREFIX}_{split}_list_videos.txt')
            annotation_lists.write_lines(path, lines)
            summary.append(f'{PREFIX}: {split}: {len(lines)} videos listed '
                           f'in {path}, {len(items) - len(lines)} missing '
                           f'in {video_dir}')
        vocab_path = osp.join(ann_dir, VOCAB_FILE)
        if osp.isfile(vocab_path):
            classes = read_vocab(vocab_path)
            annotation_lists.write_lines(
                osp.join(out_dir, f'{PREFIX}_classes.txt'), classes)
            summary.append(f'{PREFIX}: {len(classes)} classes in '
                           f'{osp.join(out_dir, f"{PREFIX}_classes.txt")}')
        if args.missing_out:
            annotation_lists.write_lines(args.missing_out, missing_all)
            summary.append(
                f'{PREFIX}: missing videos listed in {args.missing_out}')
    except (OSError, ValueError, UnicodeDecodeError) as error:
        print(f'{PREFIX}: error: {error}', file=sys.stderr)
        return 1
    print('\n'.join(summary))
    return 0


if __name__ == '__main__':
    sys.exit(main())
