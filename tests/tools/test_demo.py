# Copyright (c) bevt contributors. All rights reserved.
"""tools/demo.py (``make demo``): its parsing helpers and a tiny run of the
whole chain (generate -> pretrain -> convert -> fine-tune x2 -> test x2 ->
pictures) through the real tools."""
import argparse
import importlib.util
import json
import os.path as osp
import re
import subprocess
import sys

from bevt.testing import REPO_ROOT, fresh_env

SCRIPT = osp.join(REPO_ROOT, 'tools', 'demo.py')
spec = importlib.util.spec_from_file_location('bevt_demo', SCRIPT)
demo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo)

TRAIN_END = ('11/25 20:20:16 - mmengine - INFO - Epoch(train)  [3][96/96]  '
             'base_lr: 1e-3 lr: 1e-3  time: 0.1  loss: 0.0704  loss_video: '
             '0.0302  loss_img: 0.0402  skipped_files: 0')
KNN_LINE = ('11/25 20:20:16 - mmengine - INFO - kNN (epoch 2): knn/top1: '
            '0.4375  knn/top5: 0.9062  (k=20, T=0.07, 128 bank / 128 query '
            'samples, 3.1 s)')
TEST_END = ('11/25 20:20:16 - mmengine - INFO - Epoch(test) [64/64]    '
            'acc/top1: 0.2812  acc/top5: 0.8438  acc/mean1: 0.2812  '
            'data_time: 0.0024  time: 0.0112')


def test_progress_lines():
    assert demo._progress(TRAIN_END) == ('epoch 3: loss 0.0704  loss_video '
                                         '0.0302  loss_img 0.0402')
    assert demo._progress(TRAIN_END.replace('[96/96]', '[50/96]')) is None
    assert demo._progress(TEST_END) == 'test top-1 28.1 %'
    assert demo._progress(KNN_LINE) == 'kNN top-1, epoch 2: 43.8 %'
    assert demo._progress('anything else') is None


def test_metrics_and_table():
    metrics = demo.read_test_metrics('noise\n' + TEST_END + '\n')
    assert metrics == dict(top1=0.2812, top5=0.8438)
    args = argparse.Namespace(pretrain_epochs=3, finetune_epochs=4)
    table = demo.results_table(
        dict(bevt=metrics, scratch=dict(top1=0.125, top5=0.625)), 8, args)
    assert '| BEVT-pretrained, fine-tuned 4 epochs | BEVT, 3 epochs' in table
    assert '| 28.1 % | 84.4 % |' in table
    assert '| from scratch, fine-tuned 4 epochs | none | 12.5 % | 62.5 % |' \
        in table
    assert '| chance | | 12.5 % | 62.5 % |' in table
    knn = demo.read_knn_metrics(
        KNN_LINE.replace('(epoch 2)', '(epoch 0)').replace('0.4375', '0.125') +
        '\nnoise\n' + KNN_LINE)
    assert knn == {
        0: dict(top1=0.125, top5=0.9062),
        2: dict(top1=0.4375, top5=0.9062)
    }
    table = demo.results_table(
        dict(bevt=metrics, scratch=dict(top1=0.125, top5=0.625)), 8, args, knn)
    assert ('| BEVT-pretrained, frozen: kNN (k=20) | BEVT, 3 epochs (clips '
            '+ images, HOG targets) | 43.8 % | 90.6 % |') in table
    assert '| random init, frozen: kNN (k=20) | none | 12.5 % | 90.6 % |' \
        in table
    assert table.index('kNN') > table.index('from scratch')
    assert table.index('kNN') < table.index('chance')


def test_knn_curve(tmp_path):
    path = tmp_path / 'knn_curve.png'
    demo.draw_knn_curve(
        {
            0: dict(top1=0.1, top5=0.5),
            1: dict(top1=0.3, top5=0.8)
        }, 8, str(path))
    from PIL import Image
    with Image.open(path) as img:
        assert img.size[0] > 300 and img.size[1] > 200


def test_tiny_demo_runs_every_step(tmp_path):
    data, work = tmp_path / 'data', tmp_path / 'work'
    proc = subprocess.run([
        sys.executable, SCRIPT, '--data-root',
        str(data), '--work-dir',
        str(work), '--pretrain-epochs', '1', '--finetune-epochs', '1',
        '--videos-per-class', '2', '1', '--images-per-class', '2', '1'
    ],
                          cwd=REPO_ROOT,
                          env=fresh_env(
                              OMP_NUM_THREADS='1', MKL_NUM_THREADS='1'),
                          capture_output=True,
                          text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert '[demo] writing the motion dataset' in out
    for step in range(1, 8):  # pretrain, convert, 2 x (train, test), pictures
        assert f'[demo {step}]' in out, out
    assert '    epoch 1: loss ' in out  # progress of the pretraining
    assert '    kNN top-1, epoch 0: ' in out
    assert '    kNN top-1, epoch 1: ' in out
    for row in ('BEVT-pretrained, fine-tuned 1 epochs', 'from scratch',
                'BEVT-pretrained, frozen: kNN (k=20)',
                'random init, frozen: kNN (k=20)', 'chance'):
        assert re.search(rf'\| {re.escape(row)}.*\| \d+\.\d % \|', out), out
    assert 'video: ' in out and 'image: ' in out  # masked-token summary
    for name in ('video_masks.png', 'video_masks.gif', 'video_tube.png',
                 'image_masks.png', 'knn_curve.png'):
        assert osp.isfile(work / 'pictures' / name)
        assert str(work / 'pictures' / name) in out
    with open(work / 'results.json') as f:
        results = json.load(f)
    assert set(results['results']) == {'bevt', 'scratch'}
    assert 0 <= results['results']['bevt']['top1'] <= 1
    assert sorted(results['knn']) == ['0', '1']  # init and epoch 1
    # the kNN tool on the pretraining checkpoint gives what the hook logged
    # after the last epoch
    proc = subprocess.run([
        sys.executable,
        osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'knn_eval.py'),
        demo.PRETRAIN_CONFIG,
        str(work / 'pretrain' / 'epoch_1.pth')
    ],
                          cwd=REPO_ROOT,
                          env=fresh_env(BEVT_DATA=str(data)),
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    hook = results['knn']['1']
    assert (f'knn/top1: {hook["top1"]:.4f}  knn/top5: {hook["top5"]:.4f}'
            in proc.stdout), proc.stdout
    for name in ('pretrain', 'convert', 'finetune_bevt', 'test_bevt',
                 'finetune_scratch', 'test_scratch', 'pictures'):
        assert osp.getsize(work / 'logs' / f'{name}.log') > 0
    # the BEVT fine-tuning really started from the converted checkpoint,
    # the other from random init
    loads = 'Loads checkpoint by local backend from path: '
    with open(work / 'logs' / 'finetune_bevt.log') as f:
        assert loads + str(work / 'pretrain_mmaction.pth') in f.read()
    with open(work / 'logs' / 'finetune_scratch.log') as f:
        assert loads not in f.read()
