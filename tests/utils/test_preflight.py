# Copyright (c) bevt contributors. All rights reserved.
"""The preflight: every missing file and bad setting in one report, before
anything is built."""
import os.path as osp

import pytest
from mmengine.config import Config

import bevt.utils.preflight as preflight_module
from bevt.testing import PRETRAIN_SMOKE_CONFIG, SMOKE_CONFIG, config_path
from bevt.utils import (PreflightError, PreflightProblem, format_preflight,
                        preflight_problems, run_preflight)

VIDEO = 'train_dataloader.dataset.dataset'
IMAGE = 'img_dataloader.dataset.dataset'
TOKENIZER = 'model.target_generator.init_cfg.checkpoint'
#: four files a pretraining run needs: (config key, file name)
FOUR_FILES = [(f'{VIDEO}.ann_file', 'videos.txt'),
              (f'{IMAGE}.ann_file', 'images.txt'),
              ('model.backbone.pretrained', 'stage1.pth'),
              (TOKENIZER, 'dalle_encoder.pth')]


def smoke_config(data_root, monkeypatch, path=PRETRAIN_SMOKE_CONFIG):
    monkeypatch.setenv('BEVT_DATA', data_root)
    return Config.fromfile(path)


def keys(problems, warning=False):
    return [p.key for p in problems if p.warning == warning]


@pytest.mark.parametrize('path', [
    PRETRAIN_SMOKE_CONFIG, SMOKE_CONFIG,
    config_path('bevt/smoke/bevt-hog_swin-nano-p244-w444_1xb4-8x2x1-3e_'
                'synthetic-motion-shapes.py')
])
def test_complete_smoke_setups_pass(path, motion_data, monkeypatch):
    cfg = smoke_config(motion_data, monkeypatch, path)
    assert preflight_problems(cfg) == []
    if cfg.get('test_dataloader'):
        assert preflight_problems(cfg, 'test') == []
    else:  # pretraining has no test loop
        assert keys(preflight_problems(cfg, 'test')) == ['test_dataloader']


def test_four_missing_files_in_one_error(motion_data, tmp_path, monkeypatch):
    cfg = smoke_config(motion_data, monkeypatch)
    missing = {key: str(tmp_path / name) for key, name in FOUR_FILES}
    cfg.merge_from_dict({
        key: path
        for key, path in missing.items() if key != TOKENIZER
    })
    cfg.model.target_generator.init_cfg = dict(
        type='Pretrained', checkpoint=missing[TOKENIZER])
    problems = preflight_problems(cfg)
    assert sorted(keys(problems)) == sorted(missing)
    message = str(PreflightError(problems, 'pretrain.py'))
    assert message.startswith('pretrain.py cannot run: 4 problems')
    for key, path in missing.items():
        assert f'{key}: ' in message and path in message
    # each with how to get it
    assert 'tools/model_converters/dalle_openai.py' in message
    assert 'docs/data_preparation.md' in message


def test_missing_data_named_with_the_script_that_writes_it():
    cfg = Config.fromfile(config_path('bevt/pretrain.py'))
    if osp.isdir('data/kinetics400') or osp.isdir('data/imagenet'):
        pytest.skip('the real data is here')
    message = format_preflight(preflight_problems(cfg))
    assert f'{VIDEO}.ann_file: the annotation list data/kinetics400/' in \
        message
    assert 'tools/data/kinetics400.py' in message
    assert f'{IMAGE}.dataset.ann_file: the annotation list data/imagenet/' \
        in message
    assert 'tools/data/imagenet.py' in message


def test_bad_tokenizer_view_size_is_named(motion_data, monkeypatch):
    cfg = smoke_config(motion_data, monkeypatch)
    # 4x4 grid x 8 px (DALL-E) = 32 px, not 48
    cfg.train_dataloader.dataset.dataset.pipeline[6].size = 48
    problems = preflight_problems(cfg)
    assert keys(problems) == [f'{VIDEO}.pipeline.6.size']
    assert '48x48' in problems[0].message and '32x32' in problems[0].message
    assert 'size=32' in problems[0].hint
    # HOG targets of 16 px: the same grid needs a 64-px view
    cfg.model.target_generator = dict(type='BEVTHOGTargets', downsample=16)
    assert keys(preflight_problems(cfg)) == [
        f'{VIDEO}.pipeline.6.size', f'{IMAGE}.pipeline.5.size'
    ]
    cfg.train_dataloader.dataset.dataset.pipeline[6].size = 64
    cfg.img_dataloader.dataset.dataset.pipeline[5].size = (64, 64)
    assert preflight_problems(cfg) == []


