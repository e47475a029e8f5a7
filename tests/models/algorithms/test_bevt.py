# Copyright (c) bevt contributors. All rights reserved.
import copy

import pytest
import torch
from mmaction.structures import ActionDataSample
from mmengine.optim import OptimWrapper

import bevt.models  # noqa: F401  (registers the parts)
from bevt.registry import MODELS
from bevt.testing import DEVICES, exact_float32

TINY = dict(embed_dims=16, depths=[1, 1, 2, 1], num_heads=[1, 2, 2, 4])
VOCAB = 64
#: The official code's way: every cell tokenized in float32, one backbone
#: call per stream, the vocabulary projection of every token
OFFICIAL = dict(
    tokenize_all_frames=True,
    head=dict(gather_masked=False),
    target_generator=dict(dtype=None, channels_last=False))


def tiny_bevt(**kwargs):
    cfg = dict(
        type='BEVT',
        backbone=dict(
            type='BEVTSwinTransformer3D',
            arch=TINY,
            window_size=(4, 4, 4),
            drop_path_rate=0.),
        head=dict(type='BEVTMIMHead', in_channels=128, num_classes=VOCAB),
        target_generator=dict(
            type='BEVTDALLETokenizer',
            encoder=dict(n_hid=16, n_blk_per_group=1, vocab_size=VOCAB)),
        data_preprocessor=dict(
            type='BEVTDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375]))
    for key, value in kwargs.items():
        if isinstance(value, dict) and 'type' not in value and key in cfg:
            cfg[key].update(value)  # override some fields
        else:
            cfg[key] = value  # replace the part
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def raw_batch(video: bool, n: int = 2, seed: int = 0):
    """One stream's collated batch as the pack transform writes it."""
    g = torch.Generator().manual_seed(seed)
    imgs, views, samples = [], [], []
    for _ in range(n):
        sample = ActionDataSample()
        if video:  # 4 frames of 64 px: token grid 2 x 4 x 4, targets 4x4x4
            imgs.append(torch.randint(0, 256, (3, 4, 64, 64), generator=g))
            views.append(torch.randint(0, 256, (3, 4, 32, 32), generator=g))
            slots = torch.rand(2, 1, 1, generator=g) > 0.3
            spatial = torch.rand(1, 4, 4, generator=g) > 0.5
            sample.input_mask = slots & spatial
            sample.target_mask = sample.input_mask.repeat_interleave(2, 0)
        else:
            imgs.append(torch.randint(0, 256, (3, 64, 64), generator=g))
            views.append(torch.randint(0, 256, (3, 32, 32), generator=g))
            sample.input_mask = torch.rand(4, 4, generator=g) > 0.5
            sample.target_mask = sample.input_mask.clone()
        samples.append(sample)
    return dict(
        inputs=dict(
            imgs=[i.to(torch.uint8) for i in imgs],
            tokenizer_imgs=[v.to(torch.uint8) for v in views]),
        data_samples=samples)


def two_stream_batches():
    return (raw_batch(video=True), raw_batch(video=False, n=3, seed=1))


def test_two_stream_losses_and_every_parameter_gets_a_gradient():
    model = tiny_bevt().train()
    tokenizer_before = {
        name: param.detach().clone()
        for name, param in model.target_generator.named_parameters()
    }
    data = model.data_preprocessor(two_stream_batches(), True)
    losses = model(*data, mode='loss')
    assert set(losses) == {'loss_video', 'acc_video', 'loss_img', 'acc_img'}
    loss, log_vars = model.parse_losses(losses)
    torch.testing.assert_close(loss, losses['loss_video'] + losses['loss_img'])
    loss.backward()
    for name, param in model.named_parameters():
        if name.startswith('target_generator.'):
            assert not param.requires_grad and param.grad is None, name
            continue
        assert param.requires_grad, name
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    assert model.target_generator.training is False
    for name, param in model.target_generator.named_parameters():
        torch.testing.assert_close(param, tokenizer_before[name])


def test_train_step_updates_model_but_not_tokenizer():
    model = tiny_bevt()
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    tokenizer = copy.deepcopy(model.target_generator)
    head = model.head.fc.weight.detach().clone()
    log = model.train_step(two_stream_batches(), optim)
    assert {'loss', 'loss_video', 'loss_img', 'acc_video',
            'acc_img'} <= set(log)
    assert not torch.equal(head, model.head.fc.weight)
    for (name, a), b in zip(model.target_generator.named_parameters(),
                            tokenizer.parameters()):
        assert torch.equal(a, b), name
    assert model.target_generator.training is False


def test_tokenizer_weights_stay_out_of_state_dict():
    model = tiny_bevt()
    keys = list(model.state_dict())
    assert not [k for k in keys if k.startswith('target_generator.')]
    assert any(k.startswith('backbone.') for k in keys)
    assert any(k.startswith('head.') for k in keys)
    tiny_bevt().load_state_dict(model.state_dict(), strict=True)


def test_tiny_model_overfits_one_batch():
    model = tiny_bevt(backbone=dict(arch=TINY)).train()
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=2e-3))
    batches = two_stream_batches()
    losses = [
        model.train_step(batches, optim)['loss'].item() for _ in range(50)
    ]
    assert losses[-1] < 0.5 * losses[0], losses


