# Copyright (c) bevt contributors. All rights reserved.
"""Find the missing, empty, truncated or undecodable files of a data list.

Reads an mmaction2 / mmpretrain annotation list (``relative/path label``
per line, or paths only), tries to decode every file the way training does
(decord for videos: the first and last frame; mmcv/OpenCV for images, with
``--image``) in parallel, prints a summary and writes the bad files, one
``path<TAB>error`` per line, to ``--output`` (printed when it is not
given). ``--output-good`` writes the annotation lines whose file is fine,
i.e. a cleaned list. Exits with 0 whatever it found; only an unreadable list
is an error.

Example::

    python tools/analysis_tools/check_videos.py \\
        data/kinetics400/kinetics400_train_list_videos.txt \\
        --data-prefix data/kinetics400/videos_train --nproc 16 \\
        --output work_dirs/bad_videos.txt
"""
import argparse
import os
import os.path as osp
import sys
from multiprocessing import Pool
from typing import List, Optional, Sequence, Tuple

#: Longest error message kept per file, in characters.
MAX_ERROR_CHARS = 300


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: The arguments.
    """
    parser = argparse.ArgumentParser(
        description='Check that every video (or image) of an annotation '
        'list can be decoded; list the bad ones')
    parser.add_argument(
        'ann_file',
        help='annotation list, one "relative/path [label ...]" per line')
    parser.add_argument(
        '--data-prefix',
        default='',
        help='directory the paths of the list are relative to')
    parser.add_argument(
        '--decoder',
        choices=['decord', 'opencv'],
        default='decord',
        help='video decoder (decord is what mmaction2\'s DecordInit uses)')
    parser.add_argument(
        '--image',
        action='store_true',
        help='the list names images: decode them with mmcv (OpenCV)')
    parser.add_argument(
        '--delimiter',
        default=None,
        help='separator of path and label in the list (default: any '
        'whitespace; mmaction2 splits on one space)')
    parser.add_argument(
        '--nproc', type=int, default=1, help='number of worker processes')
    parser.add_argument(
        '--output',
        help='write the bad files here, one "path<TAB>error" per line '
        '(paths as in the list); printed if not given')
    parser.add_argument(
        '--output-good',
        help='write the annotation lines whose file is fine here')
    return parser.parse_args(argv)


def _short(error: BaseException) -> str:
    """``'Type: first line of the message'``, shortened, on one line."""
    lines = str(error).strip().splitlines()
    text = type(error).__name__
    if lines:
        text = f'{text}: {lines[0].strip()}'
    return text[:MAX_ERROR_CHARS].replace('\t', ' ')


def check_video(path: str, decoder: str = 'decord') -> None:
    """Decode the first and the last frame of a video.

    Args:
        path (str): The video.
        decoder (str): ``'decord'`` or ``'opencv'``. Defaults to 'decord'.

    Raises:
        Exception: Whatever the decoder raises, or ``ValueError`` if the
        video has no frames or a frame cannot be read.
    """
    if decoder == 'decord':
        import decord
        reader = decord.VideoReader(path, num_threads=1)
        num_frames = len(reader)
        if num_frames == 0:
            raise ValueError('the video has no frames')
        reader[0].asnumpy()
        reader[num_frames - 1].asnumpy()
        return
    import cv2
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise ValueError('OpenCV cannot open the video')
        num_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, _ = capture.read()
        if not ok or num_frames <= 0:
            raise ValueError('OpenCV cannot read the first frame')
        capture.set(cv2.CAP_PROP_POS_FRAMES, num_frames - 1)
        ok, _ = capture.read()
        if not ok:
            raise ValueError('OpenCV cannot read the last frame')
    finally:
        capture.release()


def check_image(path: str) -> None:
    """Decode an image as mmpretrain's ``LoadImageFromFile`` does.

    Args:
        path (str): The image.

    Raises:
        Exception: Whatever reading raises, or ``ValueError`` if the image
        cannot be decoded.
    """
    import mmcv
    with open(path, 'rb') as file:
        content = file.read()
    if mmcv.imfrombytes(content, flag='color') is None:
        raise ValueError('the image cannot be decoded')


def check_file(job: Tuple[str, str, str]) -> Optional[str]:
    """Check one file.

    Args:
        job (tuple[str, str, str]): Path, kind (``'image'`` or
            ``'video'``) and video decoder.

    Returns:
        str | None: None if the file is fine, else why not.
    """
    path, kind, decoder = job
    try:
        if not osp.isfile(path):
            return 'file not found' if not osp.exists(path) else 'not a file'
        if osp.getsize(path) == 0:
            return 'empty file (0 bytes)'
        if kind == 'image':
            check_image(path)
        else:
            check_video(path, decoder)
    except Exception as error:  # decord raises plain Exception subclasses
        return _short(error)
    return None


def read_list(ann_file: str,
              delimiter: Optional[str] = None) -> List[Tuple[str, str]]:
    """Read an annotation list.

    Args:
        ann_file (str): The list.
        delimiter (str, optional): Separator after the path; None splits
            on any whitespace. Defaults to None.

    Returns:
        list[tuple[str, str]]: ``(relative path, original line)`` per
        non-empty line.

    Raises:
        OSError: If the list cannot be read.
        UnicodeDecodeError: If it is not text.
    """
    entries = []
    with open(ann_file, encoding='utf-8') as file:
        for line in file:
            line = line.rstrip('\r\n')
            if not line.strip():
                continue
            entries.append((line.strip().split(delimiter)[0], line))
    return entries


def check_files(paths: Sequence[str],
                kind: str = 'video',
                decoder: str = 'decord',
                nproc: int = 1) -> List[Optional[str]]:
    """Check files, in parallel.

    Args:
        paths (Sequence[str]): The files.
        kind (str): ``'video'`` or ``'image'``. Defaults to 'video'.
        decoder (str): Video decoder. Defaults to 'decord'.
        nproc (int): Worker processes. Defaults to 1.

    Returns:
        list[str | None]: Per file, None if fine, else the error.
    """
    jobs = [(path, kind, decoder) for path in paths]
    if nproc <= 1 or len(jobs) <= 1:
        return [check_file(job) for job in jobs]
    chunksize = max(1, min(64, len(jobs) // (nproc * 8)))
    with Pool(min(nproc, len(jobs))) as pool:
        return list(pool.imap(check_file, jobs, chunksize=chunksize))


def _write_lines(path: str, lines: Sequence[str]) -> None:
    """Write lines to ``path``, creating its directory."""
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, 'w', encoding='utf-8') as file:
        file.writelines(f'{line}\n' for line in lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the check.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        int: The exit code (0 unless the list cannot be read).
    """
    args = parse_args(argv)
    try:
        entries = read_list(args.ann_file, args.delimiter)
    except (OSError, UnicodeDecodeError) as error:
        print(
            f'check_videos: cannot read the annotation file '
            f'{args.ann_file}: {_short(error)}',
            file=sys.stderr)
        return 1
    if args.data_prefix and not osp.isdir(args.data_prefix):
        print(
            f'check_videos: warning: --data-prefix {args.data_prefix} is '
            'not a directory; every file will be reported missing',
            file=sys.stderr)
    kind = 'image' if args.image else 'video'
    errors = check_files(
        [osp.join(args.data_prefix, rel) for rel, _ in entries], kind,
        args.decoder, args.nproc)
    bad = [(rel, error) for (rel, _), error in zip(entries, errors)
           if error is not None]
    bad_lines = [f'{rel}\t{error}' for rel, error in bad]
    if args.output:
        _write_lines(args.output, bad_lines)
    else:
        for line in bad_lines:
            print(line)
    if args.output_good:
        _write_lines(args.output_good, [
            line for (_, line), error in zip(entries, errors) if error is None
        ])
    print(f'check_videos: {len(entries)} {kind}s in {args.ann_file}: '
          f'{len(entries) - len(bad)} ok, {len(bad)} bad' +
          (f' (listed in {args.output})' if args.output and bad else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
