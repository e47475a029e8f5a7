# Copyright (c) bevt contributors. All rights reserved.
"""Write mmaction2 video lists for Kinetics-400 from the official csv files.

Reads the annotation csv files of Kinetics-400 (columns
``label,youtube_id,time_start,time_end,split[,is_cc]``; ``train.csv`` and
``validate.csv`` of the official release, renamed ``kinetics_train.csv`` /
``kinetics_val.csv`` by mmaction2's download script), looks each clip up in
the video folders and writes, into ``--out-dir``:

- ``kinetics400_train_list_videos.txt`` and
  ``kinetics400_val_list_videos.txt``: one ``relative/path.mp4 label`` per
  line, the path relative to ``--train-dir`` / ``--val-dir`` (mmaction2's
  ``VideoDataset`` with ``data_prefix=dict(video=...)``);
- ``kinetics400_classes.txt``: the class names, line ``i`` = label ``i``.

Labels index the class names sorted as mmaction2 sorts them (spaces turned
into ``_``, quotes dropped). With ``--layout class-folders`` (the default)
a clip is ``<class>/<file>``, where ``<class>`` is that folder name (as
mmaction2's ``rename_classnames.sh`` leaves them); with ``--layout flat``
every clip is directly in the split's folder. Clips that are not on disk
are skipped and counted (``--missing-out`` lists them); test rows (no
label) are ignored.

Example::

    python tools/data/kinetics400.py \\
        data/kinetics400/annotations/kinetics_train.csv \\
        data/kinetics400/annotations/kinetics_val.csv \\
        --root data/kinetics400 --missing-out data/kinetics400/missing.txt
"""
import argparse
import csv
import os
import os.path as osp
import string
import sys
from typing import Dict, List, NamedTuple, Optional, Sequence, Set

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import annotation_lists  # noqa: E402

PREFIX = 'kinetics400'
DEFAULT_PATTERN = '{youtube_id}_{time_start:06d}_{time_end:06d}.mp4'
REQUIRED_COLUMNS = ('label', 'youtube_id', 'time_start', 'time_end', 'split')
PATTERN_FIELDS = ('youtube_id', 'time_start', 'time_end', 'label')
#: Values of the ``split`` column and the list they go to (None: ignored).
SPLITS = {
    'train': 'train',
    'val': 'val',
    'valid': 'val',
    'validate': 'val',
    'validation': 'val',
    'test': None
}


class Clip(NamedTuple):
    """One labelled row of an annotation csv."""

    label: str  # the class folder name (``convert_label`` of the csv label)
    name: str  # the original class name (quotes dropped)
    youtube_id: str
    time_start: int
    time_end: int
    split: str  # 'train' or 'val'
    where: str  # 'file:line', for messages


def convert_label(label: str) -> str:
    """The folder name of a class, as mmaction2 writes it.

    Args:
        label (str): The class name of the csv (e.g. ``'abseiling'``,
            ``'passing American football (in game)'``).

    Returns:
        str: The name with quotes dropped and spaces turned into ``_``.
    """
    return label.replace('"', '').strip().replace(' ', '_')


def check_pattern(pattern: str) -> None:
    """Check that a file name pattern only uses known fields.

    Args:
        pattern (str): A :meth:`str.format` pattern.

    Raises:
        ValueError: If the pattern is malformed or names an unknown field.
    """
    try:
        fields = [
            field for _, field, _, _ in string.Formatter().parse(pattern)
            if field is not None
        ]
        unknown = sorted(set(fields) - set(PATTERN_FIELDS))
        if not unknown:
            pattern.format(
                youtube_id='x', time_start=0, time_end=10, label='y')
    except (ValueError, IndexError) as error:
        raise ValueError(f'Invalid --pattern {pattern!r}: {error}') from None
    if unknown or not fields:
        raise ValueError(
            f'Invalid --pattern {pattern!r}: ' +
            (f'unknown field(s) {unknown}; ' if unknown else 'no field; ') +
            'use {youtube_id}, {time_start}, {time_end} and {label}')


def _parse_time(value: str, column: str, where: str) -> int:
    try:
        return int(float(value))
    except ValueError:
        raise ValueError(f'{where}: invalid {column} {value!r} '
                         '(expected a number of seconds)') from None


