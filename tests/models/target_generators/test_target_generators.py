# Copyright (c) bevt contributors. All rights reserved.
import copy
import logging
from contextlib import contextmanager

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import get_state_dict, load_state_dict
from mmpretrain.models.selfsup.beit import VQKD
from mmpretrain.models.selfsup.cae import DALLEEncoder
from mmpretrain.models.selfsup.maskfeat import HOGGenerator

import bevt.models.target_generators as target_generators
from bevt.models.target_generators import (BEVTDALLETokenizer, BEVTHOGTargets,
                                           BEVTTokenizer, BEVTVQKDTokenizer)
from bevt.registry import MODELS
from bevt.testing import DEVICES, config_path, exact_float32

DALLE_CFG = dict(n_hid=16, vocab_size=64)
VIT_CFG = dict(
    arch=dict(
        embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=64),
    img_size=32)
VQKD_CFG = dict(encoder_config=VIT_CFG, num_embed=64)
KINDS = ['dalle', 'vqkd', 'hog']
ID_KINDS = ['dalle', 'vqkd']


def build(kind, seed=0, **kwargs):
    """A tiny tokenizer of ``kind``; the same seed gives the same weights."""
    torch.manual_seed(seed)
    if kind == 'dalle':
        return BEVTDALLETokenizer(encoder=DALLE_CFG, **kwargs)
    if kind == 'vqkd':
        return BEVTVQKDTokenizer(encoder=VQKD_CFG, **kwargs)
    return BEVTHOGTargets(**kwargs)


def inputs(kind, *lead, size=32, seed=1):
    """Random inputs in the range the preprocessor gives ``kind``."""
    gen = torch.Generator().manual_seed(seed)
    n, t = lead[0], lead[1:]
    x = torch.rand((n, 3) + t + (size, size), generator=gen)
    if kind == 'dalle':
        return x * 0.8 + 0.1  # map_pixels range [0.1, 0.9]
    if kind == 'vqkd':
        return x * 2 - 1  # [-1, 1]
    return x


def inner(tok):
    """The wrapped module that really encodes the frames."""
    if isinstance(tok, BEVTVQKDTokenizer):
        return tok.encoder.encoder
    if isinstance(tok, BEVTHOGTargets):
        return tok.hog
    return tok.encoder.blocks.input  # DALL-E: its first convolution


@contextmanager
def recorded_inputs(module):
    """Record the batch of every call of ``module``."""
    seen = []
    handle = module.register_forward_pre_hook(
        lambda mod, args: seen.append(args[0]))
    try:
        yield seen
    finally:
        handle.remove()


class _Records(logging.Handler):

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@contextmanager
def captured_log():
    """Records of the current mmengine logger."""
    logger = MMLogger.get_current_instance()
    handler = _Records()
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


def random_init_warnings(records):
    return [
        r for r in records if r.levelno == logging.WARNING
        and 'randomly initialised' in r.getMessage()
    ]


@pytest.mark.parametrize('kind', KINDS)
def test_shapes_dtypes_and_attributes(kind):
    tok = build(kind)
    assert isinstance(tok, BEVTTokenizer)
    images = tok(inputs(kind, 2))
    clips = tok(inputs(kind, 2, 3))
    if kind == 'hog':
        assert tok.vocab_size is None and tok.target_dims == 108
        assert tok.downsample == 16
        assert images.shape == (2, 2, 2, 108)
        assert clips.shape == (2, 3, 2, 2, 108)
        assert images.dtype == clips.dtype == torch.float32
        assert images.abs().sum() > 0
        return
    assert tok.target_dims is None and tok.vocab_size == 64
    assert tok.downsample == {'dalle': 8, 'vqkd': 16}[kind]
    grid = 32 // tok.downsample
    assert images.shape == (2, grid, grid)
    assert clips.shape == (2, 3, grid, grid)
    for ids in (images, clips):
        assert ids.dtype == torch.int64
        assert ids.min() >= 0 and ids.max() < tok.vocab_size
    # random weights still spread over the vocabulary
    assert clips.unique().numel() > 1


def test_full_size_defaults_and_grids():
    dalle = BEVTDALLETokenizer()
    assert dalle.vocab_size == 8192 and dalle.downsample == 8
    assert dalle.encoder.blocks.output.conv.w.shape[:2] == (8192, 2048)
    vqkd = BEVTVQKDTokenizer(encoder=dict(encoder_config=VIT_CFG))
    assert vqkd.vocab_size == 8192 and vqkd.downsample == 16
    ids = vqkd(inputs('vqkd', 1, size=64))
    assert ids.shape == (1, 4, 4)
    hog = BEVTHOGTargets(downsample=8, gaussian_window=0)
    assert hog.target_dims == 27
    assert hog(inputs('hog', 1, size=24)).shape == (1, 3, 3, 27)


