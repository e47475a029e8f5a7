# Copyright (c) bevt contributors. All rights reserved.
"""BEVTKNNHook: the weighted vote, the balanced subsets, the feature
gathering (1 and 2 gloo ranks) and what the hook logs."""
import logging
import math
from types import SimpleNamespace

import pytest
import torch
from mmaction.structures import ActionDataSample
from mmengine.logging import MessageHub, MMLogger
from mmengine.registry import DefaultScope
from torch import nn
from torch.utils.data import Dataset

import bevt.engine  # noqa: F401  (registers the hook)
import bevt.models  # noqa: F401
from bevt.engine.hooks.knn_hook import (BEVTKNNHook, amp_settings,
                                        balanced_indices, build_knn_loader,
                                        extract_features, knn_accuracy,
                                        knn_class_scores)
from bevt.registry import HOOKS, MODELS
from bevt.testing import run_gloo_ranks

NUM_SAMPLES = 13  # odd: DefaultSampler pads the second rank's share


# ------------------------------------------------------------ the vote
def test_vote_on_a_hand_computed_example():
    bank = torch.tensor([[1., 0.], [0., 2.], [1., 1.], [-3., 0.]])
    labels = torch.tensor([0, 1, 1, 0])
    query = torch.tensor([[2., 0.], [0., 1.]])
    scores = knn_class_scores(bank, labels, query, 3, k=2, temperature=0.5)
    # query 0: cosine 1 (bank 0, class 0) and 1/sqrt(2) (bank 2, class 1)
    # query 1: cosine 1 (bank 1, class 1) and 1/sqrt(2) (bank 2, class 1)
    e, f = math.exp(1 / 0.5), math.exp(2**-0.5 / 0.5)
    expected = torch.tensor([[e, f, 0.], [0., e + f, 0.]])
    torch.testing.assert_close(scores, expected)
    # k larger than the bank: every bank sample votes
    scores = knn_class_scores(bank, labels, query, 2, k=10, temperature=1.)
    g = math.exp(2**-0.5)
    torch.testing.assert_close(
        scores,
        torch.tensor([[math.e + math.exp(-1),
                       math.exp(0) + g], [2 * math.exp(0), math.e + g]]))
    result = knn_accuracy(
        bank, labels, query, torch.tensor([0, 0]), k=2, temperature=0.5)
    assert result == dict(top1=0.5, top5=1.0)
    with pytest.raises(ValueError, match='shapes'):
        knn_class_scores(bank, labels, query[:, :1], 2)


def test_label_features_give_100_and_random_features_chance():
    gen = torch.Generator().manual_seed(0)
    classes, dims = 10, 64
    bank_labels = torch.arange(400) % classes
    query_labels = torch.arange(1000) % classes
    centres = torch.randn(classes, dims, generator=gen)

    def encode(labels):
        noise = 0.3 * torch.randn(len(labels), dims, generator=gen)
        return centres[labels] + noise

    result = knn_accuracy(
        encode(bank_labels), bank_labels, encode(query_labels), query_labels)
    assert result == dict(top1=1.0, top5=1.0)
    result = knn_accuracy(
        torch.randn(400, dims, generator=gen), bank_labels,
        torch.randn(1000, dims, generator=gen), query_labels)
    assert 0.06 < result['top1'] < 0.15  # chance: 0.1
    assert 0.4 < result['top5'] < 0.6  # chance: 0.5


def test_balanced_indices():
    labels = [0] * 6 + [1] * 3 + [2] * 3  # a list sorted by class
    assert balanced_indices(labels, 12, None) == list(range(12))
    assert balanced_indices(labels, 12, 20) == list(range(12))
    # turns: 0, 6, 9, then 1, 7, 10, then 2
    assert balanced_indices(labels, 12, 7) == [0, 1, 2, 6, 7, 9, 10]
    assert balanced_indices(None, 11, 3) == [0, 5, 10]


# ----------------------------------------------------- sets and features
class PackedSet(Dataset):
    """Packed samples like PackBEVTInputs gives: clips (3, 4, 32, 32) (or
    images (3, 32, 32)) of uint8 whose colour depends on the label, and
    labels i % 3."""

    def __init__(self, size=NUM_SAMPLES, image=False):
        self.size = size
        self.image = image

    def __len__(self):
        return self.size

    def __getitem__(self, idx):
        gen = torch.Generator().manual_seed(idx)
        label = idx % 3
        imgs = torch.randint(0, 60, (3, 4, 32, 32), generator=gen)
        imgs[label] += 120
        if self.image:
            imgs = imgs[:, 0]
        sample = ActionDataSample().set_gt_label(label)
        return dict(
            inputs=dict(imgs=imgs.to(torch.uint8)), data_samples=sample)