@pytest.mark.parametrize('option,value,key', [
    (f'{IMAGE}.pipeline.6.num_masking_patches', 17,
     f'{IMAGE}.pipeline.6.num_masking_patches'),
    (f'{VIDEO}.pipeline.7.min_num_patches', 9,
     f'{VIDEO}.pipeline.7.min_num_patches'),
    (f'{VIDEO}.pipeline.7.max_num_patches', 1,
     f'{VIDEO}.pipeline.7.max_num_patches'),
    (f'{VIDEO}.pipeline.7.clip_len', 16, f'{VIDEO}.pipeline.7.clip_len'),
    (f'{VIDEO}.pipeline.7.input_size', 0, f'{VIDEO}.pipeline.7.input_size'),
    (f'{VIDEO}.pipeline.7.no_such_argument', 1, f'{VIDEO}.pipeline.7'),
    ('train_dataloader.batch_size', 0, 'train_dataloader.batch_size'),
    ('img_dataloader.num_workers', -1, 'img_dataloader.num_workers'),
    ('img_dataloader.num_workers', 0, 'img_dataloader.persistent_workers'),
])
def test_bad_values_are_named(option, value, key, motion_data, monkeypatch):
    cfg = smoke_config(motion_data, monkeypatch)
    cfg.merge_from_dict({option: value})
    assert keys(preflight_problems(cfg)) == [key]


def test_first_list_entry_must_exist(motion_data, tmp_path, monkeypatch):
    cfg = smoke_config(motion_data, monkeypatch)
    wrong = tmp_path / 'wrong.txt'
    wrong.write_text('not_there.mp4 0\nleft_0000.mp4 0\n')
    empty = tmp_path / 'empty.txt'
    empty.write_text('\n')
    cfg.merge_from_dict({
        f'{VIDEO}.ann_file': str(wrong),
        f'{IMAGE}.ann_file': str(empty)
    })
    problems = preflight_problems(cfg)
    assert keys(problems) == [f'{VIDEO}.ann_file', f'{IMAGE}.ann_file']
    assert "'not_there.mp4'" in problems[0].message
    assert osp.join(motion_data, 'videos', 'train', 'not_there.mp4') in \
        problems[0].message
    assert 'is empty' in problems[1].message
    # a list that is not text is reported, not a crash
    empty.write_bytes(b'\xff\xfe\x00\x81')
    assert 'cannot be read' in preflight_problems(cfg)[1].message


def test_data_root_and_wrappers_are_followed(motion_data, tmp_path):
    list_file = 'videos_train.txt'
    cfg = Config(
        dict(
            train_dataloader=dict(
                batch_size=2,
                dataset=dict(
                    type='ConcatDataset',
                    datasets=[
                        dict(
                            type='VideoDataset',
                            data_root=motion_data,
                            ann_file=list_file,
                            data_prefix=dict(video='videos/train')),
                        dict(
                            type='RepeatDataset',
                            dataset=dict(
                                type='VideoDataset',
                                data_root=motion_data,
                                ann_file=list_file,
                                data_prefix=dict(video='videos/none'))),
                        dict(
                            type='VideoDataset',
                            data_root=str(tmp_path / 'none'),
                            ann_file=list_file)
                    ]))))
    problems = preflight_problems(cfg)
    wrappers = 'train_dataloader.dataset.datasets'
    assert keys(problems) == [
        f'{wrappers}.1.dataset.data_prefix.video', f'{wrappers}.2.data_root'
    ]
    assert osp.join(motion_data, 'videos/none') in problems[0].message


def test_remote_paths_are_not_checked():
    cfg = Config(
        dict(
            model=dict(
                backbone=dict(pretrained='https://example.com/a.pth'),
                init_cfg=dict(type='Pretrained', checkpoint='s3://b/c.pth')),
            load_from='s3://bucket/epoch_1.pth',
            train_dataloader=dict(
                dataset=dict(
                    type='VideoDataset',
                    ann_file='s3://bucket/list.txt',
                    data_prefix=dict(video='s3://bucket/videos')))))
    assert preflight_problems(cfg) == []