def read_annotations(path: str) -> List[Clip]:
    """Read the labelled rows of one annotation csv.

    Args:
        path (str): The csv file.

    Returns:
        list[Clip]: Its train and val rows, in file order (test rows are
        skipped).

    Raises:
        OSError: If the file cannot be read.
        ValueError: For a missing column or a malformed row, naming the
            file and the line.
    """
    clips = []
    with open(path, newline='', encoding='utf-8') as file:
        reader = csv.DictReader(file)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ValueError(
                f'{path}:1: missing column(s) {missing} in the header '
                f'{columns}; expected label,youtube_id,time_start,time_end,'
                'split[,is_cc] (the official Kinetics-400 csv)')
        reader.fieldnames = columns
        for row in reader:
            where = f'{path}:{reader.line_num}'
            if None in row or any(row[c] is None for c in REQUIRED_COLUMNS):
                raise ValueError(f'{where}: expected {len(columns)} columns '
                                 f'({",".join(columns)})')
            split = row['split'].strip().lower()
            if split not in SPLITS:
                raise ValueError(
                    f'{where}: invalid split {row["split"]!r} (expected one '
                    f'of {sorted(SPLITS)})')
            if SPLITS[split] is None:
                continue
            name = row['label'].replace('"', '').strip()
            youtube_id = row['youtube_id'].strip()
            if not name or not youtube_id:
                raise ValueError(f'{where}: empty label or youtube_id in a '
                                 f'{split} row')
            clips.append(
                Clip(
                    label=convert_label(name),
                    name=name,
                    youtube_id=youtube_id,
                    time_start=_parse_time(row['time_start'], 'time_start',
                                           where),
                    time_end=_parse_time(row['time_end'], 'time_end', where),
                    split=SPLITS[split],
                    where=where))
    return clips


def read_classes(path: str) -> List[str]:
    """Read a class list (one name per line, line ``i`` = label ``i``).

    Args:
        path (str): The file (e.g. a ``kinetics400_classes.txt`` written
            before).

    Returns:
        list[str]: Class folder names (``convert_label`` of each line).

    Raises:
        ValueError: If a name appears twice.
    """
    classes = []
    with open(path, encoding='utf-8') as file:
        for lineno, line in enumerate(file, 1):
            if not line.strip():
                continue
            name = convert_label(line.strip())
            if name in classes:
                raise ValueError(f'{path}:{lineno}: duplicate class {name!r}')
            classes.append(name)
    return classes


