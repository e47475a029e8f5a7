# Copyright (c) bevt contributors. All rights reserved.
"""Re-encode videos to a short side of 256 pixels with ffmpeg, in parallel.

Every video under ``SRC_DIR`` (any depth, e.g. Kinetics class folders) is
re-encoded to ``DST_DIR/<same relative path>.mp4``: H.264 (``libx264``,
``yuv420p``), the short side scaled to ``--short-side`` with the aspect
ratio kept (the other side rounded to an even number), no audio. This is
how the ``kinetics400_256`` data of the official BEVT and Video Swin runs
was made. Videos whose output already exists are skipped, so an interrupted
run can be restarted; outputs are written to ``<name>.mp4.part`` first and
renamed when ffmpeg succeeds. Failures are reported (``--failed-out``) and
make the exit code 1.

Example::

    python tools/data/resize_videos.py data/kinetics400/raw_train \\
        data/kinetics400/videos_train --nproc 16
"""
import argparse
import os
import os.path as osp
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Sequence, Tuple

PREFIX = 'resize_videos'
INSTALL_HINT = (
    'install it (Debian/Ubuntu: `apt-get install ffmpeg`; conda: '
    '`conda install -c conda-forge ffmpeg`; macOS: `brew install ffmpeg`) '
    'or pass --ffmpeg /path/to/ffmpeg')
#: Longest ffmpeg error message kept per video, in characters.
MAX_ERROR_CHARS = 300


def find_videos(src_dir: str, extensions: Sequence[str]) -> List[str]:
    """The videos under a folder.

    Args:
        src_dir (str): The folder (walked recursively).
        extensions (Sequence[str]): Lower-case extensions with the dot.

    Returns:
        list[str]: Paths relative to ``src_dir``, sorted.
    """
    videos = []
    for directory, subdirs, files in os.walk(src_dir):
        subdirs.sort()
        rel_dir = osp.relpath(directory, src_dir)
        videos += [
            osp.normpath(osp.join(rel_dir, f)) for f in sorted(files)
            if osp.splitext(f)[1].lower() in extensions
        ]
    return videos


def ffmpeg_command(ffmpeg: str,
                   src: str,
                   dst: str,
                   short_side: int = 256,
                   threads: int = 1) -> List[str]:
    """The ffmpeg call that re-encodes one video.

    Args:
        ffmpeg (str): The ffmpeg executable.
        src (str): Input video.
        dst (str): Output file (mp4 whatever its name).
        short_side (int): Short side of the output. Defaults to 256.
        threads (int): Encoder threads; 0 lets ffmpeg choose. Defaults
            to 1.

    Returns:
        list[str]: The command.
    """
    # landscape: height = short side, width = even and keeps the ratio
    scale = (f"scale='if(gt(iw,ih),-2,{short_side})'"
             f":'if(gt(iw,ih),{short_side},-2)'")
    return [
        ffmpeg, '-hide_banner', '-nostdin', '-loglevel', 'error', '-y', '-i',
        src, '-vf', scale, '-c:v', 'libx264', '-pix_fmt', 'yuv420p',
        '-threads',
        str(threads), '-an', '-f', 'mp4', dst
    ]


