# Copyright (c) bevt contributors. All rights reserved.
"""tools/data: annotation lists and video resizing on tiny generated input."""
import csv
import importlib.util
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
from types import ModuleType

import pytest

from bevt.testing import REPO_ROOT, fresh_env

DATA_TOOLS = osp.join(REPO_ROOT, 'tools', 'data')
SCRIPTS = ('kinetics400', 'sthv2', 'diving48', 'imagenet', 'resize_videos')


def load(name: str) -> ModuleType:
    """Import ``tools/data/<name>.py`` (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        f'_bevt_tools_data_{name}', osp.join(DATA_TOOLS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def touch(path) -> None:
    os.makedirs(osp.dirname(str(path)), exist_ok=True)
    with open(path, 'wb') as file:
        file.write(b'\0')


def read(path) -> list:
    with open(path, encoding='utf-8') as file:
        return file.read().splitlines()


@pytest.mark.parametrize('name', SCRIPTS)
def test_help(name):
    result = subprocess.run(
        [sys.executable,
         osp.join(DATA_TOOLS, f'{name}.py'), '--help'],
        env=fresh_env(),
        capture_output=True,
        text=True,
        timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('usage:')


# Kinetics-400 ---------------------------------------------------------------

K400_ROWS = [
    ('abseiling', 'aaa', '14', '24', 'train'),
    ('"passing American football (in game)"', 'bbb', '0.0', '10.0', 'train'),
    ('zumba', 'ccc', '30', '40', 'train'),
    ('zumba', 'missing', '1', '11', 'train'),
    ('abseiling', 'ddd', '5', '15', 'val'),
    ('', 'eee', '1', '11', 'test'),
]


def write_k400(root,
               rows=K400_ROWS,
               header='label,youtube_id,time_start,'
               'time_end,split,is_cc') -> str:
    path = str(root / 'kinetics_all.csv')
    with open(path, 'w', newline='') as file:
        file.write(header + '\n')
        writer = csv.writer(file)
        for row in rows:
            writer.writerow(list(row) + ['0'])
    return path


def k400_name(row) -> str:
    return f'{row[1]}_{int(float(row[2])):06d}_{int(float(row[3])):06d}.mp4'


def test_kinetics400_class_folders(tmp_path, capsys):
    ann = write_k400(tmp_path)
    for row in K400_ROWS[:3] + K400_ROWS[4:5]:
        folder = 'videos_train' if row[4] == 'train' else 'videos_val'
        label = row[0].strip('"').replace(' ', '_')
        touch(tmp_path / folder / label / k400_name(row))
    missing_out = tmp_path / 'missing.txt'
    assert load('kinetics400').main(
        [ann, '--root',
         str(tmp_path), '--missing-out',
         str(missing_out)]) == 0
    assert read(tmp_path / 'kinetics400_classes.txt') == [
        'abseiling', 'passing American football (in game)', 'zumba'
    ]
    assert read(tmp_path / 'kinetics400_train_list_videos.txt') == [
        'abseiling/aaa_000014_000024.mp4 0',
        'passing_American_football_(in_game)/bbb_000000_000010.mp4 1',
        'zumba/ccc_000030_000040.mp4 2'
    ]
    assert read(tmp_path / 'kinetics400_val_list_videos.txt') == [
        'abseiling/ddd_000005_000015.mp4 0'
    ]
    assert read(missing_out) == [
        osp.join(
            str(tmp_path), 'videos_train', 'zumba',
            'missing_000001_000011.mp4')
    ]
    out = capsys.readouterr().out
    assert '3 videos listed' in out and '1 missing' in out


def test_kinetics400_flat_pattern_and_classes(tmp_path, capsys):
    module = load('kinetics400')
    ann = write_k400(tmp_path, K400_ROWS[4:])  # val rows only
    touch(tmp_path / 'flat' / 'ddd.mkv')
    classes = tmp_path / 'classes.txt'
    classes.write_text('abseiling\npassing American football (in game)\n')
    assert module.main([
        ann, '--val-dir',
        str(tmp_path / 'flat'), '--out-dir',
        str(tmp_path / 'lists'), '--layout', 'flat', '--pattern',
        '{youtube_id}.mkv', '--classes',
        str(classes)
    ]) == 0
    assert read(tmp_path / 'lists' /
                'kinetics400_val_list_videos.txt') == ['ddd.mkv 0']
    assert not (tmp_path / 'lists' /
                'kinetics400_train_list_videos.txt').exists()
    # --no-check lists clips that are not on disk
    assert module.main([
        ann, '--root',
        str(tmp_path / 'nowhere'), '--no-check', '--classes',
        str(classes)
    ]) == 0
    assert read(tmp_path / 'nowhere' / 'kinetics400_val_list_videos.txt') == [
        'abseiling/ddd_000005_000015.mp4 0'
    ]


def test_kinetics400_hints_at_folders_with_spaces(tmp_path, capsys):
    ann = write_k400(tmp_path, K400_ROWS[1:2])
    touch(tmp_path / 'videos_train' / 'passing American football (in game)' /
          k400_name(K400_ROWS[1]))
    assert load('kinetics400').main([ann, '--root', str(tmp_path)]) == 0
    assert read(tmp_path / 'kinetics400_train_list_videos.txt') == []
    assert 'rename_classnames.sh' in capsys.readouterr().err


@pytest.mark.parametrize('rows, header, args, message', [
    (K400_ROWS, 'label,youtube_id,start,end,split', [],
     r'kinetics_all\.csv:1: missing column.*time_start'),
    ([('a', 'x', 'soon', '10', 'train')
      ], None, [], r'kinetics_all\.csv:2: invalid time_start \'soon\''),
    ([('a', 'x', '0', '10', 'holdout')
      ], None, [], r'kinetics_all\.csv:2: invalid split'),
    (K400_ROWS, None, ['--pattern', '{video}.mp4'
                       ], r'Invalid --pattern.*video'),
    (K400_ROWS, None, ['--root', 'no/such/dir'],
     r'train video folder no/such/dir/videos_train does not exist')
])
def test_kinetics400_errors(tmp_path, capsys, rows, header, args, message):
    kwargs = dict(header=header) if header else {}
    ann = write_k400(tmp_path, rows, **kwargs)
    os.makedirs(tmp_path / 'videos_train')
    root = [] if '--root' in args else ['--root', str(tmp_path)]
    assert load('kinetics400').main([ann, *root, *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith('kinetics400: error: ')
    assert re.search(message, err), err


def test_kinetics400_unknown_val_class(tmp_path, capsys):
    ann = write_k400(tmp_path, [K400_ROWS[0], ('yoga', 'y', '0', '10', 'val')])
    assert load('kinetics400').main([ann, '--no-check']) == 1
    assert "kinetics_all.csv:3: class 'yoga' is not in the class list" in (
        capsys.readouterr().err)


# Something-Something-v2 -----------------------------------------------------


def write_sthv2(root, train=None) -> None:
    ann = root / 'annotations'
    ann.mkdir(parents=True)
    labels = {
        'Putting something on something': '1',
        'Pushing something from left to right': '0'
    }
    (ann / 'something-something-v2-labels.json').write_text(json.dumps(labels))
    train = train or [
        dict(id='10', template='Putting [something] on [something]'),
        dict(id='11', template='Pushing [something] from left to right'),
        dict(id='12', template='Putting [something] on [something]')
    ]
    (ann / 'something-something-v2-train.json').write_text(json.dumps(train))
    (ann / 'something-something-v2-validation.json').write_text(
        json.dumps([
            dict(
                id='20', template='Pushing [something] from left '
                'to right')
        ]))


def test_sthv2(tmp_path, capsys):
    write_sthv2(tmp_path)
    for video_id in ('10', '11', '20'):
        touch(tmp_path / 'videos' / f'{video_id}.mp4')
    touch(tmp_path / 'videos' / '12.webm')  # not re-encoded: missing
    missing = tmp_path / 'missing.txt'
    assert load('sthv2').main([
        '--root',
        str(tmp_path), '--ext', 'mp4', '--missing-out',
        str(missing)
    ]) == 0
    assert read(tmp_path /
                'sthv2_train_list_videos.txt') == ['10.mp4 1', '11.mp4 0']
    assert read(tmp_path / 'sthv2_val_list_videos.txt') == ['20.mp4 0']
    assert read(tmp_path / 'sthv2_classes.txt') == [
        'Pushing something from left to right',
        'Putting something on something'
    ]
    assert read(missing) == [osp.join(str(tmp_path), 'videos', '12.mp4')]
    assert '2 videos listed' in capsys.readouterr().out
    # the released .webm names, without looking at the disk
    assert load('sthv2').main([
        '--root',
        str(tmp_path), '--no-check', '--out-dir',
        str(tmp_path / 'webm')
    ]) == 0
    assert read(tmp_path / 'webm' /
                'sthv2_train_list_videos.txt')[2] == ('12.webm 1')


def test_sthv2_errors(tmp_path, capsys):
    write_sthv2(
        tmp_path,
        train=[
            dict(id='10', template='Putting [something] on [something]'),
            dict(id='13', template='Juggling [something]')
        ])
    assert load('sthv2').main(['--root', str(tmp_path), '--no-check']) == 1
    err = capsys.readouterr().err
    assert 'something-something-v2-train.json: entry 1 (id 13): template ' \
        "'Juggling something' is not in" in err
    (tmp_path / 'annotations' /
     'something-something-v2-labels.json').write_text('{\n"a": "0",\n}')
    assert load('sthv2').main(['--root', str(tmp_path), '--no-check']) == 1
    assert 'something-something-v2-labels.json:3: not valid JSON' in (
        capsys.readouterr().err)


# Diving48 -------------------------------------------------------------------


def write_diving48(root, train_label=3) -> None:
    ann = root / 'annotations'
    ann.mkdir(parents=True)
    entry = dict(start_frame=0, end_frame=40)
    (ann / 'Diving48_V2_train.json').write_text(
        json.dumps([
            dict(vid_name='-abc_00001', label=train_label, **entry),
            dict(vid_name='-abc_00002', label=47, **entry)
        ]))
    (ann / 'Diving48_V2_test.json').write_text(
        json.dumps([dict(vid_name='xyz_00003', label=0, **entry)]))
    (ann / 'Diving48_vocab.json').write_text(
        json.dumps([['Back', '15som', '05Twis', 'FREE']] * 48))


def test_diving48(tmp_path, capsys):
    write_diving48(tmp_path)
    for name in ('-abc_00001', 'xyz_00003'):
        touch(tmp_path / 'videos' / f'{name}.mp4')
    assert load('diving48').main(['--root', str(tmp_path)]) == 0
    assert read(tmp_path /
                'diving48_train_list_videos.txt') == ['-abc_00001.mp4 3']
    assert read(tmp_path /
                'diving48_val_list_videos.txt') == ['xyz_00003.mp4 0']
    classes = read(tmp_path / 'diving48_classes.txt')
    assert len(classes) == 48 and classes[0] == 'Back 15som 05Twis FREE'
    assert '1 missing' in capsys.readouterr().out


def test_diving48_errors(tmp_path, capsys):
    write_diving48(tmp_path, train_label=48)
    assert load('diving48').main(['--root', str(tmp_path), '--no-check']) == 1
    assert ('Diving48_V2_train.json: entry 0 (-abc_00001): invalid label 48'
            in capsys.readouterr().err)
    assert load('diving48').main(['--root', str(tmp_path / 'none')]) == 1
    assert 'video folder' in capsys.readouterr().err


# ImageNet -------------------------------------------------------------------

WNIDS = ('n01440764', 'n01443537', 'n01484850')


@pytest.fixture
def imagenet(tmp_path):
    for i, wnid in enumerate(WNIDS):
        for j in range(2):
            touch(tmp_path / 'train' / wnid / f'{wnid}_{j}.JPEG')
        touch(tmp_path / 'val' / f'ILSVRC2012_val_{i + 1:08d}.JPEG')
    touch(tmp_path / 'train' / WNIDS[0] / 'notes.txt')
    return tmp_path


def test_imagenet_kaggle_ground_truth(imagenet, capsys):
    gt = imagenet / 'LOC_val_solution.csv'
    gt.write_text('ImageId,PredictionString\n'
                  'ILSVRC2012_val_00000002,n01443537 1 2 3 4\n'
                  'ILSVRC2012_val_00000001,n01440764 1 2 3 4 n01440764 5\n'
                  'ILSVRC2012_val_00000009,n01484850 1 2 3 4\n')
    assert load('imagenet').main(
        ['--root', str(imagenet), '--val-gt',
         str(gt)]) == 0
    meta = imagenet / 'meta'
    train = read(meta / 'train.txt')
    assert len(train) == 6
    assert train[0] == 'n01440764/n01440764_0.JPEG 0'
    assert train[-1] == 'n01484850/n01484850_1.JPEG 2'
    assert read(meta / 'val.txt') == [
        'ILSVRC2012_val_00000002.JPEG 1', 'ILSVRC2012_val_00000001.JPEG 0'
    ]
    assert read(meta / 'classes.txt') == list(WNIDS)
    assert '1 missing' in capsys.readouterr().out


def test_imagenet_val_class_folders_and_list(imagenet, capsys):
    module = load('imagenet')
    touch(imagenet / 'val_tree' / WNIDS[2] / 'x.jpeg')
    assert module.main([
        '--root',
        str(imagenet), '--val-dir',
        str(imagenet / 'val_tree'), '--splits', 'val'
    ]) == 0
    assert read(imagenet / 'meta' / 'val.txt') == ['n01484850/x.jpeg 2']
    assert not (imagenet / 'meta' / 'train.txt').exists()
    gt = imagenet / 'val.txt'
    gt.write_text('ILSVRC2012_val_00000001.JPEG 2\n'
                  'ILSVRC2012_val_00000003 n01440764\n')
    assert module.main([
        '--root',
        str(imagenet), '--val-gt',
        str(gt), '--splits', 'val', '--out-dir',
        str(imagenet / 'm2')
    ]) == 0
    assert read(imagenet / 'm2' / 'val.txt') == [
        'ILSVRC2012_val_00000001.JPEG 2', 'ILSVRC2012_val_00000003.JPEG 0'
    ]


@pytest.mark.parametrize('content, message', [
    ('65\n970\n', r'ILSVRC2012_validation_ground_truth.*sorted'),
    ('a.JPEG n99999999\n', r'gt\.txt:1: unknown class \'n99999999\''),
    ('a.JPEG 0\nb.JPEG\tn01440764 x\n', r'gt\.txt:2: expected "file label"'),
    (None, r'val folder .* has no class folders: pass .*--val-gt'),
])
def test_imagenet_errors(imagenet, capsys, content, message):
    args = ['--root', str(imagenet)]
    if content is not None:
        (imagenet / 'gt.txt').write_text(content)
        args += ['--val-gt', str(imagenet / 'gt.txt')]
    assert load('imagenet').main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith('imagenet: error: ')
    assert re.search(message, err), err


# resize_videos --------------------------------------------------------------

FAKE_FFMPEG = '''#!{python} -S
import sys
args = sys.argv[1:]
src = args[args.index('-i') + 1]
if 'bad' in src:
    sys.stderr.write('noise\\n{{}}: Invalid data found\\n'.format(src))
    sys.exit(1)
with open(args[-1], 'w') as f:
    f.write(' '.join(args))
'''


@pytest.fixture
def sources(tmp_path):
    src = tmp_path / 'src'
    for rel in ('cls_a/v1.mp4', 'cls_a/v2.MP4', 'cls_b/v3.webm', 'v4.mp4',
                'cls_b/bad.mp4', 'cls_b/notes.txt'):
        touch(src / rel)
    return src


def test_resize_videos_with_fake_ffmpeg(tmp_path, sources, capsys):
    ffmpeg = tmp_path / 'bin' / 'ffmpeg'
    ffmpeg.parent.mkdir()
    ffmpeg.write_text(FAKE_FFMPEG.format(python=sys.executable))
    ffmpeg.chmod(0o755)
    dst, failed = tmp_path / 'dst', tmp_path / 'failed.txt'
    module = load('resize_videos')
    args = [
        str(sources),
        str(dst), '--ffmpeg',
        str(ffmpeg), '--nproc', '2', '--ext', 'mp4', 'webm', '--failed-out',
        str(failed)
    ]
    assert module.main(args) == 1
    outputs = sorted(
        osp.relpath(osp.join(d, f), dst) for d, _, files in os.walk(dst)
        for f in files)
    assert outputs == [
        'cls_a/v1.mp4', 'cls_a/v2.mp4', 'cls_b/v3.mp4', 'v4.mp4'
    ]
    command = (dst / 'cls_b' / 'v3.mp4').read_text().split()
    assert command[command.index('-i') + 1] == str(sources / 'cls_b' /
                                                   'v3.webm')
    assert "scale='if(gt(iw,ih),-2,256)':'if(gt(iw,ih),256,-2)'" in command
    assert {'-an', 'libx264', 'yuv420p'} <= set(command)
    assert read(failed) == [
        f'{sources / "cls_b" / "bad.mp4"}\tffmpeg exited with 1: '
        f'{sources / "cls_b" / "bad.mp4"}: Invalid data found'
    ]
    out = capsys.readouterr().out
    assert '4 encoded, 0 skipped (already done), 1 failed' in out
    # a second run only retries the failure
    (dst / 'v4.mp4').write_text('')  # an empty output is not done
    assert module.main(args) == 1
    assert '1 encoded, 3 skipped (already done), 1 failed' in (
        capsys.readouterr().out)


def test_resize_videos_errors(tmp_path, sources, capsys):
    module = load('resize_videos')
    ffmpeg = sys.executable  # found, never run: the checks come first
    for args, message in [
        ([str(sources), str(sources / 'out')], 'is inside the source'),
        ([str(tmp_path / 'none'), str(tmp_path / 'o')], 'does not exist'),
        ([str(sources),
          str(tmp_path / 'o'), '--short-side',
          '255'], 'Invalid --short-side 255'),
    ]:
        assert module.main([*args, '--ffmpeg', ffmpeg]) == 1
        assert message in capsys.readouterr().err


def test_resize_videos_without_ffmpeg(tmp_path, sources):
    empty_bin = tmp_path / 'empty_bin'
    empty_bin.mkdir()
    result = subprocess.run([
        sys.executable,
        osp.join(DATA_TOOLS, 'resize_videos.py'),
        str(sources),
        str(tmp_path / 'dst')
    ],
                            env=fresh_env(PATH=str(empty_bin)),
                            capture_output=True,
                            text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "ffmpeg was not found ('ffmpeg' on PATH)" in result.stderr
    assert 'apt-get install ffmpeg' in result.stderr
    assert not (tmp_path / 'dst').exists()


@pytest.mark.skipif(
    shutil.which('ffmpeg') is None, reason='ffmpeg is not installed')
def test_resize_videos_with_ffmpeg(tmp_path):
    cv2 = pytest.importorskip('cv2')
    np = pytest.importorskip('numpy')
    src = tmp_path / 'src'
    (src / 'cls').mkdir(parents=True)
    for name, (width, height) in {
            'cls/wide.mp4': (96, 64),
            'tall.mp4': (64, 96)
    }.items():
        writer = cv2.VideoWriter(
            str(src / name), cv2.VideoWriter_fourcc(*'mp4v'), 8,
            (width, height))
        for _ in range(8):
            writer.write(
                np.random.randint(0, 256, (height, width, 3), np.uint8))
        writer.release()
    assert load('resize_videos').main(
        [str(src), str(tmp_path / 'dst'), '--short-side', '32']) == 0
    for name, expected in {
            'cls/wide.mp4': (48, 32),
            'tall.mp4': (32, 48)
    }.items():
        capture = cv2.VideoCapture(str(tmp_path / 'dst' / name))
        size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        ok, _ = capture.read()
        capture.release()
        assert ok and size == expected
