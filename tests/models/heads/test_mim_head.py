# Copyright (c) bevt contributors. All rights reserved.
import copy

import pytest
import torch
import torch.nn.functional as F

from bevt.models.heads import BEVTMIMHead, BEVTRegressionHead
from bevt.registry import MODELS

N, L, C, K = 2, 6, 8, 16


def make_batch(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(N, L, C, generator=gen)
    target = torch.randint(0, K, (N, L), generator=gen)
    mask = torch.tensor([[1, 0, 1, 1, 0, 0], [0, 1, 1, 0, 0, 1]],
                        dtype=torch.bool)
    target[~mask] = -1  # unmasked ids may be missing (skipped frames)
    return feats, target, mask


def make_head(**kwargs) -> BEVTMIMHead:
    torch.manual_seed(0)
    head = BEVTMIMHead(in_channels=C, num_classes=K, **kwargs)
    head.init_weights()
    return head


def test_loss_matches_cross_entropy():
    head = make_head()
    feats, target, mask = make_batch()
    out = head.loss(feats, target, mask, 'video')
    assert set(out) == {'loss_video', 'acc_video'}
    # hand computation: CE over the masked tokens only
    logits = feats[mask] @ head.fc.weight.t() + head.fc.bias
    expected = F.cross_entropy(logits, target[mask])
    torch.testing.assert_close(out['loss_video'], expected)
    # the diagnostic is not summed by mmengine
    assert all('loss' not in k for k in out if k.startswith('acc'))


def test_loss_weights_per_stream():
    feats, target, mask = make_batch()
    plain = make_head().loss(feats, target, mask, 'img')['loss_img']
    head = make_head(loss_weights=dict(video=2.0, img=0.5))
    torch.testing.assert_close(
        head.loss(feats, target, mask, 'video')['loss_video'], 2.0 * plain)
    torch.testing.assert_close(
        head.loss(feats, target, mask, 'img')['loss_img'], 0.5 * plain)
    with pytest.raises(ValueError, match='depth'):
        head.loss(feats, target, mask, 'depth')


@pytest.mark.parametrize('all_masked', [False, True])
def test_gather_matches_official_order(all_masked):
    feats, target, mask = make_batch()
    if all_masked:
        mask = torch.ones_like(mask)
        target = torch.randint(0, K, (N, L))
    gathered = make_head(gather_masked=True)
    official = make_head(gather_masked=False)
    official.load_state_dict(copy.deepcopy(gathered.state_dict()))
    results = []
    for head in (gathered, official):
        x = feats.clone().requires_grad_(True)
        out = head.loss(x, target, mask, 'video')
        out['loss_video'].backward()
        results.append((out, x.grad, head.fc.weight.grad, head.fc.bias.grad))
    (out_a, *grads_a), (out_b, *grads_b) = results
    torch.testing.assert_close(
        out_a['loss_video'], out_b['loss_video'], atol=1e-6, rtol=0)
    torch.testing.assert_close(out_a['acc_video'], out_b['acc_video'])
    for grad_a, grad_b in zip(grads_a, grads_b):
        assert grad_a is not None and grad_a.abs().sum() > 0
        torch.testing.assert_close(grad_a, grad_b, atol=1e-6, rtol=0)


@pytest.mark.parametrize('gather_masked', [True, False])
def test_empty_mask_gives_zero_loss_with_graph(gather_masked):
    head = make_head(gather_masked=gather_masked)
    feats, target, mask = make_batch()
    feats.requires_grad_(True)
    out = head.loss(feats, target, torch.zeros_like(mask), 'img')
    loss, acc = out['loss_img'], out['acc_img']
    assert torch.isfinite(loss) and loss.item() == 0.
    assert loss.requires_grad
    assert acc.item() == 0. and acc.dtype == torch.float32
    loss.backward()
    for grad in (feats.grad, head.fc.weight.grad, head.fc.bias.grad):
        assert grad is not None and torch.isfinite(grad).all()


@pytest.mark.parametrize('gather_masked', [True, False])
def test_invalid_masked_target_raises(gather_masked):
    head = make_head(gather_masked=gather_masked)
    feats, target, mask = make_batch()
    bad = target.clone()
    bad[0, 0] = -1  # masked position the tokenizer skipped
    with pytest.raises(ValueError, match='-1'):
        head.loss(feats, bad, mask, 'video')
    bad[0, 0] = K  # outside the vocabulary
    with pytest.raises(ValueError, match=str(K)):
        head.loss(feats, bad, mask, 'video')
    with pytest.raises(TypeError, match='float'):
        head.loss(feats, target.float(), mask, 'video')


def test_accuracy_on_constructed_example():
    head = BEVTMIMHead(in_channels=K, num_classes=K)
    with torch.no_grad():
        head.fc.weight.copy_(torch.eye(K))
        head.fc.bias.zero_()
    pred = torch.tensor([[3, 5, 7, 9]])  # the argmax of each token
    feats = F.one_hot(pred, K).float()  # (1, 4, K)
    mask = torch.tensor([[True, True, True, False]])
    # 2 of the 3 masked tokens are right; the unmasked one is wrong and
    # must not count
    target = torch.tensor([[3, 5, 0, 1]])
    out = head.loss(feats, target, mask, 'video')
    torch.testing.assert_close(out['acc_video'], torch.tensor(2 / 3))
    assert torch.equal(head.predict(feats), pred)


def test_shape_errors_name_the_shapes():
    head = make_head()
    feats, target, mask = make_batch()
    with pytest.raises(ValueError, match=r'feats \(2, 48\)'):
        head.loss(feats.flatten(1), target, mask, 'video')
    with pytest.raises(ValueError, match=r'feats \(2, 6, 4\)'):
        head.loss(feats[..., :4], target, mask, 'video')
    with pytest.raises(ValueError, match=r'target \(2, 5\)'):
        head.loss(feats, target[:, :5], mask, 'video')
    with pytest.raises(ValueError, match=r'mask \(2, 2, 3\)'):
        head.loss(feats, target, mask.view(2, 2, 3), 'video')
    with pytest.raises(ValueError, match=r'\(12, 8\)'):
        head.predict(feats.flatten(0, 1))


def test_predict_and_forward_shapes():
    head = make_head()
    feats, _, _ = make_batch()
    logits = head(feats)
    assert logits.shape == (N, L, K)
    ids = head.predict(feats)
    assert ids.shape == (N, L) and ids.dtype == torch.long
    assert torch.equal(ids, logits.argmax(-1))


def test_build_from_registry_and_init():
    head = MODELS.build(
        dict(type='BEVTMIMHead', in_channels=64, num_classes=1024))
    assert isinstance(head, BEVTMIMHead)
    assert head.loss_weights == dict(video=1.0, img=1.0)
    head.init_weights()
    assert torch.all(head.fc.bias == 0)
    assert 0.015 < head.fc.weight.std().item() < 0.025
    head = MODELS.build(
        dict(type='BEVTRegressionHead', in_channels=8, target_dims=4))
    assert isinstance(head, BEVTRegressionHead)


def test_regression_head_mse():
    torch.manual_seed(0)
    head = BEVTRegressionHead(
        in_channels=C, target_dims=5, loss_weights=dict(video=3.0, img=1.))
    feats, _, mask = make_batch()
    target = torch.randn(N, L, 5)
    target[~mask] = float('nan')  # unmasked targets must not be read
    out = head.loss(feats, target, mask, 'video')
    assert set(out) == {'loss_video'}
    pred = feats[mask] @ head.fc.weight.t() + head.fc.bias
    expected = ((pred - target[mask])**2).mean() * 3.0
    torch.testing.assert_close(out['loss_video'], expected)
    # empty mask: zero loss that still back-propagates
    feats.requires_grad_(True)
    loss = head.loss(feats, target, torch.zeros_like(mask), 'img')['loss_img']
    assert loss.item() == 0.
    loss.backward()
    assert head.fc.weight.grad is not None and feats.grad is not None


def test_regression_head_errors():
    head = BEVTRegressionHead(in_channels=C, target_dims=5)
    feats, _, mask = make_batch()
    with pytest.raises(ValueError, match=r'\(2, 6, 4\)'):
        head.loss(feats, torch.randn(N, L, 4), mask, 'video')
    with pytest.raises(ValueError, match=r'\(N, L, 5\); got \(2, 6\)'):
        head.loss(feats, torch.randn(N, L), mask, 'video')
    with pytest.raises(ValueError, match='audio'):
        head.loss(feats, torch.randn(N, L, 5), mask, 'audio')