class DirCache:
    """Cached directory listings (one ``os.scandir`` per folder)."""

    def __init__(self) -> None:
        self._names: Dict[str, Set[str]] = {}

    def exists(self, directory: str, name: str) -> bool:
        """Whether ``directory/name`` is a file.

        Args:
            directory (str): The folder.
            name (str): The file name.

        Returns:
            bool: True if the file is there.
        """
        if directory not in self._names:
            try:
                with os.scandir(directory) as entries:
                    self._names[directory] = {
                        e.name
                        for e in entries if e.is_file()
                    }
            except (FileNotFoundError, NotADirectoryError):
                self._names[directory] = set()
        return name in self._names[directory]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: The arguments.
    """
    parser = argparse.ArgumentParser(
        description='Write mmaction2 video lists ("relative/path.mp4 label") '
        'for Kinetics-400 from the official annotation csv files',
        epilog=f'Writes {PREFIX}_train_list_videos.txt, '
        f'{PREFIX}_val_list_videos.txt and {PREFIX}_classes.txt.')
    parser.add_argument(
        'csv',
        nargs='+',
        help='annotation csv file(s) with the columns label,youtube_id,'
        'time_start,time_end,split[,is_cc]; the split column decides the '
        'list (test rows are ignored)')
    parser.add_argument(
        '--root',
        default='data/kinetics400',
        help='dataset folder; default for the options below '
        '(default: %(default)s)')
    parser.add_argument(
        '--train-dir', help='train videos (default: ROOT/videos_train)')
    parser.add_argument(
        '--val-dir', help='validation videos (default: ROOT/videos_val)')
    parser.add_argument('--out-dir', help='where the lists go (default: ROOT)')
    parser.add_argument(
        '--layout',
        choices=['class-folders', 'flat'],
        default='class-folders',
        help='class-folders: <split dir>/<class>/<file>, the class with '
        'spaces turned into _ (mmaction2); flat: <split dir>/<file> '
        '(default: %(default)s)')
    parser.add_argument(
        '--pattern',
        default=DEFAULT_PATTERN,
        help='file name of a clip, a str.format pattern with the fields '
        '{youtube_id}, {time_start}, {time_end} (integers) and {label} '
        '(the class folder name) (default: %(default)s)')
    parser.add_argument(
        '--classes',
        help='use this class list (one name per line, line i = label i) '
        'instead of the sorted class names of the train rows')
    parser.add_argument(
        '--missing-out',
        help='write the paths of the clips that are not on disk here')
    parser.add_argument(
        '--no-check',
        action='store_true',
        help='list every clip without looking for it on disk')
    return parser.parse_args(argv)


def build_lists(clips: Sequence[Clip],
                classes: Sequence[str],
                dirs: Dict[str, str],
                layout: str = 'class-folders',
                pattern: str = DEFAULT_PATTERN,
                check: bool = True) -> Dict[str, Dict[str, List[str]]]:
    """Turn annotation rows into list lines, skipping missing clips.

    Args:
        clips (Sequence[Clip]): The rows.
        classes (Sequence[str]): Class folder names; label = index.
        dirs (dict[str, str]): Video folder per split (``'train'``,
            ``'val'``).
        layout (str): ``'class-folders'`` or ``'flat'``. Defaults to
            'class-folders'.
        pattern (str): File name pattern. Defaults to
            :data:`DEFAULT_PATTERN`.
        check (bool): Look for each clip on disk. Defaults to True.

    Returns:
        dict: Per split, ``lines`` (``'path label'``), ``missing`` (full
        paths), ``duplicates`` and ``spaced`` (clips found only in a class
        folder whose name has spaces).

    Raises:
        ValueError: If a row's class is not in ``classes``.
    """
    index = {name: i for i, name in enumerate(classes)}
    cache = DirCache()
    result = {
        split: dict(lines=[], missing=[], duplicates=[], spaced=[])
        for split in ('train', 'val')
    }
    seen: Dict[str, Set[str]] = {'train': set(), 'val': set()}
    for clip in clips:
        if clip.label not in index:
            raise ValueError(
                f'{clip.where}: class {clip.name!r} is not in the class list '
                f'({len(classes)} classes)')
        name = pattern.format(
            youtube_id=clip.youtube_id,
            time_start=clip.time_start,
            time_end=clip.time_end,
            label=clip.label)
        rel = f'{clip.label}/{name}' if layout == 'class-folders' else name
        out = result[clip.split]
        if rel in seen[clip.split]:
            out['duplicates'].append(rel)
            continue
        seen[clip.split].add(rel)
        directory = dirs[clip.split]
        if check and not cache.exists(
                osp.join(directory, osp.dirname(rel)), osp.basename(rel)):
            out['missing'].append(osp.join(directory, rel))
            if layout == 'class-folders' and clip.name != clip.label and \
                    cache.exists(osp.join(directory, clip.name), name):
                out['spaced'].append(osp.join(directory, clip.name, name))
            continue
        out['lines'].append(f'{rel} {index[clip.label]}')
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write the lists.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        int: The exit code: 0, or 1 after an error (printed).
    """
    args = parse_args(argv)
    dirs = dict(
        train=args.train_dir or osp.join(args.root, 'videos_train'),
        val=args.val_dir or osp.join(args.root, 'videos_val'))
    out_dir = args.out_dir or args.root
    try:
        check_pattern(args.pattern)
        clips = []
        for path in args.csv:
            clips += read_annotations(path)
        if not clips:
            raise ValueError(f'no train or val rows in {args.csv}')
        splits = [
            s for s in ('train', 'val') if any(c.split == s for c in clips)
        ]
        for split in splits:
            if not args.no_check and not osp.isdir(dirs[split]):
                raise ValueError(
                    f'the {split} video folder {dirs[split]} does not exist '
                    f'(set --root or --{split}-dir, or pass --no-check)')
        if args.classes:
            classes = read_classes(args.classes)
            names = {clip.label: clip.name for clip in clips}
            class_names = [names.get(c, c) for c in classes]
        else:
            source = [c for c in clips if c.split == 'train']
            if not source:
                print(
                    f'{PREFIX}: warning: no train rows; the classes are '
                    'those of the val rows (pass --classes to use the '
                    'train classes)',
                    file=sys.stderr)
                source = clips
            names = {clip.label: clip.name for clip in source}
            classes = sorted(names)
            class_names = [names[c] for c in classes]
        result = build_lists(clips, classes, dirs, args.layout, args.pattern,
                             not args.no_check)
        if args.missing_out:
            annotation_lists.write_lines(
                args.missing_out,
                result['train']['missing'] + result['val']['missing'])
        annotation_lists.write_lines(
            osp.join(out_dir, f'{PREFIX}_classes.txt'), class_names)
        for split in splits:
            out = result[split]
            path = osp.join(out_dir, f'{PREFIX}_{split}_list_videos.txt')
            annotation_lists.write_lines(path, out['lines'])
            print(f'{PREFIX}: {split}: {len(out["lines"])} videos listed in '
                  f'{path}, {len(out["missing"])} missing in {dirs[split]}' +
                  (f', {len(out["duplicates"])} duplicate rows skipped'
                   if out['duplicates'] else ''))
    except (OSError, ValueError, UnicodeDecodeError) as error:
        print(f'{PREFIX}: error: {error}', file=sys.stderr)
        return 1
    print(f'{PREFIX}: {len(classes)} classes in '
          f'{osp.join(out_dir, f"{PREFIX}_classes.txt")}')
    if args.missing_out:
        print(f'{PREFIX}: missing videos listed in {args.missing_out}')
    spaced = result['train']['spaced'] + result['val']['spaced']
    if spaced:
        print(
            f'{PREFIX}: warning: {len(spaced)} missing videos are in class '
            f'folders whose names have spaces (e.g. {spaced[0]}); '
            'mmaction2\'s VideoDataset splits list lines on spaces, so '
            'rename the folders (spaces -> _, mmaction2\'s '
            'tools/data/kinetics/rename_classnames.sh) and run again',
            file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