@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize(
    'encoder',
    [DALLE_CFG, dict(n_hid=8, vocab_size=32, n_blk_per_group=1)])
def test_dalle_ids_are_argmax_of_mmpretrain_logits(encoder, channels_last):
    """The ids are the argmax of mmpretrain's DALL-E logits, whether every
    cell or only some are projected to the vocabulary."""
    torch.manual_seed(0)
    tok = BEVTDALLETokenizer(encoder=encoder, channels_last=channels_last)
    assert isinstance(tok.encoder, DALLEEncoder)
    x = inputs('dalle', 3)
    expected = tok.encoder(x).argmax(dim=1)
    assert torch.equal(tok(x), expected)
    cells = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(0))
    cells = cells < 0.5
    assert torch.equal(tok(x, cell_mask=cells)[cells], expected[cells])


@pytest.mark.parametrize('kind', KINDS)
def test_cell_mask_gives_the_needed_cells_only(kind):
    """Needed cells equal the full targets, the rest is filled, frames with
    no needed cell are not encoded."""
    tok = build(kind)
    fill = 0 if kind == 'hog' else -1
    clips = inputs(kind, 2, 3, size=64)
    full = tok(clips)
    grid = full.shape[2:4]
    gen = torch.Generator().manual_seed(2)
    cells = torch.rand((2, 3) + grid, generator=gen) < 0.4
    cells[0, 1] = False  # a frame with no needed cell
    cells[1, 2] = True  # a frame with every cell needed
    with recorded_inputs(inner(tok)) as seen:
        out = tok(clips, cell_mask=cells)
    assert sum(batch.shape[0] for batch in seen) == 5
    assert out.shape == full.shape
    assert torch.equal(out[cells], full[cells])
    assert (out[~cells] == fill).all()

    images = inputs(kind, 3, size=64)
    image_cells = torch.rand((3, ) + grid, generator=gen) < 0.4
    out = tok(images, cell_mask=image_cells)
    assert torch.equal(out[image_cells], tok(images)[image_cells])
    assert (out[~image_cells] == fill).all()


def test_dalle_projects_only_the_needed_cells():
    tok = build('dalle')
    clips = inputs('dalle', 2, 2, size=64)
    full = tok(clips)
    cells = torch.zeros(2, 2, 8, 8, dtype=torch.bool)
    cells[0, 0, 1:4, 2:6] = True
    cells[1, 1, 5, 5] = True
    projected = []
    conv = tok.encoder.blocks.output.conv
    handle = conv.register_forward_hook(
        lambda mod, args, out: projected.append(out))
    with recorded_inputs(tok.encoder.blocks.output.relu) as relu_inputs:
        out = tok(clips, cell_mask=cells)
    handle.remove()
    assert projected == []  # no 1x1 convolution over every cell
    assert [tuple(x.shape) for x in relu_inputs] == [(13, 128)]
    assert torch.equal(out[cells], full[cells])
    assert (out[~cells] == -1).all()