def test_resume_checkpoint_and_load_from(tmp_path):
    missing = str(tmp_path / 'epoch_3.pth')
    cfg = Config(dict(load_from=missing, train_dataloader=None))
    problems = preflight_problems(cfg, resume=missing)
    # one report for the file, under the flag that named it
    assert [p.key for p in problems] == ['--resume', 'train_dataloader']
    assert missing in problems[0].message
    problems = preflight_problems(cfg, 'test', checkpoint=missing)
    assert [p.key for p in problems] == ['CHECKPOINT', 'test_dataloader']
    cfg.load_from = str(tmp_path / 'other.pth')
    assert [p.key for p in preflight_problems(cfg, resume=missing)
            ][:2] == ['--resume', 'load_from']


def test_val_and_other_loaders(motion_data, tmp_path, monkeypatch):
    cfg = smoke_config(str(tmp_path / 'none'), monkeypatch, SMOKE_CONFIG)
    loaders = {key.split('.')[0] for key in keys(preflight_problems(cfg))}
    assert loaders == {'train_dataloader', 'val_dataloader'}
    cfg.val_cfg = None  # --no-validate: the val loader is not built
    loaders = {key.split('.')[0] for key in keys(preflight_problems(cfg))}
    assert loaders == {'train_dataloader'}
    cfg = smoke_config(motion_data, monkeypatch)
    cfg.train_cfg.other_loaders = ['img_dataloader', 'depth_dataloader']
    assert keys(preflight_problems(cfg)) == ['train_cfg.other_loaders.1']
    cfg.img_dataloader.batch_size = 0  # a named loader is checked
    assert keys(preflight_problems(cfg)) == [
        'img_dataloader.batch_size', 'train_cfg.other_loaders.1'
    ]


def test_hook_loaders_are_warnings(motion_data, monkeypatch, capsys):
    cfg = smoke_config(motion_data, monkeypatch)
    knn_set = dict(
        batch_size=8,
        dataset=dict(
            type='VideoDataset',
            ann_file='data/knn/bank.txt',
            data_prefix=dict(video='data/knn/videos')))
    cfg.custom_hooks = [
        *cfg.custom_hooks,
        dict(type='BEVTKNNHook', bank=knn_set, query=knn_set)
    ]
    problems = preflight_problems(cfg)
    assert keys(problems) == []
    hook = f'custom_hooks.{len(cfg.custom_hooks) - 1}'
    assert keys(
        problems, warning=True) == [
            f'{hook}.{name}.dataset.{key}' for name in ('bank', 'query')
            for key in ('data_prefix.video', 'ann_file')
        ]
    run_preflight(cfg, 'config.py')  # goes on, printing the warnings
    err = capsys.readouterr().err
    assert 'preflight of config.py: OK' in err and '4 warnings' in err
    with pytest.raises(SystemExit) as stop:
        run_preflight(cfg, 'config.py', check_only=True)
    assert stop.value.code == 0
    assert '4 warnings' in capsys.readouterr().out


@pytest.mark.parametrize('launcher,variable',
                         [('pytorch', 'RANK'), ('slurm', 'SLURM_PROCID'),
                          ('mpi', 'OMPI_COMM_WORLD_RANK')])
def test_only_rank_0_prints_and_every_rank_stops(launcher, variable, tmp_path,
                                                 monkeypatch, capsys):
    missing = str(tmp_path / 'epoch_1.pth')
    cfg = Config(dict(launcher=launcher, load_from=missing))
    monkeypatch.setattr(preflight_module, 'RANK_EXIT_DELAY_S', 0.01)
    monkeypatch.setenv(variable, '1')
    with pytest.raises(SystemExit) as stop:
        run_preflight(cfg, 'config.py', 'test')
    assert stop.value.code == 1
    assert capsys.readouterr() == ('', '')
    monkeypatch.setenv(variable, '0')
    with pytest.raises(SystemExit) as stop:
        run_preflight(cfg, 'config.py', 'test')
    assert str(stop.value.code).startswith('error: config.py cannot run')
    assert missing in str(stop.value.code)


def test_format_lists_errors_then_warnings():
    problems = [
        PreflightProblem('a.b', 'is missing', 'make it'),
        PreflightProblem('c', 'optional', warning=True),
        PreflightProblem('d', 'bad value')
    ]
    assert format_preflight(problems, 'x.py').splitlines() == [
        'x.py cannot run: 2 problems found before building anything:',
        '  1. a.b: is missing', '     -> make it', '  2. d: bad value',
        '1 warning (optional parts that turn themselves off):',
        '  - c: optional'
    ]
    with pytest.raises(ValueError, match='Invalid mode'):
        preflight_problems(Config(), mode='val')
