# Copyright (c) bevt contributors. All rights reserved.
import copy
import logging
from contextlib import contextmanager
from unittest import mock

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import get_state_dict, load_state_dict
from mmpretrain.models.selfsup.beit import VQKD
from mmpretrain.models.selfsup.cae import Conv2d, DALLEEncoder
from mmpretrain.models.selfsup.maskfeat import HOGGenerator

import bevt.models.target_generators as tokenizers
from bevt.models.target_generators import (BEVTDALLETokenizer, BEVTHOGTargets,
                                    BEVTTokenizer, BEVTVQKDTokenizer)
from bevt.models.target_generators.dalle import stage_batch
from bevt.models.target_generators.frames import fold_views, unfold_targets
from bevt.registry import MODELS
from bevt.testing import DEVICES, exact_float32


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
    """Both block implementations give mmpretrain's ids, bitwise; the
    in-place blocks also give its features bitwise."""
    torch.manual_seed(0)
    tok = BEVTDALLETokenizer(encoder=encoder, channels_last=channels_last)
    assert isinstance(tok.encoder, DALLEEncoder) and tok.inplace
    x = inputs('dalle', 3)
    expected = tok.encoder(x).argmax(dim=1)
    assert torch.equal(tok(x), expected)
    trunk = nn.Sequential(*list(tok.encoder.blocks.children())[:-1])
    with torch.no_grad():
        assert torch.equal(tok._features(x), trunk(x))
    tok.inplace = False  # mmpretrain's own forward
    assert torch.equal(tok(x), expected)


def test_dalle_conv_casts_once_under_autocast():
    """Under the tokenizer's autocast the in-place path convolves directly
    (mmpretrain's Conv2d.forward, which casts to float32 or float16 first,
    is not called) and gives bitwise mmpretrain's features and ids on the
    CPU; without an autocast it is the module's own forward."""
    torch.manual_seed(0)
    tok = BEVTDALLETokenizer(encoder=DALLE_CFG, dtype='bfloat16')
    x = inputs('dalle', 3)
    trunk = nn.Sequential(*list(tok.encoder.blocks.children())[:-1])
    calls = []
    original = Conv2d.forward

    def counted(self, inp):
        calls.append(inp.dtype)
        return original(self, inp)

    with mock.patch.object(Conv2d, 'forward', counted):
        ids = tok(x)
        assert calls == []  # the final projection is F.linear
        with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
            features = tok._features(x)
            calls.clear()
            expected = trunk(x)
        assert len(calls) == len(
            [m for m in trunk.modules() if isinstance(m, Conv2d)])
        assert features.dtype == torch.bfloat16
        assert torch.equal(features, expected)
        tok.inplace = False  # mmpretrain's forward under the autocast
        assert torch.equal(tok(x), ids)
        tok.inplace, tok.dtype = True, None
        calls.clear()
        tok(x)
        assert calls and set(calls) == {torch.float32}


@pytest.mark.parametrize('blocks', [2, 3])  # post_gain 1/64, 1/144
@pytest.mark.parametrize('dtype', [None, 'bfloat16'])
def test_dalle_post_gain_folds_into_conv_4_where_exact(blocks, dtype):
    """The in-place blocks scale by ``post_gain`` through conv_4's weights
    and bias when it is a power of two (no pass over the block's output),
    and by a ``mul_`` otherwise; the features are mmpretrain's, bitwise,
    either way (float32 and bfloat16, non-zero biases)."""
    from bevt.models.target_generators.dalle_ops import exact_scale
    from bevt.utils.benchmarking import count_ops

    torch.manual_seed(0)
    tok = BEVTDALLETokenizer(
        encoder=dict(DALLE_CFG, n_blk_per_group=blocks), dtype=dtype)
    for param in tok.encoder.parameters():
        if param.dim() == 1:
            param.data.normal_(std=0.1)
    block = tok.encoder.blocks.group_1.block_1
    assert block.post_gain == 1 / (4 * blocks)**2
    exact = blocks == 2
    x = inputs('dalle', 3)
    trunk = nn.Sequential(*list(tok.encoder.blocks.children())[:-1])
    with torch.no_grad(), torch.autocast(
            'cpu', torch.bfloat16, enabled=dtype is not None):
        assert torch.equal(tok._features(x), trunk(x))
        counts = count_ops(lambda: tok._features(x))
    muls = counts.get('mul_', 0) + counts.get('mul', 0)
    assert muls == (0 if exact else 4 * blocks)  # one per block
    assert exact_scale(1 / 64, torch.float32)
    assert exact_scale(1 / 64, torch.bfloat16)
    assert not exact_scale(1 / 64, torch.float16)  # subnormals from 6e-5
    assert not exact_scale(1 / 144, torch.float32)


