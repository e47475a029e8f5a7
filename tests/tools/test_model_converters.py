# Copyright (c) bevt contributors. All rights reserved.
"""tools/model_converters/ on checkpoints of tiny random models."""
import importlib.util
import logging
import os
import os.path as osp
import subprocess
import sys
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F
from mmaction.models.backbones import SwinTransformer3D
from mmaction.registry import MODELS as MMACTION_MODELS
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint

import bevt.models  # noqa: F401  (registers the parts)
from bevt.models.target_generators import BEVTDALLETokenizer
from bevt.registry import MODELS
from bevt.testing import REPO_ROOT, fresh_env
from bevt.utils import checkpoint_convert as cc

CONVERTERS = osp.join(REPO_ROOT, 'tools', 'model_converters')
TINY = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4])
WINDOW = (4, 4, 4)
VOCAB = 64
DALLE = dict(n_hid=16, n_blk_per_group=1, vocab_size=VOCAB)
# bevt backbone names -> official SwinTransformerBEVT names (reference §2.6)
OFFICIAL_NAMES = {
    'image_decoder.reduce.': 'lm_down.',
    'image_decoder.upsample_spatial.': 'fpn.0.',
    'video_decoder.reduce.': 'lm_down_st.0.',
    'video_decoder.upsample_spatial.': 'fpn_s.0.',
    'video_decoder.upsample_temporal.': 'fpn_t.0.',
    'norm3.': 'norm.',
}
PRETRAIN_ONLY = ('patch_embed_2d.', 'mask_token', 'image_decoder.',
                 'video_decoder.')
# stands in for OpenAI's dall_e.encoder.Encoder: same parameter names
FAKE_DALLE_ENCODER = '''
from mmpretrain.models.selfsup.cae import DALLEEncoder


class Encoder(DALLEEncoder):
    """Pickled by reference as dall_e.encoder.Encoder."""
'''


def run_converter(script, *args, **env):
    return subprocess.run(
        [sys.executable,
         osp.join(CONVERTERS, script), *map(str, args)],
        cwd=REPO_ROOT,
        env=fresh_env(**env),
        capture_output=True,
        text=True,
        timeout=300)