def test_single_stream_and_frame_skipping_keeps_the_loss():
    model = tiny_bevt()
    video = model.data_preprocessor(raw_batch(video=True), True)
    # one frame pair without masked tokens: its frames are not tokenized
    video['inputs']['input_mask'][0, 1] = False
    video['inputs']['target_mask'][0, 2:] = False
    skipped = model(**video, mode='loss')
    assert set(skipped) == {'loss_video', 'acc_video'}
    model.tokenize_all_frames = True
    full = model(**video, mode='loss')
    torch.testing.assert_close(skipped['loss_video'], full['loss_video'])
    target = model.targets(video['inputs'])
    assert (target.view(2, 4, 16)[0, 2:] >= 0).all()
    model.tokenize_all_frames = False
    target = model.targets(video['inputs'])
    assert (target.view(2, 4, 16)[0, 2:] == -1).all()


def _loss_and_grads(model, batches, seed=3):
    data = model.data_preprocessor(batches, True)
    torch.manual_seed(seed)
    losses = model(*data, mode='loss')
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    return losses, {
        k: p.grad
        for k, p in model.named_parameters() if p.grad is not None
    }


def test_drop_path_trains_both_streams():
    drop = tiny_bevt(backbone=dict(drop_path_rate=0.3)).train()
    losses, grads = _loss_and_grads(drop, two_stream_batches())
    assert set(losses) == {'loss_video', 'acc_video', 'loss_img', 'acc_img'}
    assert all(torch.isfinite(v).all() for v in losses.values())
    assert 'backbone.layers.0.blocks.0.attn.qkv.weight' in grads
    with pytest.raises(TypeError, match='tokenize_all_frames'):
        tiny_bevt(tokenize_all_frames=1)


def test_tensor_and_predict_modes():
    model = tiny_bevt().eval()
    video, image = model.data_preprocessor(two_stream_batches(), False)
    feats = model(video, image, mode='tensor')
    assert feats[0].shape == (2, 4 * 16, 128)
    assert feats[1].shape == (3, 16, 128)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 16, 128)
    samples = model(video, image, mode='predict')
    assert len(samples) == 5
    assert samples[0].pred_tokens.shape == (64, )
    assert samples[0].target_tokens.shape == (64, )
    assert (samples[0].target_tokens >= 0).all()  # every frame tokenized
    with pytest.raises(RuntimeError, match='Invalid mode'):
        model(video, mode='bad')


def test_build_errors_name_the_field():
    with pytest.raises(ValueError, match='head.num_classes'):
        tiny_bevt(head=dict(num_classes=VOCAB + 1))
    with pytest.raises(ValueError, match='head.in_channels'):
        tiny_bevt(head=dict(in_channels=64))
    model = tiny_bevt()
    data = model.data_preprocessor(raw_batch(video=False), True)
    data['inputs']['tokenizer_imgs'] = data['inputs']['tokenizer_imgs'][
        ..., :16, :16]
    with pytest.raises(ValueError, match='tokenizer view'):
        model(**data, mode='loss')