def test_dalle_weights_cast_once_under_autocast():
    """Under the tokenizer's autocast the frozen weights are cast once and
    reused (two casts fewer per convolution and call, the same ids), and
    cast again when they change in place."""
    from bevt.utils.benchmarking import count_ops

    torch.manual_seed(0)
    tok = BEVTDALLETokenizer(encoder=DALLE_CFG, dtype='bfloat16')
    x = inputs('dalle', 3)
    cells = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(1))
    cells = cells < 0.5
    ids = tok(x, cell_mask=cells)
    cached = count_ops(lambda: tok(x, cell_mask=cells))
    weights, tok.autocast_weights = tok.autocast_weights, None
    per_call = count_ops(lambda: tok(x, cell_mask=cells))
    assert torch.equal(tok(x, cell_mask=cells), ids)
    tok.autocast_weights = weights
    tensors = [m for m in tok.modules() if isinstance(m, Conv2d)]
    assert per_call['_to_copy'] - cached['_to_copy'] == 2 * len(tensors)
    assert cached['_to_copy'] == 1  # the input, to bfloat16
    # in place new weights (load_state_dict): cast again
    torch.manual_seed(5)
    other = BEVTDALLETokenizer(encoder=DALLE_CFG, dtype='bfloat16')
    tok.encoder.load_state_dict(other.encoder.state_dict())
    assert torch.equal(tok(x, cell_mask=cells), other(x, cell_mask=cells))
    assert not torch.equal(tok(x, cell_mask=cells), ids)