def test_cell_mask_validation():
    tok = build('dalle')
    clips = inputs('dalle', 2, 3)  # 32 px: 4 x 4 cells
    with pytest.raises(ValueError, match='cell_mask'):
        tok(clips, cell_mask=torch.ones(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r'cell_mask.*\(2, 3, 4, 4\)'):
        tok(clips, cell_mask=torch.ones(2, 3, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match='cell_mask'):
        tok(clips, cell_mask=torch.ones(2, 3, dtype=torch.bool))


def test_vqkd_ids_match_mmpretrain_get_tokens():
    tok = build('vqkd')
    assert isinstance(tok.encoder, VQKD)
    x = inputs('vqkd', 3)
    reference = copy.deepcopy(tok.encoder)  # get_tokens updates buffers
    expected = reference.get_tokens(x)['token'].view(3, 2, 2)
    assert torch.equal(tok(x), expected)


def test_hog_matches_mmpretrain_and_ignores_normalisation():
    x = inputs('hog', 2, size=224) * 255
    tok = BEVTHOGTargets()
    feats = tok(x)
    assert feats.shape == (2, 14, 14, 108)
    expected = HOGGenerator()(x)  # (2, 196, 108)
    assert torch.equal(feats.flatten(1, 2), expected)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    torch.testing.assert_close(tok((x - mean) / std), feats)


@pytest.mark.parametrize('kind', KINDS)
def test_clip_frames_equal_per_frame_tokenisation(kind):
    tok = build(kind)
    clips = inputs(kind, 2, 3)
    out = tok(clips)
    for t in range(3):
        frame = tok(clips[:, :, t].contiguous())
        for n in range(2):
            alone = tok(clips[n:n + 1, :, t])[0]
            assert torch.equal(out[n, t], frame[n])
            torch.testing.assert_close(out[n, t], alone)
    # frames differ, so a wrong fold would be noticed
    assert not torch.equal(out[:, 0], out[:, 1])


def autocast_seen(tok, device_type='cpu'):
    """Record (enabled, dtype) of the autocast around each encoder call."""
    seen = []
    inner(tok).register_forward_pre_hook(lambda mod, args: seen.append(
        (torch.is_autocast_enabled(device_type),
         torch.get_autocast_dtype(device_type))))
    return seen


@pytest.mark.parametrize('kind', ID_KINDS)
@pytest.mark.parametrize('dtype', ['bfloat16', 'float16'])
def test_reduced_precision(kind, dtype):
    clips = inputs(kind, 2, 4)
    full = build(kind)(clips)
    tok = build(kind, dtype=dtype)
    seen = autocast_seen(tok)
    ids = tok(clips)
    assert seen and set(seen) == {(True, getattr(torch, dtype))}
    assert ids.dtype == torch.int64 and ids.shape == full.shape
    assert ids.min() >= 0 and ids.max() < tok.vocab_size
    assert (ids == full).float().mean() > 0.9
    # dtype=None runs in float32 even inside a surrounding autocast
    fp32 = build(kind)
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        assert torch.equal(fp32(clips), full)


def test_auto_dtype_is_float16_on_cuda_only(monkeypatch):
    """'auto': full precision on CPU (the ids of dtype=None), float16 on
    CUDA, also where the GPU supports bfloat16; so for the stage-2 config's
    tokenizer."""
    clips = inputs('dalle', 2, 3)
    tok = build('dalle', dtype='auto')
    seen = autocast_seen(tok)
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        ids = tok(clips)
    assert seen and not any(enabled for enabled, _ in seen)
    assert torch.equal(ids, build('dalle')(clips))
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *_: True)
    cfg = Config.fromfile(
        config_path('bevt/bevt_swin-base-p244-w877_bevt-img-pre_32xb8-amp-'
                    'coslr-150e_in1k-kinetics400.py'))
    cfg = cfg.model.target_generator
    assert cfg.type == 'BEVTDALLETokenizer' and cfg.dtype == 'auto'
    cfg.encoder = DALLE_CFG  # the config's dtype, a small encoder
    tok = MODELS.build(cfg)  # init_cfg: loaded only by init_weights
    assert tok.resolved_dtype('cuda') == 'float16'
    assert tok.resolved_dtype('cpu') is None
    assert build('dalle', dtype='bfloat16').resolved_dtype('cuda') == \
        'bfloat16'


@pytest.mark.parametrize('kind', ID_KINDS)
def test_channels_last_gives_identical_ids(kind):
    clips = inputs(kind, 2, 3)
    expected = build(kind)(clips)
    tok = build(kind, channels_last=True)
    conv = (
        tok.encoder.blocks.input.w if kind == 'dalle' else
        tok.encoder.encoder.patch_embed.projection.weight)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert not conv.is_contiguous()
    with recorded_inputs(inner(tok)) as seen:
        ids = tok(clips)
    assert seen[0].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(ids, expected)


def test_compile_gives_identical_ids():
    """``compile=True``: the ids of clips and images, all cells or the
    needed ones, equal the eager tokenizer's (inductor's kernels)."""
    eager, compiled = build('dalle'), build('dalle', compile=True)
    clips, images = inputs('dalle', 2, 3), inputs('dalle', 5)
    mask = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    for x, cells in ((clips, None), (images, None), (clips, mask < 0.5),
                     (images, mask[:, 0].repeat(3, 1, 1)[:5] < 0.3)):
        assert torch.equal(compiled(x, cells), eager(x, cells))
    assert compiled._compiled_encode is not None
    assert eager._compiled_encode is None


def test_compile_options_and_copies():
    """A dict is handed to ``torch.compile``; a deep copy runs with its own
    weights."""
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    tok = build('dalle', compile=dict(backend=backend))
    images = inputs('dalle', 2)
    eager = build('dalle')
    assert torch.equal(tok(images), eager(images)) and graphs
    copy_ = copy.deepcopy(tok)
    assert copy_._compiled_encode is None
    with torch.no_grad():
        for module in (copy_, eager):
            module.encoder.blocks.output.conv.b.copy_(torch.arange(64.) / 10)
    assert torch.equal(copy_(images), eager(images))
    assert not torch.equal(tok(images), eager(images))
    with pytest.raises(ValueError, match='compile'):
        build('dalle', compile='yes')


@pytest.mark.parametrize('kind', KINDS)
def test_frozen_no_grad_and_eval(kind):
    tok = build(kind)
    params = list(tok.parameters())
    assert kind == 'hog' or len(params) > 0
    assert all(not p.requires_grad for p in params)
    x = inputs(kind, 2, 2).requires_grad_()
    out = tok(x)
    assert not out.requires_grad and out.grad_fn is None

    parent = nn.Module()
    parent.tokenizer = tok
    parent.linear = nn.Linear(2, 2)
    parent.train()
    assert parent.training and parent.linear.training
    assert not any(m.training for m in tok.modules())
    assert tok.train() is tok and not tok.training
    assert not any(m.training for m in tok.modules())


def _parent_with(tok):
    parent = nn.Module()
    parent.tokenizer = tok
    parent.tokenizer_head = nn.Linear(3, 2)  # shares the name's beginning
    parent.head = nn.Module()
    parent.head.linear = nn.Linear(2, 2)
    return parent


@pytest.mark.parametrize('kind', KINDS)
def test_state_dict_excludes_tokenizer(kind):
    tok = build(kind)
    own = {f'tokenizer.{k}': v for k, v in tok.named_parameters()}
    own.update({f'tokenizer.{k}': v for k, v in tok.named_buffers()})
    assert len(own) > 0
    assert tok.state_dict() == {}

    parent = _parent_with(tok)
    state = parent.state_dict()
    expected = {
        'tokenizer_head.weight', 'tokenizer_head.bias', 'head.linear.weight',
        'head.linear.bias'
    }
    assert set(state) == expected
    assert set(get_state_dict(parent)) == expected
    result = parent.load_state_dict(state, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    load_state_dict(parent, state, strict=True)

    # nested deeper, the prefix has dots
    outer = nn.Module()
    outer.model = parent
    assert set(outer.state_dict()) == {f'model.{k}' for k in expected}
    outer.load_state_dict(outer.state_dict(), strict=True)

    # an old checkpoint that carries (different) tokenizer weights
    before = {k: v.clone() for k, v in own.items()}
    old = dict(state)
    old.update({k: torch.zeros_like(v) for k, v in own.items()})
    old['tokenizer.not_a_key'] = torch.zeros(1)
    old['head.linear.bias'] = torch.full((2, ), 7.)
    result = parent.load_state_dict(old, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    load_state_dict(parent, old, strict=True)
    assert (parent.head.linear.bias == 7).all()
    for key, value in own.items():
        assert torch.equal(value, before[key]), key

    # other keys are still checked
    del old['head.linear.weight']
    with pytest.raises(RuntimeError, match='head.linear.weight'):
        parent.load_state_dict(old, strict=True)


@pytest.mark.parametrize('kind', ID_KINDS)
def test_pretrained_init_cfg_loads_encoder_weights(kind, tmp_path):
    torch.manual_seed(123)
    if kind == 'dalle':
        source = DALLEEncoder(**DALLE_CFG)
    else:
        source = BEVTVQKDTokenizer(encoder=VQKD_CFG).encoder
    checkpoint = str(tmp_path / 'tok.pth')
    torch.save(source.state_dict(), checkpoint)
    x = inputs(kind, 4)
    if kind == 'dalle':
        expected = source(x).argmax(dim=1)
    else:
        expected = copy.deepcopy(source).get_tokens(x)['token'].view(4, 2, 2)

    tok = build(kind, init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
    assert not torch.equal(tok(x), expected)  # nothing loaded in __init__
    parent = BaseModule()
    parent.tokenizer = tok
    with captured_log() as records:
        parent.init_weights()
    assert random_init_warnings(records) == []
    assert torch.equal(tok(x), expected)
    for name, value in source.state_dict().items():
        assert torch.equal(tok.encoder.state_dict()[name], value), name
    assert all(not p.requires_grad for p in tok.parameters())
    assert not tok.training


@pytest.mark.parametrize('kind', KINDS)
def test_random_init_warning(kind):
    tok = build(kind)
    with captured_log() as records:
        tok.init_weights()
    warnings = random_init_warnings(records)
    if kind == 'hog':
        assert warnings == []
    else:
        assert len(warnings) == 1
        assert type(tok).__name__ in warnings[0].getMessage()
        assert 'meaningless' in warnings[0].getMessage()


def test_registry_build():
    assert set(target_generators.__all__) == {
        'BEVTTokenizer', 'BEVTDALLETokenizer', 'BEVTVQKDTokenizer',
        'BEVTHOGTargets'
    }
    cfgs = [
        dict(type='BEVTDALLETokenizer', encoder=DALLE_CFG, dtype='auto'),
        dict(type='BEVTVQKDTokenizer', encoder=VQKD_CFG),
        dict(type='BEVTHOGTargets', nbins=6),
    ]
    for cfg in cfgs:
        tok = MODELS.build(cfg)
        assert type(tok).__name__ == cfg['type']
        assert MODELS.get(cfg['type']) is type(tok)
    assert tok.target_dims == 3 * 6 * 4


@pytest.mark.parametrize('kwargs, field', [
    (dict(dtype='fp16'), 'dtype'), (dict(dtype=torch.float16), 'dtype'),
    (dict(channels_last='yes'), 'channels_last'),
    (dict(init_cfg='x'), 'init_cfg'), (dict(encoder=[16]), 'encoder'),
    (dict(encoder=dict(bad=1)), 'keys'),
    (dict(encoder=dict(vocab_size=0)), 'encoder.vocab_size'),
    (dict(encoder=dict(n_hid=1.5)), 'encoder.n_hid')
])
def test_dalle_bad_args(kwargs, field):
    with pytest.raises(ValueError, match=field):
        BEVTDALLETokenizer(**kwargs)


@pytest.mark.parametrize('encoder, field', [
    ([16], 'encoder'),
    (dict(decoder_config=dict()), 'keys'),
    (dict(num_embed=0), 'num_embed'),
    (dict(encoder_config=dict(out_type='avg_featmap')), 'out_type'),
    (dict(encoder_config=dict(patch_size=(16, 16))), 'patch_size'),
])
def test_vqkd_bad_args(encoder, field):
    with pytest.raises(ValueError, match=field):
        BEVTVQKDTokenizer(encoder=encoder)


@pytest.mark.parametrize('kwargs, field', [
    (dict(nbins=0), 'nbins'),
    (dict(pool=-8), 'pool'),
    (dict(gaussian_window=-1), 'gaussian_window'),
    (dict(downsample=12), 'downsample'),
])
def test_hog_bad_args(kwargs, field):
    with pytest.raises(ValueError, match=field):
        BEVTHOGTargets(**kwargs)


def test_bad_inputs():
    dalle = build('dalle')
    with pytest.raises(ValueError, match='input shape'):
        dalle(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match='multiples of 8'):
        dalle(torch.rand(1, 3, 36, 32))
    vqkd = build('vqkd')
    with pytest.raises(ValueError, match='multiples of 16'):
        vqkd(torch.rand(1, 3, 2, 24, 32))
    hog = build('hog')
    with pytest.raises(ValueError, match='square'):
        hog(torch.rand(1, 3, 32, 64))
    with pytest.raises(ValueError, match='channels'):
        hog(torch.rand(1, 1, 32, 32))


def check_dalle_defaults_on(device: torch.device) -> None:
    """The DALL-E tokenizer as the configs set it on ``device`` ('auto'
    precision, channels last, only the cells of masked tokens) against the
    official way: float32, every cell."""
    clips = inputs('dalle', 2, 6, size=64).to(device)
    gen = torch.Generator().manual_seed(3)
    cells = torch.rand(2, 6, 8, 8, generator=gen) < 0.4
    cells[0, 2] = False  # a frame that is not encoded
    cells = cells.to(device)
    with exact_float32():
        full = build('dalle').to(device)(clips)
    out = build(
        'dalle', dtype='auto', channels_last=True).to(device)(
            clips, cell_mask=cells)
    assert (out[~cells] == -1).all()
    assert (out[cells] == full[cells]).float().mean() > 0.9


@pytest.mark.parametrize('device', DEVICES)
def test_dalle_defaults_on_device(device):
    tok = build('dalle', dtype='auto')
    assert tok.resolved_dtype(device) == ('float16'
                                          if device == 'cuda' else None)
    check_dalle_defaults_on(torch.device(device))