class TinyModel(nn.Module):
    """What the hook needs of a BEVT model: a data preprocessor and a
    backbone with ``forward_encoder``."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        with DefaultScope.overwrite_default_scope('bevt'):
            self.data_preprocessor = MODELS.build(
                dict(
                    type='BEVTDataPreprocessor',
                    mean=[100.] * 3,
                    std=[50.] * 3))
            self.backbone = MODELS.build(
                dict(
                    type='BEVTSwinTransformer3D',
                    arch=dict(
                        embed_dims=8,
                        depths=[1, 1, 1, 1],
                        num_heads=[1, 1, 2, 2]),
                    window_size=(2, 2, 2),
                    drop_path_rate=0.))
        self.backbone.init_weights()


def _hook(**kwargs):
    loader = dict(batch_size=2, dataset=PackedSet())
    return BEVTKNNHook(bank=loader, query=loader, k=3, **kwargs)


def test_features_and_loader():
    model = TinyModel().train()
    loader = build_knn_loader(dict(batch_size=4, dataset=PackedSet()))
    feats, labels = extract_features(model, loader)
    assert feats.shape == (NUM_SAMPLES, 64) and feats.dtype == torch.float32
    assert labels.tolist() == [i % 3 for i in range(NUM_SAMPLES)]
    assert model.training  # the mode is restored
    # per sample: the same features in another batch
    single = build_knn_loader(dict(batch_size=1, dataset=PackedSet(3)))
    torch.testing.assert_close(extract_features(model, single)[0], feats[:3])
    # max_samples: a balanced subset (the set's own cap wins)
    loader = build_knn_loader(
        dict(batch_size=4, dataset=PackedSet(), max_samples=3), 10)
    assert len(loader.dataset) == 3
    # images take the backbone's image path
    images = build_knn_loader(dict(batch_size=4, dataset=PackedSet(5, True)))
    assert extract_features(model, images)[0].shape == (5, 64)


def test_autocast_extraction():
    model = TinyModel()
    loader = build_knn_loader(dict(batch_size=4, dataset=PackedSet()))
    full = extract_features(model, loader)[0]
    half, labels = extract_features(model, loader, True, torch.bfloat16)
    assert half.dtype == torch.float32 and not torch.equal(half, full)
    torch.testing.assert_close(half, full, atol=0.1, rtol=0.1)
    assert amp_settings(None) == (False, None)


def test_hook_evaluates_and_logs(tmp_path):
    # registered in bevt's scope, whatever scope earlier tests left current
    with DefaultScope.overwrite_default_scope('bevt'):
        hook = HOOKS.build(
            dict(
                type='BEVTKNNHook',
                bank=dict(batch_size=4, dataset=PackedSet()),
                query=dict(batch_size=4, dataset=PackedSet()),
                k=3,
                interval=2))
    added = []
    runner = SimpleNamespace(
        model=TinyModel(),
        optim_wrapper=None,
        message_hub=MessageHub.get_instance('test_knn_hook'),
        logger=MMLogger.get_instance('test_knn_hook', log_level='INFO'),
        visualizer=SimpleNamespace(
            add_scalars=lambda scalars, **kw: added.append((scalars, kw))),
        timestamp='stamp',
        epoch=0,
        iter=0,
        max_epochs=3)
    lines = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())
    runner.logger.addHandler(handler)
    try:
        hook.before_train(runner)  # epoch 0
        for epoch, iters in ((0, 5), (1, 10), (2, 15)):
            runner.epoch, runner.iter = epoch, iters
            hook.after_train_epoch(runner)  # epochs 2 and 3 (the last)
    finally:
        runner.logger.removeHandler(handler)
    # the bank is the query set: each query finds itself first
    top1 = runner.message_hub.get_scalar('knn/top1').current()
    assert top1 == 1.0
    assert [line.split(':')[0] for line in lines
            ] == ['kNN (epoch 0)', 'kNN (epoch 2)', 'kNN (epoch 3)']
    assert 'knn/top1: 1.0000  knn/top5: 1.0000' in lines[0]
    assert '13 bank / 13 query samples' in lines[0]
    assert [kw['step'] for _, kw in added] == [0, 10, 15]
    assert added[0][0] == {'knn/top1': 1.0, 'knn/top5': 1.0}
    assert added[0][1]['file_path'] == 'stamp.json'


def test_missing_lists_turn_the_hook_off_with_one_warning(tmp_path):
    video = dict(type='VideoDataset', ann_file=str(tmp_path / 'no.txt'))
    hook = BEVTKNNHook(
        bank=dict(batch_size=2, dataset=video),
        query=dict(batch_size=2, dataset=dict(video, ann_file='')))
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    runner = SimpleNamespace(epoch=0)  # the hook touches nothing else
    try:
        hook.before_train(runner)
        hook.after_train_epoch(runner)
    finally:
        logger.removeHandler(handler)
    assert not hook.enabled
    assert len(records) == 1
    assert 'no.txt' in records[0].getMessage()


def test_invalid_arguments():
    loader = dict(batch_size=2, dataset=PackedSet())
    with pytest.raises(ValueError, match='interval'):
        BEVTKNNHook(bank=loader, query=loader, interval=0)
    with pytest.raises(ValueError, match='temperature'):
        BEVTKNNHook(bank=loader, query=loader, temperature=0)
    with pytest.raises(TypeError, match='query'):
        BEVTKNNHook(bank=loader, query=dict(batch_size=2))


# ------------------------------------------------------------- 2 ranks
def _rank_main(rank: int) -> dict:
    torch.set_num_threads(1)
    hook = _hook()
    result = hook.evaluate(TinyModel())
    feats, labels = extract_features(TinyModel(), hook.loaders()['bank'])
    result.update(feats=feats.tolist(), labels=labels.tolist())
    return result


def test_two_ranks_give_the_accuracy_of_one(tmp_path):
    results = run_gloo_ranks(_rank_main, str(tmp_path))
    hook = _hook()
    single = hook.evaluate(TinyModel())
    feats, labels = extract_features(TinyModel(), hook.loaders()['bank'])
    assert single['num_bank'] == single['num_query'] == NUM_SAMPLES
    for result in results:
        # each sample once, in set order (the padding sample dropped)
        assert result['labels'] == labels.tolist()
        torch.testing.assert_close(torch.tensor(result['feats']), feats)
        for key in ('top1', 'top5', 'num_bank', 'num_query'):
            assert result[key] == single[key]