def test_cell_mask_path_reads_the_masks_once_per_chunk():
    """With a cell mask the DALL-E tokenizer makes the host wait for the
    device (on CUDA) once for the frames and once per chunk for the cells;
    the fill of the unneeded cells waits for nothing."""
    from bevt.utils.benchmarking import count_ops

    tok = BEVTDALLETokenizer(encoder=DALLE_CFG, chunk_size=2)
    clips = inputs('dalle', 2, 3)
    cells = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    cells = cells < 0.5
    counts = count_ops(lambda: tok(clips, cell_mask=cells))
    syncs = {k: n for k, n in counts.items() if k.startswith('host_sync.')}
    chunks = -(-int(cells.flatten(2).any(-1).sum()) // 2)
    assert syncs == {'host_sync.nonzero': 1 + chunks}, syncs


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


@pytest.mark.parametrize('kind', ['dalle', 'hog'])
def test_plan_made_first_gives_the_same_targets(kind):
    """``plan`` reads the frames, chunks and cells on the host; ``forward``
    with it gives what ``forward`` plans itself, and reads nothing."""
    tok = build(kind, chunk_size=3)
    clips = inputs(kind, 2, 4)
    grid = 32 // tok.downsample
    cells = torch.rand(
        2, 4, grid, grid, generator=torch.Generator().manual_seed(2)) > 0.6
    cells[:, :, 0, 0] = True  # every frame needed but one:
    cells[1, 2] = False  # a frame without a needed cell is skipped
    plan = tok.plan(clips, cell_mask=cells)
    assert plan.num_frames == 8
    assert [c.tolist() for c in plan.chunks] == [[0, 1, 2], [3, 4, 5], [7]]
    assert torch.equal(
        torch.cat(plan.chunk_cells),
        cells.flatten(0, 1)[[0, 1, 2, 3, 4, 5, 7]])
    if kind == 'dalle':  # what its projection gathers
        assert torch.equal(plan.positions[2],
                           cells[1, 3].flatten().nonzero().squeeze(1))
    else:
        assert plan.positions == (None, None, None)
    expected = tok(clips, cell_mask=cells)
    assert torch.equal(tok(clips, cell_mask=cells, plan=plan), expected)
    with pytest.raises(ValueError, match='plan is for 8 frames'):
        tok(clips[:1], cell_mask=cells[:1], plan=plan)


@pytest.mark.parametrize('kind', ['dalle', 'hog'])
def test_folded_views_give_each_streams_targets(kind):
    """``fold_views`` puts the frames of a clip batch and an image batch in
    one tokenizer call (the official head's ``torch.cat``);
    ``unfold_targets`` gives each stream the targets of its own call, in
    its token order, for ids and features, with and without cells."""
    tok = build(kind)
    clips, images = inputs(kind, 2, 3), inputs(kind, 3, seed=2)
    grid = 32 // tok.downsample
    gen = torch.Generator().manual_seed(3)
    clip_cells = torch.rand(2, 3, grid, grid, generator=gen) < 0.4
    clip_cells[1, 1] = False  # a frame without a needed cell
    image_cells = torch.rand(3, grid, grid, generator=gen) < 0.4
    for cells in ((clip_cells, image_cells), (None, None)):
        frames, folded = fold_views((clips, images), cells)
        assert frames.shape == (9, 3, 32, 32)
        assert torch.equal(frames[4], clips[1, :, 1])  # clip-major frames
        assert torch.equal(frames[6], images[0])
        parts = unfold_targets(tok(frames, cell_mask=folded), (clips, images))
        for part, view, cell in zip(parts, (clips, images), cells):
            alone = tok(view, cell_mask=cell)
            alone = alone.flatten(1, -2) if alone.is_floating_point() \
                else alone.flatten(1)
            assert part.shape == alone.shape
            torch.testing.assert_close(part, alone, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r'views differ in size'):
        fold_views((clips, inputs(kind, 3, size=64)), (None, None))
    with pytest.raises(ValueError, match='a cell mask or none'):
        fold_views((clips, images), (clip_cells, None))


def test_needed_frames():
    cells = torch.zeros(2, 3, 4, 4, dtype=torch.bool)
    cells[0, 2, 1, 1] = cells[1, 0] = True
    expected = torch.tensor([False, False, True, True, False, False])
    assert torch.equal(BEVTTokenizer.needed_frames(cell_mask=cells), expected)
    frames = torch.tensor([[True, False, True], [False, False, True]])
    assert torch.equal(
        BEVTTokenizer.needed_frames(frame_mask=frames), frames.flatten())
    assert torch.equal(
        BEVTTokenizer.needed_frames(cell_mask=cells[:, 0]),
        torch.tensor([False, True]))  # images
    assert BEVTTokenizer.needed_frames() is None


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
    with pytest.raises(ValueError, match='cell_mask dtype'):
        tok(clips, cell_mask=torch.ones(2, 3, 4, 4))
    with pytest.raises(ValueError, match='cell_mask shape'):
        tok(clips, cell_mask=torch.ones(2, 3, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match='cell_mask shape'):
        tok(clips, cell_mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match='not both'):
        tok(clips,
            frame_mask=torch.ones(2, 3, dtype=torch.bool),
            cell_mask=torch.ones(2, 3, 4, 4, dtype=torch.bool))


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


@pytest.mark.parametrize('kind', KINDS)
def test_frame_mask_skips_frames(kind):
    tok = build(kind)
    fill = 0 if kind == 'hog' else -1
    clips = inputs(kind, 2, 4)
    full = tok(clips)
    mask = torch.tensor([[True, False, False, True],
                         [False, True, False, False]])
    with recorded_inputs(inner(tok)) as seen:
        out = tok(clips, frame_mask=mask)
    assert sum(batch.shape[0] for batch in seen) == int(mask.sum()) == 3
    assert torch.equal(out[mask], full[mask])
    assert (out[~mask] == fill).all()
    # the encoded frames are exactly the needed ones, in order
    needed = clips.transpose(1, 2)[mask]  # (3, 3, 32, 32)
    assert torch.equal(torch.cat(seen).float(), needed)

    images = inputs(kind, 3)
    image_mask = torch.tensor([False, True, False])
    with recorded_inputs(inner(tok)) as seen:
        out = tok(images, frame_mask=image_mask)
    assert [batch.shape[0] for batch in seen] == [1]
    assert torch.equal(out[1], tok(images)[1])
    assert (out[image_mask.logical_not()] == fill).all()

    with recorded_inputs(inner(tok)) as seen:
        out = tok(clips, frame_mask=torch.zeros(2, 4, dtype=torch.bool))
    assert seen == [] and (out == fill).all()


def test_frame_mask_validation():
    tok = build('dalle')
    clips = inputs('dalle', 2, 3)
    with pytest.raises(ValueError, match='frame_mask dtype'):
        tok(clips, frame_mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match='frame_mask shape'):
        tok(clips, frame_mask=torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match='frame_mask shape'):
        tok(inputs('dalle', 2), frame_mask=torch.ones(2, 3, dtype=torch.bool))


@pytest.mark.parametrize('kind', KINDS)
def test_chunked_equals_unchunked(kind):
    clips = inputs(kind, 2, 5)
    whole = build(kind)(clips)
    for chunk_size in (1, 3):
        tok = build(kind, chunk_size=chunk_size)
        with recorded_inputs(inner(tok)) as seen:
            out = tok(clips)
        sizes = [batch.shape[0] for batch in seen]
        assert max(sizes) == chunk_size and sum(sizes) == 10
        assert torch.equal(out, whole)
    # chunks also apply to the frames a mask keeps
    tok = build(kind, chunk_size=2)
    mask = torch.tensor([[True, True, False, True, True],
                         [False, True, True, False, False]])
    with recorded_inputs(inner(tok)) as seen:
        out = tok(clips, frame_mask=mask)
    assert [batch.shape[0] for batch in seen] == [2, 2, 2]
    assert torch.equal(out[mask], whole[mask])
    # 'auto': 64 frames on CUDA, the class's CPU chunk elsewhere
    tok = build(kind, chunk_size='auto')
    assert tok.resolved_chunk_size('cuda') == 64
    cpu_chunk = 16 if kind == 'dalle' else 64
    assert tok.resolved_chunk_size('cpu') == cpu_chunk
    with recorded_inputs(inner(tok)) as seen:
        assert torch.equal(tok(clips), whole)
    assert max(batch.shape[0] for batch in seen) == min(cpu_chunk, 10)


def test_dalle_chunks_auto_by_default():
    tok = build('dalle')
    assert tok.chunk_size == 'auto' and tok.resolved_chunk_size('cpu') == 16
    with recorded_inputs(inner(tok)) as seen:
        tok(inputs('dalle', 3, 7))
    # 32-px frames are far below the 32 MiB stage budget: no sub-batches
    assert [batch.shape[0] for batch in seen] == [16, 5]
    assert tok.stage_bytes == 'auto'
    assert tok.resolved_stage_bytes('cpu') == 32 * 1024**2
    assert tok.resolved_stage_bytes('cuda') is None


@pytest.mark.parametrize('channels_last', [False, True])
def test_dalle_stage_sub_batches(channels_last):
    """Each stage sees sub-batches within ``stage_bytes``; consecutive
    stages of one size share them; the ids are those of whole chunks and
    the features equal to float32 rounding (oneDNN may pick another kernel
    for another batch size)."""
    stage_names = ['input', 'group_1', 'group_2', 'group_3', 'group_4']
    clips = inputs('dalle', 2, 5)  # 10 frames of 32 px
    whole = build('dalle', channels_last=channels_last, stage_bytes=None)
    tok = build('dalle', channels_last=channels_last, stage_bytes=64 * 1024)
    # widest activation per frame (n_hid=16): stem and group 1 16 x 32^2,
    # group 2 32 x 16^2, group 3 64 x 8^2, group 4 128 x 4^2 floats
    blocks = tok.encoder.blocks
    seen = {name: [] for name in stage_names}
    for name in stage_names:  # the first module each stage calls
        first = blocks.input if name == 'input' else getattr(
            blocks, name).block_1.res_path.relu_1
        first.register_forward_pre_hook(
            lambda mod, args, name=name: seen[name].append(args[0]))
    out = tok(clips)
    assert torch.equal(out, whole(clips))
    sizes = {k: [x.shape[0] for x in v] for k, v in seen.items()}
    assert sizes == dict(
        input=[1] * 10,
        group_1=[1] * 10,
        group_2=[2] * 5,
        group_3=[4, 4, 2],
        group_4=[8, 2])
    frames = clips.transpose(1, 2).flatten(0, 1)
    if channels_last:
        frames = frames.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(
            tok._features(frames), whole._features(frames), rtol=0, atol=1e-5)
    # a budget below one frame still runs one frame at a time
    tok.stage_bytes = 1
    assert torch.equal(tok(clips), out)
    assert stage_batch(blocks.group_4, torch.zeros(3, 64, 4, 4), 1) == 1
    assert stage_batch(blocks.group_4, torch.zeros(3, 64, 4, 4), 8 * 1024) == 1
    assert stage_batch(blocks.group_4, torch.zeros(3, 64, 4, 4),
                       3 * 8 * 1024) == 3


@pytest.mark.parametrize('kind', ID_KINDS)
def test_reduced_precision(kind):
    clips = inputs(kind, 2, 4)
    full = build(kind)(clips)
    tok = build(kind, dtype='bfloat16')
    autocast = []
    # DALL-E: under an autocast its convolutions bypass the modules
    # (dalle_conv), its pooling does not
    probe = tok.encoder.blocks.group_1.pool if kind == 'dalle' else inner(tok)
    probe.register_forward_pre_hook(lambda mod, args: autocast.append(
        (torch.is_autocast_enabled('cpu'), torch.get_autocast_dtype('cpu'))))
    ids = tok(clips)
    assert autocast and set(autocast) == {(True, torch.bfloat16)}
    assert ids.dtype == torch.int64 and ids.shape == full.shape
    assert ids.min() >= 0 and ids.max() < tok.vocab_size
    assert (ids == full).float().mean() > 0.9
    # dtype=None runs in float32 even inside a surrounding autocast
    fp32 = build(kind)
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        assert torch.equal(fp32(clips), full)


def test_auto_dtype_is_half_on_cuda_only(monkeypatch):
    """'auto': full precision on CPU (ids equal dtype=None, no autocast),
    bfloat16 / float16 on CUDA by what the GPU supports."""
    clips = inputs('dalle', 2, 3)
    tok = build('dalle', dtype='auto')
    autocast = []
    inner(tok).register_forward_pre_hook(
        lambda mod, args: autocast.append(torch.is_autocast_enabled('cpu')))
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        ids = tok(clips)
    assert autocast and not any(autocast)
    assert torch.equal(ids, build('dalle')(clips))
    assert tok.resolved_dtype('cpu') is None
    for supported, expected in ((True, 'bfloat16'), (False, 'float16')):
        monkeypatch.setattr(
            torch.cuda, 'is_bf16_supported', lambda *args, s=supported: s)
        assert tok.resolved_dtype('cuda') == expected
    assert build('dalle', dtype='float16').resolved_dtype('cpu') == 'float16'


def test_unsupported_autocast_raises(monkeypatch):
    tok = build('dalle', dtype='float16')
    monkeypatch.setattr(torch, 'is_autocast_enabled', lambda *args: False)
    with pytest.raises(RuntimeError, match="dtype='float16'"):
        tok(inputs('dalle', 1))


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
    assert set(tokenizers.__all__) == {
        'BEVTTokenizer', 'BEVTDALLETokenizer', 'BEVTVQKDTokenizer',
        'BEVTHOGTargets', 'TokenizerPlan'
    }
    cfgs = [
        dict(type='BEVTDALLETokenizer', encoder=DALLE_CFG, chunk_size=8),
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
    (dict(chunk_size=0), 'chunk_size'), (dict(chunk_size=True), 'chunk_size'),
    (dict(chunk_size=2.0), 'chunk_size'),
    (dict(chunk_size='big'), 'chunk_size'), (dict(init_cfg='x'), 'init_cfg'),
    (dict(encoder=[16]), 'encoder'), (dict(encoder=dict(bad=1)), 'keys'),
    (dict(encoder=dict(vocab_size=0)), 'encoder.vocab_size'),
    (dict(encoder=dict(n_hid=1.5)), 'encoder.n_hid'),
    (dict(inplace=1), 'inplace'), (dict(stage_bytes=0), 'stage_bytes'),
    (dict(stage_bytes='big'), 'stage_bytes'),
    (dict(stage_bytes=2.5), 'stage_bytes'),
    (dict(stage_bytes=True), 'stage_bytes')
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
    (dict(chunk_size=0), 'chunk_size'),
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
    precision, chunks and stage sub-batches; only the cells of masked
    tokens) against the official way: float32, every frame in one batch."""
    official = build('dalle',
                     **official_kwargs('model.target_generator')).to(device)
    clips = inputs('dalle', 2, 6, size=64).to(device)
    gen = torch.Generator().manual_seed(3)
    with exact_float32():
        full = official(clips)
        cells = torch.rand((2, 6) + full.shape[2:], generator=gen) < 0.4
        cells[0, 2] = False  # a frame that is not encoded
        cells = cells.to(device)
        out = build('dalle', dtype=None).to(device)(clips, cell_mask=cells)
        assert torch.equal(out[cells], full[cells])
        assert (out[~cells] == -1).all()
    out = build('dalle', dtype='auto').to(device)(clips, cell_mask=cells)
    assert (out[~cells] == -1).all()
    assert (out[cells] == full[cells]).float().mean() > 0.9


@pytest.mark.parametrize('device', DEVICES)
def test_dalle_defaults_on_device(device):
    tok = build('dalle', dtype='auto')
    expected = ('bfloat16', 'float16') if device == 'cuda' else (None, )
    assert tok.resolved_dtype(device) in expected
    check_dalle_defaults_on(torch.device(device))