def load_script(name):
    """A converter script as a module, to call its ``main`` in-process."""
    spec = importlib.util.spec_from_file_location(
        f'converter_{name}', osp.join(CONVERTERS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def captured_warnings():
    """Warnings (and worse) of the current mmengine logger."""
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def tiny_bevt(seed=0):
    cfg = dict(
        type='BEVT',
        backbone=dict(
            type='BEVTSwinTransformer3D',
            arch=TINY,
            window_size=WINDOW,
            drop_path_rate=0.),
        head=dict(type='BEVTMIMHead', in_channels=128, num_classes=VOCAB),
        target_generator=dict(type='BEVTDALLETokenizer', encoder=DALLE),
        data_preprocessor=dict(
            type='BEVTDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375]))
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('bevt'):
        model = MODELS.build(cfg)
    model.init_weights()
    # random tables, norms and mask token: every weight matters
    with torch.no_grad():
        for name, param in model.named_parameters():
            if 'relative_position_bias_table' in name:
                param.normal_(std=0.5)
            elif not name.startswith('target_generator.'):
                param.add_(torch.randn_like(param) * 0.05)
    return model.eval()


def official_state_dict(model, prefix=''):
    """``model``'s weights in the official BEVT layout."""
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith('backbone.'):
            bare = key[len('backbone.'):]
            for ours, theirs in OFFICIAL_NAMES.items():
                if bare.startswith(ours):
                    bare = theirs + bare[len(ours):]
            key = 'backbone.' + bare
        elif key.startswith('head.fc.'):
            key = 'cls_head.lm_head.' + key[len('head.fc.'):]
        state[prefix + key] = value
    state[prefix + 'backbone.layers.0.blocks.1.attn_mask'] = torch.zeros(2)
    for key, value in model.target_generator.encoder.state_dict().items():
        state[prefix + 'cls_head.vae_encoder.' + key] = value
    return state


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    """A tiny BEVT and its checkpoints: bevt's layout and two official."""
    root = tmp_path_factory.mktemp('converters')
    model = tiny_bevt()
    files = dict(
        ours=root / 'bevt.pth',
        official=root / 'official.pth',
        official_ddp=root / 'official_ddp.pth')
    meta = dict(epoch=150, mmcv_version='1.3.8')
    torch.save(dict(meta=meta, state_dict=model.state_dict()), files['ours'])
    torch.save(
        dict(
            meta=meta,
            state_dict=official_state_dict(model),
            optimizer=dict(state={}, param_groups=[])), files['official'])
    torch.save(
        dict(model=official_state_dict(model, prefix='module.')),
        files['official_ddp'])
    return model, files


def stream_outputs(model):
    """Backbone tokens and head logits of a masked video and image batch."""
    gen = torch.Generator().manual_seed(7)
    video = torch.randn(2, 3, 4, 64, 64, generator=gen)
    video_mask = torch.rand(2, 2, 4, 4, generator=gen) > 0.5
    image = torch.randn(2, 3, 64, 64, generator=gen)
    image_mask = torch.rand(2, 4, 4, generator=gen) > 0.5
    outputs = []
    with torch.no_grad():
        for x, mask in ((video, video_mask), (image, image_mask)):
            feats = model.backbone(x, mask)
            outputs += [feats, model.head(feats)]
    return outputs


def stage4_features(backbone, x):
    """Our stage-4 features as mmaction2's (B, C, T', H', W') output."""
    with torch.no_grad():
        x = backbone.patch_embed(x).permute(0, 2, 3, 4, 1)
        for layer in backbone.layers:
            x = backbone._run_stage(layer, x, image=False)
            if layer.downsample is not None:
                x = layer.downsample(x)
        return backbone.norm3(x).permute(0, 4, 1, 2, 3)


def test_help():
    for script in ('bevt_official.py', 'bevt_to_mmaction.py',
                   'dalle_openai.py'):
        result = run_converter(script, '--help')
        assert result.returncode == 0, result.stderr
        assert 'usage:' in result.stdout


def test_official_to_bevt_cli(source, tmp_path):
    model, files = source
    dst, tokenizer_out = tmp_path / 'bevt.pth', tmp_path / 'dalle.pth'
    result = run_converter('bevt_official.py', files['official_ddp'], dst,
                           '--tokenizer-out', tokenizer_out)
    assert result.returncode == 0, result.stderr[-3000:]
    for line in ('stripped the DDP prefix "module."',
                 'backbone.norm.weight -> backbone.norm3.weight',
                 'backbone.lm_down.weight -> '
                 'backbone.image_decoder.reduce.weight',
                 'backbone.fpn_t.0.bias -> '
                 'backbone.video_decoder.upsample_temporal.bias',
                 'cls_head.lm_head.weight -> head.fc.weight',
                 'derived buffer (computed at run time): 1'):
        assert line in result.stdout, result.stdout

    fresh = tiny_bevt(seed=1)
    expected = stream_outputs(model)
    assert not torch.allclose(stream_outputs(fresh)[0], expected[0])
    load_checkpoint(fresh, str(dst), map_location='cpu', strict=True)
    for ours, reference in zip(stream_outputs(fresh), expected):
        torch.testing.assert_close(ours, reference, rtol=0, atol=0)

    tokenizer = BEVTDALLETokenizer(
        encoder=DALLE,
        init_cfg=dict(type='Pretrained', checkpoint=str(tokenizer_out)))
    tokenizer.init_weights()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    x = x * 0.8 + 0.1  # map_pixels range
    assert torch.equal(tokenizer(x), model.target_generator(x))


def test_official_conversion_functions(source):
    model, files = source
    report = cc.ConversionReport()
    state_dict = cc.extract_state_dict(
        cc.load_checkpoint_file(str(files['official'])), 'official.pth',
        report)
    result = cc.convert_official_bevt(state_dict, report=report)
    assert result.window_size == WINDOW
    # identical to the model's own state dict, rebuilt indices included
    ours = model.state_dict()
    assert set(result.state_dict) == set(ours)
    for key, value in ours.items():
        assert torch.equal(result.state_dict[key], value), key
    encoder = model.target_generator.encoder.state_dict()
    assert set(result.tokenizer) == set(encoder)
    reasons = dict(report.dropped)
    assert reasons['backbone.layers.0.blocks.1.attn_mask'].startswith(
        'derived buffer')
    assert 'cls_head.vae_encoder.blocks.input.w' in reasons
    assert not report.notes[1:]  # no DDP prefix in this variant
    backbone = {
        k[len('backbone.'):]: v
        for k, v in result.state_dict.items() if k.startswith('backbone.')
    }
    assert cc.verify_bevt_backbone(backbone, WINDOW).out_channels == 128


def test_bevt_to_mmaction_cli(source, tmp_path):
    model, files = source
    dst = tmp_path / 'swin3d.pth'
    result = run_converter('bevt_to_mmaction.py', files['ours'], dst)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'video fusion decoder (pretraining only): 6' in result.stdout
    assert 'mask token (pretraining only): 1' in result.stdout
    assert 'renamed: 0 keys' in result.stdout  # norm3 is already norm3
    state_dict = torch.load(dst, weights_only=True)['state_dict']
    assert all(k.startswith('backbone.') for k in state_dict)
    bare = {k[len('backbone.'):]: v for k, v in state_dict.items()}
    assert not [k for k in bare if k.startswith(PRETRAIN_ONLY)]

    reference = SwinTransformer3D(
        arch=TINY,
        pretrained2d=False,
        window_size=WINDOW,
        drop_path_rate=0.,
        out_indices=(3, ))
    reference.eval()  # mmaction2's train() returns None
    missing, unexpected = reference.load_state_dict(bare, strict=False)
    assert missing == [] and unexpected == []
    x = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        expected = reference(x)
    torch.testing.assert_close(
        stage4_features(model.backbone, x), expected, atol=1e-5, rtol=1e-5)

    # a fine-tune config's recognizer loads it through init_cfg
    backbone = dict(
        type='SwinTransformer3D',
        arch=TINY,
        pretrained2d=False,
        window_size=WINDOW,
        drop_path_rate=0.,
        init_cfg=dict(
            type='Pretrained', checkpoint=str(dst), prefix='backbone.'))
    with DefaultScope.overwrite_default_scope('mmaction'):
        recognizer = MMACTION_MODELS.build(
            dict(
                type='Recognizer3D',
                backbone=backbone,
                cls_head=dict(type='I3DHead', in_channels=128, num_classes=5)))
    with captured_warnings() as records:
        recognizer.init_weights()
    assert [r.getMessage() for r in records] == []
    ours = model.backbone.state_dict()
    for key in ('layers.2.blocks.1.attn.qkv.weight', 'norm3.weight',
                'layers.3.blocks.0.attn.relative_position_bias_table'):
        assert torch.equal(recognizer.backbone.state_dict()[key], ours[key])


def test_bevt_to_mmaction_window_resize_cli(source, tmp_path):
    model, files = source
    dst = tmp_path / 'swin3d_w844.pth'
    # the official layout, a new temporal window, keys without prefix
    result = run_converter('bevt_to_mmaction.py', files['official'], dst,
                           '--window-size', 8, 4, 4, '--bare')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'backbone.norm.weight -> norm3.weight' in result.stdout
    assert 'resized: 8 keys' in result.stdout
    assert 'DALL-E tokenizer' in result.stdout
    state_dict = torch.load(dst, weights_only=True)['state_dict']
    assert 'norm3.weight' in state_dict and 'norm.weight' not in state_dict

    target = SwinTransformer3D(
        arch=TINY,
        pretrained=str(dst),
        pretrained2d=False,
        window_size=(8, 4, 4),
        drop_path_rate=0.)
    target.eval()
    built = {k: v.clone() for k, v in target.state_dict().items()}
    original = model.backbone.state_dict()
    tables = [k for k in built if k.endswith('relative_position_bias_table')]
    assert len(tables) == 8
    for key in tables:
        heads = original[key].shape[1]
        assert state_dict[key].shape == (15 * 7 * 7, heads)
        expected = F.interpolate(
            original[key].t().reshape(1, heads, 7, 7, 7),
            size=(15, 7, 7),
            mode='trilinear',
            align_corners=False).reshape(heads, -1).t()
        torch.testing.assert_close(state_dict[key], expected)
        index = key.replace('bias_table', 'index')
        assert torch.equal(state_dict[index], built[index])

    with captured_warnings() as records:
        target.init_weights()
    assert [r.getMessage() for r in records] == []
    loaded = target.state_dict()
    for key, value in state_dict.items():
        assert torch.equal(loaded[key], value), key
    assert torch.equal(loaded['norm3.bias'], original['norm3.bias'])


def test_dalle_openai_cli(tmp_path, monkeypatch):
    site = tmp_path / 'site'
    package = site / 'dall_e'
    package.mkdir(parents=True)
    (package / '__init__.py').write_text('')
    (package / 'encoder.py').write_text(FAKE_DALLE_ENCODER)
    monkeypatch.syspath_prepend(str(site))
    try:
        from dall_e.encoder import Encoder
        torch.manual_seed(3)
        encoder = Encoder(**DALLE)
        pickled = tmp_path / 'encoder.pkl'
        torch.save(encoder, pickled)  # the whole module, as OpenAI's file
    finally:
        for name in ('dall_e.encoder', 'dall_e'):
            sys.modules.pop(name, None)
    pythonpath = os.pathsep.join(
        p for p in (str(site), os.environ.get('PYTHONPATH')) if p)
    dst = tmp_path / 'dalle.pth'

    refused = run_converter(
        'dalle_openai.py', pickled, dst, PYTHONPATH=pythonpath)
    assert refused.returncode == 1
    assert '--trust-pickle' in refused.stderr
    assert 'arbitrary code' in refused.stderr
    assert not dst.exists()

    result = run_converter(
        'dalle_openai.py',
        pickled,
        dst,
        '--trust-pickle',
        PYTHONPATH=pythonpath)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'n_hid=16, n_blk_per_group=1' in result.stdout
    assert set(torch.load(dst, weights_only=True)) == set(encoder.state_dict())
    tokenizer = BEVTDALLETokenizer(
        encoder=DALLE, init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    tokenizer.init_weights()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    x = x * 0.8 + 0.1
    with torch.no_grad():
        expected = encoder(x).argmax(dim=1)
    assert torch.equal(tokenizer(x), expected)


def test_errors_name_the_file_and_keys(source, tmp_path, capsys):
    model, files = source
    missing = str(tmp_path / 'missing.pth')
    for name in ('bevt_official', 'bevt_to_mmaction'):
        assert load_script(name).main([missing, str(tmp_path / 'x')]) == 1
        assert missing in capsys.readouterr().err

    # no tables that fit any window: ask for --source-window
    with pytest.raises(ValueError, match='--source-window'):
        cc.infer_window_size(100)
    with pytest.raises(ValueError, match='gives 2535 table rows'):
        cc.infer_window_size(343, source_window=(8, 7, 7))

    backbone = {
        k[len('backbone.'):]: v
        for k, v in model.state_dict().items() if k.startswith('backbone.')
    }
    converted = cc.convert_bevt_to_mmaction(backbone).state_dict
    broken = dict(converted)
    del broken['layers.1.blocks.0.mlp.fc1.bias']
    broken['layers.0.blocks.0.attn.relative_position_bias_table'] = \
        torch.zeros(5, 1)
    broken['extra.weight'] = torch.zeros(1)
    with pytest.raises(ValueError) as error:
        cc.verify_mmaction_backbone(broken, WINDOW)
    message = str(error.value)
    for text in ('missing keys (1): layers.1.blocks.0.mlp.fc1.bias',
                 'unexpected keys (1): extra.weight',
                 'relative_position_bias_table [5, 1] vs [343, 1]'):
        assert text in message, message

    # a 2D (stage-1 / Swin) checkpoint is refused with the way to use it
    flat = dict(converted)
    flat['patch_embed.proj.weight'] = torch.zeros(16, 3, 4, 4)
    with pytest.raises(ValueError, match='pretrained2d=True'):
        cc.verify_mmaction_backbone(flat, WINDOW)

    # the rebuilt index is mmaction2's buffer
    swin = SwinTransformer3D(
        arch=TINY, pretrained2d=False, window_size=(2, 3, 5))
    buffer = swin.layers[0].blocks[0].attn.relative_position_index
    assert torch.equal(cc.relative_position_index((2, 3, 5)), buffer)