def resize_video(src: str,
                 dst: str,
                 ffmpeg: str = 'ffmpeg',
                 short_side: int = 256,
                 threads: int = 1,
                 timeout: Optional[float] = None) -> Optional[str]:
    """Re-encode one video.

    Args:
        src (str): Input video.
        dst (str): Output video; written as ``dst + '.part'``, then
            renamed.
        ffmpeg (str): The ffmpeg executable. Defaults to 'ffmpeg'.
        short_side (int): Short side of the output. Defaults to 256.
        threads (int): Encoder threads. Defaults to 1.
        timeout (float, optional): Seconds before ffmpeg is stopped.
            Defaults to None.

    Returns:
        str | None: None on success, else why it failed.
    """
    part = dst + '.part'
    os.makedirs(osp.dirname(dst) or '.', exist_ok=True)
    try:
        result = subprocess.run(
            ffmpeg_command(ffmpeg, src, part, short_side, threads),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors='replace',
            timeout=timeout)
        if result.returncode == 0 and osp.isfile(part) and \
                osp.getsize(part) > 0:
            os.replace(part, dst)
            return None
        lines = (result.stderr or '').strip().splitlines()
        error = (f'ffmpeg exited with {result.returncode}' +
                 (f': {lines[-1].strip()}' if lines else ''))
    except subprocess.TimeoutExpired:
        error = f'ffmpeg took more than {timeout} s'
    except OSError as exc:
        error = f'cannot run ffmpeg: {exc}'
    if osp.exists(part):
        os.remove(part)
    return error[:MAX_ERROR_CHARS].replace('\n', ' ')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: The arguments.
    """
    parser = argparse.ArgumentParser(
        description='Re-encode every video of SRC_DIR to DST_DIR (same '
        'relative paths, .mp4) with the short side scaled to 256, H.264, '
        'no audio; videos already done are skipped')
    parser.add_argument('src_dir', help='source videos (walked recursively)')
    parser.add_argument(
        'dst_dir', help='output folder (must not be inside SRC_DIR)')
    parser.add_argument(
        '--short-side',
        type=int,
        default=256,
        help='short side of the output, in pixels (default: %(default)s)')
    parser.add_argument(
        '--nproc',
        type=int,
        default=os.cpu_count() or 1,
        help='ffmpeg processes run at once (default: the CPU count, '
        '%(default)s)')
    parser.add_argument(
        '--threads',
        type=int,
        default=1,
        help='encoder threads per ffmpeg process; 0 lets ffmpeg choose '
        '(default: %(default)s)')
    parser.add_argument(
        '--ext',
        nargs='+',
        default=['mp4'],
        help='extensions of the source videos, any case, e.g. --ext mp4 '
        'webm mkv (default: mp4); the outputs are always .mp4')
    parser.add_argument(
        '--ffmpeg',
        default='ffmpeg',
        help='the ffmpeg executable (default: ffmpeg on PATH)')
    parser.add_argument(
        '--timeout',
        type=float,
        default=None,
        help='seconds before one ffmpeg call is stopped (default: none)')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='re-encode videos whose output already exists')
    parser.add_argument(
        '--failed-out',
        help='write the videos that failed here, one "path<TAB>error" per '
        'line')
    return parser.parse_args(argv)


def _plan(args: argparse.Namespace) -> Tuple[List[Tuple[str, str]], int]:
    """The (source, output) pairs to encode and the number already done."""
    if args.short_side <= 0 or args.short_side % 2:
        raise ValueError(f'Invalid --short-side {args.short_side}: H.264 '
                         '(yuv420p) needs a positive even size')
    if args.nproc < 1:
        raise ValueError(f'Invalid --nproc {args.nproc}: must be >= 1')
    if not osp.isdir(args.src_dir):
        raise ValueError(f'the source folder {args.src_dir} does not exist')
    src_real = osp.realpath(args.src_dir)
    dst_real = osp.realpath(args.dst_dir)
    if osp.commonpath([src_real, dst_real]) == src_real:
        raise ValueError(f'the output folder {args.dst_dir} is inside the '
                         f'source folder {args.src_dir}: choose another one')
    extensions = tuple('.' + e.lower().lstrip('.') for e in args.ext)
    jobs, outputs, done = [], {}, 0
    for rel in find_videos(args.src_dir, extensions):
        out_rel = osp.splitext(rel)[0] + '.mp4'
        if out_rel in outputs:
            raise ValueError(f'{osp.join(args.src_dir, rel)} and '
                             f'{osp.join(args.src_dir, outputs[out_rel])} '
                             f'would both be written to {out_rel}')
        outputs[out_rel] = rel
        dst = osp.join(args.dst_dir, out_rel)
        if not args.overwrite and osp.isfile(dst) and osp.getsize(dst) > 0:
            done += 1
            continue
        jobs.append((osp.join(args.src_dir, rel), dst))
    return jobs, done


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Re-encode the videos.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        int: The exit code: 0 if every video is done, 1 if one failed or
        after an error (printed).
    """
    args = parse_args(argv)
    ffmpeg = shutil.which(args.ffmpeg)
    if ffmpeg is None:
        where = 'on PATH' if args.ffmpeg == 'ffmpeg' else 'at --ffmpeg'
        print(
            f'{PREFIX}: error: ffmpeg was not found ({args.ffmpeg!r} '
            f'{where}): {INSTALL_HINT}',
            file=sys.stderr)
        return 1
    try:
        jobs, done = _plan(args)
    except (OSError, ValueError) as error:
        print(f'{PREFIX}: error: {error}', file=sys.stderr)
        return 1
    total = len(jobs) + done
    print(f'{PREFIX}: {total} videos in {args.src_dir}: {done} already done, '
          f'{len(jobs)} to encode with {min(args.nproc, max(len(jobs), 1))} '
          'processes')
    failed = []
    step = max(1, len(jobs) // 20)

    def run(job: Tuple[str, str]) -> Optional[str]:
        return resize_video(job[0], job[1], ffmpeg, args.short_side,
                            args.threads, args.timeout)

    with ThreadPoolExecutor(max_workers=args.nproc) as pool:
        for i, ((src, _), error) in enumerate(zip(jobs, pool.map(run, jobs))):
            if error is not None:
                failed.append(f'{src}\t{error}')
                print(f'{PREFIX}: failed: {src}: {error}', file=sys.stderr)
            if (i + 1) % step == 0 or i + 1 == len(jobs):
                print(f'{PREFIX}: {i + 1}/{len(jobs)}', flush=True)
    if args.failed_out:
        os.makedirs(osp.dirname(osp.abspath(args.failed_out)), exist_ok=True)
        with open(args.failed_out, 'w', encoding='utf-8') as file:
            file.writelines(f'{line}\n' for line in failed)
    print(f'{PREFIX}: {len(jobs) - len(failed)} encoded, {done} skipped '
          f'(already done), {len(failed)} failed' +
          (f' (listed in {args.failed_out})'
           if args.failed_out and failed else ''))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
