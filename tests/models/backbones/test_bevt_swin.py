# Copyright (c) bevt contributors. All rights reserved.
import copy

import pytest
import torch
from mmaction.models.backbones import SwinTransformer3D

from bevt.models.backbones import BEVTSwinTransformer3D
from bevt.registry import MODELS
from bevt.testing import (DEVICES, assert_grads_close, exact_float32,
                          relative_error)

TINY = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4])


def tiny_backbone(**kwargs) -> BEVTSwinTransformer3D:
    cfg = dict(arch=TINY, window_size=(4, 4, 4), drop_path_rate=0.)
    cfg.update(kwargs)
    torch.manual_seed(0)
    model = BEVTSwinTransformer3D(**cfg)
    model.init_weights()
    # random (not zero) relative-position tables, so that they matter
    for name, param in model.named_parameters():
        if 'relative_position_bias_table' in name:
            torch.nn.init.normal_(param, std=0.5)
    return model.eval()


@pytest.mark.parametrize('frames,size', [(8, 64), (4, 64), (8, 80), (2, 32)])
def test_video_stream_shapes(frames, size):
    model = tiny_backbone()
    grid = (frames // 2, size // 16, size // 16)
    mask = torch.rand(2, *grid) > 0.5
    out = model(torch.randn(2, 3, frames, size, size), mask)
    # time upsampled back to T; (t, h, w) order
    assert out.shape == (2, frames * (size // 16)**2, 128)


@pytest.mark.parametrize('size', [64, 80, 32, 96])
def test_image_stream_shapes(size):
    model = tiny_backbone()
    mask = torch.rand(3, size // 16, size // 16) > 0.5
    out = model(torch.randn(3, 3, size, size), mask)
    assert out.shape == (3, (size // 16)**2, 128)
    assert model(torch.randn(3, 3, size, size)).shape == out.shape


def test_registered_and_swin_base_shapes():
    model = MODELS.build(
        dict(type='BEVTSwinTransformer3D', arch='base', window_size=(8, 7, 7)))
    assert model.out_channels == 1024
    assert model.mask_token.shape == (1, 1, 128)
    assert model.video_decoder.upsample_temporal.weight.shape == (1024, 1024,
                                                                  2, 1, 1)
    assert model.image_decoder.reduce.in_features == 512 + 1024


def test_mask_polarity_masked_patch_is_mask_token():
    model = tiny_backbone()
    with torch.no_grad():
        model.mask_token.normal_()
    x = torch.randn(2, 3, 4, 64, 64)
    mask = torch.zeros(2, 2, 4, 4, dtype=torch.bool)
    mask[0, 1, 2, 3] = True  # one token of the stride-16 grid
    patches = model.patch_embed(x).permute(0, 2, 3, 4, 1)
    blended = model._embed(x, mask)
    # the token covers 4x4 patches of the stride-4 grid
    torch.testing.assert_close(blended[0, 1, 8:12, 12:16],
                               model.mask_token[0, 0].expand(4, 4, 16))
    keep = torch.ones_like(blended[..., 0], dtype=torch.bool)
    keep[0, 1, 8:12, 12:16] = False
    torch.testing.assert_close(blended[keep], patches[keep])


def test_fully_masked_input_does_not_reach_output():
    model = tiny_backbone()
    for shape, grid in (((2, 3, 4, 64, 64), (2, 2, 4, 4)), ((2, 3, 64, 64),
                                                            (2, 4, 4))):
        everything = torch.ones(grid, dtype=torch.bool)
        a = model(torch.randn(shape), everything)
        b = model(torch.randn(shape), everything)
        torch.testing.assert_close(a, b)
        nothing = torch.zeros(grid, dtype=torch.bool)
        x = torch.randn(shape)
        torch.testing.assert_close(model(x, nothing), model(x))
        assert not torch.allclose(model(x, everything), model(x))


def test_bad_inputs_raise_clear_errors():
    model = tiny_backbone()
    with pytest.raises(ValueError, match='not divisible by patch'):
        model(torch.randn(1, 3, 4, 60, 64))
    with pytest.raises(ValueError, match='temporal patch'):
        model(torch.randn(1, 3, 3, 64, 64))
    with pytest.raises(ValueError, match='input_mask has shape'):
        model(torch.randn(1, 3, 4, 64, 64), torch.zeros(1, 4, 4, 4).bool())
    with pytest.raises(ValueError, match='input_mask has shape'):
        model(torch.randn(1, 3, 64, 64), torch.zeros(1, 8, 8).bool())
    with pytest.raises(ValueError, match='clips'):
        model(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match='two stages'):
        BEVTSwinTransformer3D(
            arch=dict(embed_dims=16, depths=[2], num_heads=[1]))
    with pytest.raises(TypeError, match='out_indices'):
        BEVTSwinTransformer3D(arch=TINY, out_indices=(2, ))


def _output_and_grads(model, x, mask):
    """Output of a train-mode step and every parameter gradient."""
    model.zero_grad(set_to_none=True)
    out = model(x, mask)
    out.pow(2).sum().backward()
    return out.detach(), {
        name: param.grad.clone()
        for name, param in model.named_parameters() if param.grad is not None
    }


@pytest.mark.parametrize('shape', [(2, 3, 8, 64, 64), (2, 3, 4, 80, 80),
                                   (2, 3, 64, 64), (2, 3, 80, 80),
                                   (1, 3, 8, 64, 64)])
def test_attention_formulas_equal_reference(shape):
    """sdpa and eager equal mmaction2's WindowAttention3D.forward
    ('reference'), outputs and gradients (sdpa: the bias broadcast over the
    windows as they come, with one sample or no mask, and the (B, nW*nH)
    layout otherwise)."""
    model = tiny_backbone().train()
    B = shape[0]
    grid = (B, shape[2] // 2, shape[-1] // 16, shape[-1] // 16) \
        if len(shape) == 5 else (B, shape[-1] // 16, shape[-1] // 16)
    x, mask = torch.randn(shape), torch.rand(grid) > 0.5
    model.attention = 'reference'
    ref_out, ref_grads = _output_and_grads(model, x, mask)
    assert any('relative_position_bias_table' in name for name in ref_grads)
    for kind in ('sdpa', 'eager'):
        model.attention = kind
        out, grads = _output_and_grads(model, x, mask)
        torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
        assert_grads_close(grads, ref_grads, 2e-4)
    eager_out = out
    model.attention = 'auto'  # eager on CPU
    assert model.attention_kind(torch.device('cpu')) == 'eager'
    assert model.attention_kind(torch.device('cuda')) == 'sdpa'
    torch.testing.assert_close(
        _output_and_grads(model, x, mask)[0], eager_out, atol=0, rtol=0)
    with pytest.raises(ValueError, match='attention'):
        tiny_backbone(attention='yes')


@pytest.mark.parametrize('kind', ['eager', 'sdpa'])
@pytest.mark.parametrize('masked', [True, False])
def test_window_attention_equals_mmaction(kind, masked):
    """Each formula gives mmaction2's output and gradients, with and without
    the shift mask (two samples of six windows each)."""
    from mmaction.models.backbones.swin import WindowAttention3D

    from bevt.models.backbones import bevt_swin

    torch.manual_seed(0)
    attn = WindowAttention3D(16, (2, 2, 2), num_heads=2).train()
    torch.nn.init.normal_(attn.relative_position_bias_table)
    x = torch.randn(2 * 6, 8, 16, requires_grad=True)  # B=2, nW=6, N=8
    mask = torch.where(torch.rand(6, 8, 8) < 0.3, -100., 0.) \
        if masked else None

    def run(fn):
        attn.zero_grad(set_to_none=True)
        x.grad = None
        out = fn()
        out.pow(2).sum().backward()
        return [out.detach(), x.grad] + [p.grad for p in attn.parameters()]

    expected = run(lambda: attn(x, mask=mask))
    got_all = run(lambda: bevt_swin.window_attention(attn, x, mask, kind))
    for got, ref in zip(got_all, expected):
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('image', [True, False])
def test_shift_mask_gives_exact_zero_weights(monkeypatch, image):
    """The eager and SDPA formulas get the shift mask with -inf where
    mmaction2's has -100 (its softmax weights e^-100 are denormal floats,
    slow on CPUs), so masked pairs weigh exactly 0; 'reference' keeps
    mmaction2's mask. Outputs are equal (test above)."""
    from mmaction.models.backbones.swin import compute_mask

    from bevt.models.backbones import bevt_swin

    masks = []
    window_attention = bevt_swin.window_attention

    def spy(attn, x, mask, kind='eager'):
        if mask is not None:
            masks.append((kind, mask))
        return window_attention(attn, x, mask, kind)

    monkeypatch.setattr(bevt_swin, 'window_attention', spy)
    x = torch.randn(1, 3, 64, 64) if image else torch.randn(1, 3, 8, 64, 64)
    for attention in ('eager', 'reference'):
        tiny_backbone(attention=attention)(x)
    kinds = {kind for kind, _ in masks}
    assert kinds == {'eager', 'reference'}
    for kind, mask in masks:
        masked = mask != 0
        assert masked.any()
        value = float('-inf') if kind == 'eager' else -100.
        assert (mask[masked] == value).all()
    size, window, shift = (2, 8, 8), (2, 4, 4), (1, 2, 2)
    exact = bevt_swin.shift_mask(size, window, shift, torch.device('cpu'))
    expected = compute_mask(*size, window, shift, torch.device('cpu'))
    assert torch.equal(torch.isinf(exact), expected == -100.)
    scores = torch.randn(expected.shape) + exact
    assert not (scores.softmax(-1)[expected != 0] != 0).any()


def test_relative_position_bias_equals_mmaction_indexing():
    from mmaction.models.backbones.swin import WindowAttention3D

    from bevt.models.backbones.bevt_swin import relative_position_bias

    torch.manual_seed(0)
    attn = WindowAttention3D(24, (2, 3, 3), num_heads=3)
    torch.nn.init.normal_(attn.relative_position_bias_table)
    for N in (18, 9):  # full window, and a clamped one (first N positions)
        index = attn.relative_position_index[:N, :N].reshape(-1)
        expected = attn.relative_position_bias_table[index].view(N, N,
                                                                 3).permute(
                                                                     2, 0, 1)
        bias = relative_position_bias(attn, N)
        assert bias.shape == (3, N, N)
        assert torch.equal(bias, expected)
        weights = torch.randn(3, N, N)
        grad, = torch.autograd.grad((bias * weights).sum(),
                                    attn.relative_position_bias_table)
        ref, = torch.autograd.grad((expected * weights).sum(),
                                   attn.relative_position_bias_table)
        torch.testing.assert_close(grad, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('size', [64, 80])
def test_video_stages_equal_mmaction_swin3d(size):
    """Our block driver gives mmaction2's SwinTransformer3D features."""
    model = tiny_backbone()
    reference = SwinTransformer3D(
        arch=TINY,
        pretrained2d=False,
        window_size=(4, 4, 4),
        drop_path_rate=0.,
        out_indices=(3, ))
    reference.eval()  # mmaction2's train() returns None
    missing, _ = reference.load_state_dict(model.state_dict(), strict=False)
    assert missing == []
    x = torch.randn(2, 3, 8, size, size)
    expected = reference(x)  # (B, C, T', H', W') after norm3
    x_ours = model.patch_embed(x).permute(0, 2, 3, 4, 1)
    for layer in model.layers:
        x_ours = model._run_stage(layer, x_ours, image=False)
        if layer.downsample is not None:
            x_ours = layer.downsample(x_ours)
    ours = model.norm3(x_ours).permute(0, 4, 1, 2, 3)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
    # the public path (the kNN monitor's features): (B, T'*H'*W', C)
    torch.testing.assert_close(
        model.forward_encoder(x),
        expected.flatten(2).transpose(1, 2),
        atol=1e-5,
        rtol=1e-5)


def _explicit_2d_stage(layer, x, official):
    """An independent 2D Swin stage over (B, H, W, C) for the image path.

    Window w x w, shift w // 2 in odd blocks; a map smaller than the window
    is one window with no shift; so is a map equal to it, except in the
    official mode (quirk B). The relative-position bias is the dt = 0 slice
    of the 3D table; the official mode also masks un-shifted blocks with
    the shifted-window mask (quirk A).
    """
    wd, w, _ = layer.window_size
    B, H, W, C = x.shape
    s = w // 2
    if H < w or (H == w and not official):
        w, s = H, 0
    labels = torch.zeros(H, W)
    cuts = (slice(0, -w), slice(-w, -s), slice(-s, None)) if s else \
        (slice(0, None), )
    count = 0
    for hs in cuts:
        for ws in cuts:
            labels[hs, ws] = count
            count += 1
    win = labels.view(H // w, w, W // w, w).permute(0, 2, 1,
                                                    3).reshape(-1, w * w)
    shift_mask = (win[:, None, :] != win[:, :, None]).float() * -100.
    ys, xs = torch.meshgrid(torch.arange(w), torch.arange(w), indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + layer.window_size[1] - 1
    dx = xs[:, None] - xs[None, :] + layer.window_size[2] - 1
    sh, sw = 2 * layer.window_size[1] - 1, 2 * layer.window_size[2] - 1
    index = (wd - 1) * sh * sw + dy * sw + dx  # the dt = 0 slice
    for i, block in enumerate(layer.blocks):
        shift = s if i % 2 else 0
        attn = block.attn
        heads = attn.num_heads
        bias = attn.relative_position_bias_table[index].permute(2, 0, 1)
        h = block.norm1(x)
        h = torch.roll(h, (-shift, -shift), (1, 2))
        h = h.view(B, H // w, w, W // w, w, C).permute(0, 1, 3, 2, 4, 5)
        h = h.reshape(B, -1, w * w, C)  # (B, nW, N, C)
        q, k, v = attn.qkv(h).view(B, -1, w * w, 3, heads,
                                   C // heads).permute(3, 0, 1, 4, 2, 5)
        logits = (q * attn.scale) @ k.transpose(-1, -2) + bias
        if s and (shift or official):
            logits = logits + shift_mask[None, :, None]
        h = (logits.softmax(-1) @ v).transpose(2, 3).reshape(B, -1, w * w, C)
        h = attn.proj(h).view(B, H // w, W // w, w, w, C)
        h = h.permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, C)
        x = x + torch.roll(h, (shift, shift), (1, 2))
        x = x + block.mlp(block.norm2(x))
    return x


@pytest.mark.parametrize('official', [True, False])
@pytest.mark.parametrize('attention', ['sdpa', 'eager', 'reference'])
def test_image_path_equals_explicit_2d_swin(official, attention):
    model = tiny_backbone(official_image_path=official, attention=attention)
    # stage 0: 16x16 maps (shifted windows); stage 2: 4x4 = the window
    for stage, side in ((0, 16), (2, 4)):
        layer = model.layers[stage]
        x = torch.randn(2, side, side, layer.embed_dims)
        ours = model._run_stage(layer, x.unsqueeze(1), image=True)[:, 0]
        expected = _explicit_2d_stage(layer, x, official)
        torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_official_image_quirks_change_the_output():
    official = tiny_backbone(official_image_path=True)
    standard = tiny_backbone(official_image_path=False)
    x = torch.randn(2, 3, 64, 64)
    assert not torch.allclose(official(x), standard(x), atol=1e-4)
    clip = torch.randn(1, 3, 4, 64, 64)  # the video path has no quirks
    torch.testing.assert_close(official(clip), standard(clip))


def test_with_cp_on_both_streams():
    model = tiny_backbone().train()
    ref = copy.deepcopy(model)
    model.with_cp = True
    for shape, grid in (((2, 3, 4, 64, 64), (2, 2, 4, 4)), ((2, 3, 64, 64),
                                                            (2, 4, 4))):
        x, mask = torch.randn(shape), torch.rand(grid) > 0.5
        model.zero_grad()
        ref.zero_grad()
        model(x, mask).square().mean().backward()
        ref(x, mask).square().mean().backward()
        for (name, a), b in zip(model.named_parameters(), ref.parameters()):
            if b.grad is None:
                assert a.grad is None, name
                continue
            torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_gradients_have_their_parameters_layout():
    """DDP's reducer copies a gradient whose strides differ from its
    parameter's into the bucket (and warns "Grad strides do not match
    bucket view strides"): every gradient of a two-stream step must have
    its parameter's strides (one-head tables (T, 1) included)."""
    model = tiny_backbone(drop_path_rate=0.1).train()
    assert model.layers[0].blocks[0].attn.num_heads == 1
    clips, images = torch.randn(2, 3, 4, 64, 64), torch.randn(2, 3, 64, 64)
    masks = [torch.rand(2, 2, 4, 4) > 0.5, torch.rand(2, 4, 4) > 0.5]
    video, image = (model(x, m) for x, m in zip((clips, images), masks))
    (video.square().mean() + image.square().mean()).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert param.grad.stride() == param.stride(), name


def test_random_init_works_without_checkpoint():
    model = BEVTSwinTransformer3D(arch=TINY, window_size=(4, 4, 4))
    model.init_weights()  # mmaction2's pretrained2d=True default crashes
    assert model.mask_token.abs().sum() > 0
    assert model.mask_token.std() < 0.05


def test_inflate_stage1_image_checkpoint(tmp_path):
    src = tiny_backbone()
    # a 2D checkpoint in the layout of an official (image) Swin: 2D patch
    # kernel, (2Wh-1)(2Ww-1)-row tables, final `norm`, `module.` prefix
    state = {}
    for key, value in src.state_dict().items():
        if key.startswith(('video_decoder', 'patch_embed_2d')):
            continue
        if key.endswith('relative_position_bias_table'):
            value = value[3 * 49:4 * 49]  # dt = 0 slice of 7 x 49 rows
        if key == 'patch_embed.proj.weight':
            value = value.sum(2)  # (C, 3, 4, 4)
        key = key.replace('norm3.', 'norm.').replace('image_decoder.reduce',
                                                     'lm_down')
        state[f'module.encoder.{key}'] = value.clone()
    state['module.encoder.fc_norm.weight'] = state.pop(
        'module.encoder.norm.weight')
    state['module.encoder.fc_norm.bias'] = state.pop(
        'module.encoder.norm.bias')
    path = str(tmp_path / 'stage1.pth')
    torch.save(dict(model=state), path)

    model = BEVTSwinTransformer3D(
        arch=TINY, window_size=(4, 4, 4), pretrained=path)
    model.init_weights()
    kernel = state['module.encoder.patch_embed.proj.weight']
    torch.testing.assert_close(model.patch_embed_2d.proj.weight, kernel)
    torch.testing.assert_close(model.patch_embed.proj.weight,
                               kernel.unsqueeze(2).repeat(1, 1, 2, 1, 1) / 2)
    # a static clip gives the 2D response
    image = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(
        model.patch_embed.proj(image.unsqueeze(2).repeat(1, 1, 2, 1, 1))[:, :,
                                                                         0],
        model.patch_embed_2d.proj(image),
        atol=1e-5,
        rtol=1e-5)
    table = model.layers[2].blocks[1].attn.relative_position_bias_table
    table_2d = state['module.encoder.layers.2.blocks.1.attn.'
                     'relative_position_bias_table']
    assert table.shape == (7 * 49, 2)
    for dt in range(7):  # every temporal offset starts as the 2D table
        torch.testing.assert_close(table[dt * 49:(dt + 1) * 49], table_2d)
    torch.testing.assert_close(model.norm3.weight,
                               state['module.encoder.fc_norm.weight'])
    torch.testing.assert_close(model.image_decoder.reduce.weight,
                               state['module.encoder.lm_down.weight'])


def test_inflate_resizes_tables_and_refuses_wrong_shapes(tmp_path):
    src = tiny_backbone()
    state = {
        k: v
        for k, v in src.state_dict().items()
        if not k.endswith('relative_position_bias_table')
    }
    state['layers.0.blocks.0.attn.relative_position_bias_table'] = \
        torch.randn(25, 1)  # a 5x5 window table: resized to 7x7
    path = str(tmp_path / 'small_window.pth')
    torch.save(dict(state_dict=state), path)
    model = BEVTSwinTransformer3D(
        arch=TINY, window_size=(4, 4, 4), pretrained=path)
    model.init_weights()
    assert model.layers[0].blocks[0].attn.relative_position_bias_table.shape \
        == (343, 1)

    state['layers.0.blocks.0.mlp.fc1.weight'] = torch.randn(3, 3)
    torch.save(dict(state_dict=state), path)
    model = BEVTSwinTransformer3D(
        arch=TINY, window_size=(4, 4, 4), pretrained=path)
    with pytest.raises(ValueError, match='small_window.pth.*mlp.fc1'):
        model.init_weights()


def test_load_official_3d_checkpoint(tmp_path):
    src = tiny_backbone()
    renames = {
        'image_decoder.reduce.': 'lm_down.',
        'image_decoder.upsample_spatial.': 'fpn.0.',
        'video_decoder.reduce.': 'lm_down_st.0.',
        'video_decoder.upsample_spatial.': 'fpn_s.0.',
        'video_decoder.upsample_temporal.': 'fpn_t.0.',
        'norm3.': 'norm.'
    }
    official = {}
    for key, value in src.state_dict().items():
        for ours, theirs in renames.items():
            if key.startswith(ours):
                key = theirs + key[len(ours):]
        official[f'backbone.{key}'] = value
    official['cls_head.lm_head.weight'] = torch.randn(10, 128)
    path = str(tmp_path / 'official.pth')
    torch.save(dict(state_dict=official), path)
    model = BEVTSwinTransformer3D(
        arch=TINY, window_size=(4, 4, 4), pretrained=path, pretrained2d=False)
    model.init_weights()
    for key, value in src.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, msg=key)


def test_inflate_from_our_image_only_checkpoint(tmp_path):
    """bevt's stage 1 trains the image stream of this backbone: stage 2
    inflates its (trained) 2D embedding, not the untrained 3D one."""
    src = tiny_backbone()
    path = str(tmp_path / 'stage1_bevt.pth')
    torch.save(
        dict(state_dict={
            f'backbone.{k}': v
            for k, v in src.state_dict().items()
        }), path)
    model = BEVTSwinTransformer3D(
        arch=TINY, window_size=(4, 4, 4), pretrained=path)
    model.init_weights()
    kernel = src.patch_embed_2d.proj.weight
    torch.testing.assert_close(model.patch_embed_2d.proj.weight, kernel)
    torch.testing.assert_close(model.patch_embed.proj.weight,
                               kernel.unsqueeze(2).repeat(1, 1, 2, 1, 1) / 2)
    torch.testing.assert_close(
        model.layers[0].blocks[0].attn.relative_position_bias_table,
        src.layers[0].blocks[0].attn.relative_position_bias_table)


def check_attention_paths_on(device: torch.device) -> None:
    """'auto' and eager equal 'reference' on ``device`` in float32
    (outputs and gradients); under bfloat16 autocast 'auto' is no further
    from the float32 reference than 'reference' under the same autocast."""
    model = tiny_backbone().train().to(device)
    for shape in ((2, 3, 8, 64, 64), (2, 3, 64, 64)):
        grid = (2, ) + ((shape[2] // 2, ) if len(shape) == 5 else ()) \
            + (shape[-1] // 16, ) * 2
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(shape, generator=gen).to(device)
        mask = (torch.rand(grid, generator=gen) > 0.5).to(device)
        with exact_float32():
            model.attention = 'reference'
            ref_out, ref_grads = _output_and_grads(model, x, mask)
            for kind in ('auto', 'eager'):
                model.attention = kind
                out, grads = _output_and_grads(model, x, mask)
                torch.testing.assert_close(out, ref_out, atol=1e-4, rtol=1e-4)
                for name, ref in ref_grads.items():
                    torch.testing.assert_close(
                        grads[name],
                        ref,
                        atol=1e-3 * ref.abs().max().item(),
                        rtol=0,
                        msg=lambda text, name=name: f'{name}: {text}')
        errors = {}  # bfloat16 error of each path against float32
        with torch.autocast(device.type, dtype=torch.bfloat16):
            for kind in ('reference', 'auto'):
                model.attention = kind
                out, grads = _output_and_grads(model, x, mask)
                errors[kind] = [relative_error(out, ref_out)] + [
                    relative_error(grads[name], ref)
                    for name, ref in ref_grads.items()
                ]
        assert errors['reference'][0] < 3e-2
        for name, fused, ref in zip(['output'] + list(ref_grads),
                                    errors['auto'], errors['reference']):
            assert fused < 2 * ref + 2e-2, (name, fused, ref)


@pytest.mark.parametrize('device', DEVICES)
def test_attention_paths_on_device(device):
    """'auto' is the eager path on CPU and the fused one on CUDA."""
    kind = tiny_backbone().attention_kind(torch.device(device))
    assert kind == ('sdpa' if device == 'cuda' else 'eager')
    check_attention_paths_on(torch.device(device))


def test_compiled_backbone_equals_eager():
    """The backbone traces into full graphs (no graph break) for both
    streams and gives the eager outputs and gradients (``aot_eager``: the
    trace and autograd without code generation, to stay fast)."""
    import torch._dynamo

    model = tiny_backbone(drop_path_rate=0.).train()
    clips, images = torch.randn(2, 3, 4, 64, 64), torch.randn(2, 3, 64, 64)
    masks = [torch.rand(2, 2, 4, 4) > 0.5, torch.rand(2, 4, 4) > 0.5]
    expected = [
        _output_and_grads(model, x, m) for x, m in zip((clips, images), masks)
    ]
    torch._dynamo.reset()
    compiled = copy.deepcopy(model)
    compiled.compile(backend='aot_eager', dynamic=False, fullgraph=True)
    for (out, grads), x, m in zip(expected, (clips, images), masks):
        got, got_grads = _output_and_grads(compiled, x, m)
        torch.testing.assert_close(got, out, atol=1e-5, rtol=1e-5)
        assert_grads_close(got_grads, grads, 2e-4)
