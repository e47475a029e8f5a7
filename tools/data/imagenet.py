# Copyright (c) bevt contributors. All rights reserved.
"""Write ``relative/path label`` lists for ImageNet-1K.

The lists are what ``mmpretrain.ImageNet`` (``ann_file`` +
``data_prefix``) and bevt's ``BEVTLoadImage`` read, e.g. the image stream
of the BEVT configs (``data/imagenet/meta/train.txt`` over
``data/imagenet/train``). Labels index the sorted class folders (the
WordNet ids ``n01440764`` ... of the train set), ImageNet's usual order.
Writes, into ``--out-dir`` (default ``ROOT/meta``):

- ``train.txt``: ``n01440764/n01440764_10026.JPEG 0`` per image of the
  train tree ``ROOT/train/<wnid>/*``;
- ``val.txt``: from the val tree when it has class folders (after
  ``valprep.sh``), else from a ground-truth file (``--val-gt``): Kaggle's
  ``LOC_val_solution.csv`` (``ImageId,PredictionString``) or a
  ``file label`` list whose label is a WordNet id or a class index. The
  devkit's ``ILSVRC2012_validation_ground_truth.txt`` is not accepted: its
  ids are not in sorted-WordNet-id order;
- ``classes.txt``: the WordNet ids, line ``i`` = label ``i``.

Val images that are not on disk are skipped and counted.

Example::

    python tools/data/imagenet.py --root data/imagenet \\
        --val-gt data/imagenet/LOC_val_solution.csv
"""
import argparse
import csv
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import annotation_lists  # noqa: E402

PREFIX = 'imagenet'
EXTENSIONS = ('.jpeg', '.jpg', '.png')
KAGGLE_HEADER = ('ImageId', 'PredictionString')


def list_class_folders(root: str) -> List[str]:
    """The sorted sub-folders of ``root``.

    Args:
        root (str): A folder.

    Returns:
        list[str]: Names of its sub-folders, sorted.
    """
    with os.scandir(root) as entries:
        return sorted(e.name for e in entries if e.is_dir())


def list_images(root: str,
                classes: Sequence[str],
                extensions: Sequence[str] = EXTENSIONS,
                where: str = 'train') -> Tuple[List[str], List[str]]:
    """List the images of a class-folder tree.

    Args:
        root (str): The tree (``root/<class>/.../<image>``).
        classes (Sequence[str]): Class names; label = index.
        extensions (Sequence[str]): Lower-case extensions of the images.
            Defaults to :data:`EXTENSIONS`.
        where (str): The split, for messages. Defaults to 'train'.

    Returns:
        tuple[list[str], list[str]]: The lines ``'class/file label'`` and
        the class folders without an image.

    Raises:
        ValueError: If a folder of ``root`` is not a class.
    """
    index = {name: i for i, name in enumerate(classes)}
    lines, empty = [], []
    for name in list_class_folders(root):
        if name not in index:
            raise ValueError(f'{osp.join(root, name)}: the {where} folder '
                             f'{name!r} is not one of the {len(classes)} '
                             'classes')
        before = len(lines)
        for directory, subdirs, files in os.walk(osp.join(root, name)):
            subdirs.sort()
            rel_dir = osp.relpath(directory, root)
            lines += [
                f'{osp.join(rel_dir, f)} {index[name]}' for f in sorted(files)
                if osp.splitext(f)[1].lower() in extensions
            ]
        if len(lines) == before:
            empty.append(name)
    return lines, empty