def test_hog_regression_variant_trains_both_streams():
    """MaskFeat-style HOG targets need no downloaded weights."""
    model = tiny_bevt(
        head=dict(type='BEVTRegressionHead', in_channels=128, target_dims=108),
        target_generator=dict(type='BEVTHOGTargets'))
    batches = two_stream_batches()
    for batch in batches:  # HOG reads the model-size view: 64 px
        batch['inputs']['tokenizer_imgs'] = batch['inputs']['imgs']
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    log = model.train_step(batches, optim)
    assert {'loss_video', 'loss_img'} <= set(log)
    assert torch.isfinite(log['loss'])
    with pytest.raises(ValueError, match='does not fit the targets'):
        tiny_bevt(target_generator=dict(type='BEVTHOGTargets'))
    # predict gives the regressed features next to the HOG targets
    video, image = model.data_preprocessor(batches, False)
    samples = model.eval()(video, image, mode='predict')
    assert samples[0].pred_features.shape == (64, 108)
    assert samples[0].target_features.shape == (64, 108)
    assert samples[-1].pred_features.shape == (16, 108)
    feats = model.extract_feat(image['inputs'])
    torch.testing.assert_close(samples[-1].pred_features,
                               model.head.fc(feats)[-1])
    every_cell = model.targets(image['inputs'], all_frames=True)
    torch.testing.assert_close(samples[-1].target_features, every_cell[-1])
    # the loss path computes the masked cells only, the same values there
    masked = image['inputs']['target_mask'].flatten(1)
    needed = model.targets(image['inputs'])
    torch.testing.assert_close(needed[masked], every_cell[masked])
    assert (needed[~masked] == 0).all()


def test_two_stream_step_under_bf16_autocast():
    """The AMP path (AmpOptimWrapper's autocast) on the CPU: masks, mask
    token and attention bias follow the autocast dtype."""
    model = tiny_bevt().train()
    data = model.data_preprocessor(two_stream_batches(), True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model(*data, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(model.backbone.mask_token.grad).all()


@pytest.mark.parametrize('options', [dict(backend='aot_eager')])
def test_compiled_backbone_gives_the_same_step(options):
    """``compile_backbone`` compiles in place (same weights and keys) and
    gives the losses and gradients of the eager backbone."""
    eager = tiny_bevt()
    compiled = tiny_bevt(compile_backbone=options)
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    compiled.load_state_dict(eager.state_dict())
    losses = []
    for model in (eager, compiled):
        data = model.data_preprocessor(two_stream_batches(), True)
        loss = model(*data, mode='loss')
        sum(v for k, v in loss.items() if k.startswith('loss')).backward()
        losses.append(loss)
    for key in ('loss_video', 'loss_img'):
        torch.testing.assert_close(losses[1][key], losses[0][key])
    grads = dict(compiled.backbone.named_parameters())
    for name, param in eager.backbone.named_parameters():
        if param.grad is not None:
            torch.testing.assert_close(
                grads[name].grad, param.grad, rtol=1e-4, atol=1e-6)
    with pytest.raises(TypeError, match='compile_backbone'):
        tiny_bevt(compile_backbone='yes')


def check_default_step_equals_official_on(device: torch.device) -> None:
    """A joint step on ``device`` (both streams, losses and backbone
    gradients) with the default settings (skipped frames and cells, gathered
    vocabulary projection) equals the official
    way's in float32; with the configs' tokenizer settings and bfloat16
    autocast, as a config trains on CUDA, the losses stay within 5 %."""
    default = tiny_bevt(target_generator=dict(dtype=None)).to(device)
    official = tiny_bevt(**copy.deepcopy(OFFICIAL)).to(device)
    official.load_state_dict(default.state_dict())
    losses = []
    with exact_float32():
        for model in (default, official):
            data = model.data_preprocessor(two_stream_batches(), True)
            losses.append(model(*data, mode='loss'))
            model.parse_losses(losses[-1])[0].backward()
    for key in ('loss_video', 'loss_img'):
        torch.testing.assert_close(
            losses[0][key], losses[1][key], atol=1e-5, rtol=1e-5)
    grads = dict(official.backbone.named_parameters())
    for name, param in default.backbone.named_parameters():
        if param.grad is not None:
            ref = grads[name].grad
            torch.testing.assert_close(
                param.grad, ref, atol=1e-3 * ref.abs().max().item(), rtol=0)
    model = tiny_bevt(
        target_generator=dict(dtype='auto', channels_last=True)).to(device)
    model.load_state_dict(default.state_dict())
    data = model.data_preprocessor(two_stream_batches(), True)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        half = model(*data, mode='loss')
    loss = model.parse_losses(half)[0]
    loss.backward()
    assert torch.isfinite(loss)
    for key in ('loss_video', 'loss_img'):
        reference = losses[1][key].item()
        assert abs(half[key].item() - reference) < 0.05 * reference, key


@pytest.mark.parametrize('device', DEVICES)
def test_default_step_equals_official_on_device(device):
    check_default_step_equals_official_on(torch.device(device))