def read_ground_truth(path: str,
                      classes: Sequence[str]) -> List[Tuple[str, int]]:
    """Read a val ground-truth file.

    Args:
        path (str): Kaggle's ``LOC_val_solution.csv``
            (``ImageId,PredictionString``, the WordNet id first in the
            prediction) or a ``file label`` list (a WordNet id or an index
            per line).
        classes (Sequence[str]): The WordNet ids; label = index.

    Returns:
        list[tuple[str, int]]: ``(file name, label)`` in file order; a name
        without an extension is given ``.JPEG``.

    Raises:
        ValueError: For a malformed line or an unknown class, naming the
            file and the line, or for the devkit's ground truth.
    """
    index = {name: i for i, name in enumerate(classes)}
    items = []
    with open(path, newline='', encoding='utf-8-sig') as file:
        first = file.readline()
        kaggle = tuple(c.strip() for c in first.split(',')) == KAGGLE_HEADER
        file.seek(0)
        if kaggle:
            reader = csv.reader(file)
            next(reader)
            rows = (((row[0], (row[1].split() or [''])[0])
                     if len(row) == 2 else tuple(row), reader.line_num)
                    for row in reader)
        else:
            rows = ((tuple(line.split()), lineno)
                    for lineno, line in enumerate(file, 1))
        for row, lineno in rows:
            where = f'{path}:{lineno}'
            if not row:
                continue
            if len(row) == 1 and row[0].isdigit():
                raise ValueError(
                    f'{where}: a bare class id: this looks like the devkit\'s '
                    'ILSVRC2012_validation_ground_truth.txt, whose ids are '
                    'not in sorted-WordNet-id order; use Kaggle\'s '
                    'LOC_val_solution.csv, a "file wnid" list, or sort the '
                    'val images into class folders (valprep.sh)')
            if len(row) != 2:
                raise ValueError(f'{where}: expected "file label", got '
                                 f'{" ".join(row)!r}')
            name, label = row
            if label in index:
                label_id = index[label]
            elif label.isdigit() and int(label) < len(classes):
                label_id = int(label)
            else:
                raise ValueError(
                    f'{where}: unknown class {label!r} (expected a WordNet '
                    f'id of the train folders or an index < {len(classes)})')
            if not osp.splitext(name)[1]:
                name += '.JPEG'
            items.append((name, label_id))
    return items


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: The arguments.
    """
    parser = argparse.ArgumentParser(
        description='Write "relative/path label" lists (train.txt, val.txt, '
        'classes.txt) for ImageNet-1K, for mmpretrain.ImageNet and '
        'BEVTLoadImage')
    parser.add_argument(
        '--root',
        default='data/imagenet',
        help='dataset folder; default for the options below '
        '(default: %(default)s)')
    parser.add_argument(
        '--train-dir', help='train tree <wnid>/<image> (default: ROOT/train)')
    parser.add_argument(
        '--val-dir',
        help='val images: class folders, or flat with --val-gt '
        '(default: ROOT/val)')
    parser.add_argument(
        '--val-gt',
        help='val ground truth: LOC_val_solution.csv or a "file label" '
        'list (label: WordNet id or index)')
    parser.add_argument(
        '--classes',
        help='class list (one WordNet id per line, line i = label i); by '
        'default the sorted folders of the train tree')
    parser.add_argument(
        '--splits',
        nargs='+',
        choices=['train', 'val'],
        default=['train', 'val'],
        help='lists to write (default: train val)')
    parser.add_argument(
        '--out-dir', help='where the lists go (default: ROOT/meta)')
    parser.add_argument(
        '--ext',
        nargs='+',
        default=list(EXTENSIONS),
        help='image extensions, any case (default: %(default)s)')
    parser.add_argument(
        '--missing-out',
        help='write the val images of --val-gt that are not on disk here')
    return parser.parse_args(argv)


def _read_classes(path: str) -> List[str]:
    classes: Dict[str, int] = {}
    with open(path, encoding='utf-8') as file:
        for lineno, line in enumerate(file, 1):
            name = line.strip()
            if not name:
                continue
            if name in classes:
                raise ValueError(f'{path}:{lineno}: duplicate class {name!r}')
            classes[name] = len(classes)
    return list(classes)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write the lists.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        int: The exit code: 0, or 1 after an error (printed).
    """
    args = parse_args(argv)
    train_dir = args.train_dir or osp.join(args.root, 'train')
    val_dir = args.val_dir or osp.join(args.root, 'val')
    out_dir = args.out_dir or osp.join(args.root, 'meta')
    extensions = tuple('.' + e.lower().lstrip('.') for e in args.ext)
    summary = []
    try:
        if args.classes:
            classes = _read_classes(args.classes)
        elif osp.isdir(train_dir):
            classes = list_class_folders(train_dir)
        else:
            raise ValueError(f'the train folder {train_dir} does not exist: '
                             'it numbers the classes (set --root or '
                             '--train-dir, or pass --classes)')
        if not classes:
            raise ValueError(f'no class folders in {train_dir}')
        lists = {}
        if 'train' in args.splits:
            if not osp.isdir(train_dir):
                raise ValueError(f'the train folder {train_dir} does not '
                                 'exist (set --root or --train-dir)')
            lists['train'], empty = list_images(train_dir, classes, extensions)
            summary.append(f'{PREFIX}: train: {len(lists["train"])} images '
                           f'of {len(classes) - len(empty)} classes in '
                           f'{train_dir}')
            if empty:
                summary.append(f'{PREFIX}: warning: no image in the train '
                               f'folder(s) {empty[:5]} ({len(empty)})')
        if 'val' in args.splits:
            if args.val_gt:
                items = read_ground_truth(args.val_gt, classes)
                missing = [
                    name for name, _ in items
                    if not osp.isfile(osp.join(val_dir, name))
                ]
                skip = set(missing)
                lists['val'] = [
                    f'{name} {label}' for name, label in items
                    if name not in skip
                ]
                summary.append(f'{PREFIX}: val: {len(lists["val"])} images '
                               f'from {args.val_gt}, {len(missing)} missing '
                               f'in {val_dir}')
                if args.missing_out:
                    annotation_lists.write_lines(
                        args.missing_out,
                        [osp.join(val_dir, m) for m in missing])
            else:
                if not osp.isdir(val_dir):
                    raise ValueError(f'the val folder {val_dir} does not '
                                     'exist (set --root or --val-dir)')
                if not list_class_folders(val_dir):
                    raise ValueError(
                        f'the val folder {val_dir} has no class folders: '
                        'pass its ground truth with --val-gt '
                        '(LOC_val_solution.csv or a "file wnid" list), or '
                        'sort it into class folders (valprep.sh)')
                lists['val'], _ = list_images(val_dir, classes, extensions,
                                              'val')
                summary.append(f'{PREFIX}: val: {len(lists["val"])} images '
                               f'in {val_dir}')
        for split, lines in lists.items():
            path = osp.join(out_dir, f'{split}.txt')
            annotation_lists.write_lines(path, lines)
            summary.append(f'{PREFIX}: wrote {path}')
        annotation_lists.write_lines(osp.join(out_dir, 'classes.txt'), classes)
        summary.append(f'{PREFIX}: {len(classes)} classes in '
                       f'{osp.join(out_dir, "classes.txt")}')
    except (OSError, ValueError, UnicodeDecodeError) as error:
        print(f'{PREFIX}: error: {error}', file=sys.stderr)
        return 1
    print('\n'.join(summary))
    return 0


if __name__ == '__main__':
    sys.exit(main())
