# Copyright (c) bevt contributors. All rights reserved.
import pytest
import torch
from mmaction.structures import ActionDataSample
from mmengine.dataset import pseudo_collate

from bevt.models.data_preprocessors import BEVTDataPreprocessor
from bevt.registry import MODELS

MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


def make_sample(video: bool = True,
                masks: bool = True,
                tokenizer: bool = True,
                size: int = 64,
                seed: int = 0) -> dict:
    """One packed sample: 4 frames, a size/2 tokenizer view, 16-px masks."""
    gen = torch.Generator().manual_seed(seed)
    frames = (3, 4) if video else (3, )
    grid = (size // 16, size // 16)
    inputs = dict(
        imgs=torch.randint(
            0, 256, frames + (size, size), generator=gen, dtype=torch.uint8))
    if tokenizer:
        inputs['tokenizer_imgs'] = torch.randint(
            0,
            256,
            frames + (size // 2, size // 2),
            generator=gen,
            dtype=torch.uint8)
    data_sample = ActionDataSample()
    if masks:
        in_shape = ((2, ) if video else ()) + grid
        out_shape = ((4, ) if video else ()) + grid
        data_sample.set_field(
            torch.rand(in_shape, generator=gen) > 0.5,
            'input_mask',
            dtype=torch.Tensor)
        data_sample.target_mask = torch.rand(out_shape, generator=gen) > 0.5
    return dict(inputs=inputs, data_samples=data_sample)


def make_batch(n: int = 2, **kwargs) -> dict:
    return pseudo_collate([make_sample(seed=i, **kwargs) for i in range(n)])


def norm(x: torch.Tensor, mean, std) -> torch.Tensor:
    shape = (1, -1) + (1, ) * (x.dim() - 2)
    mean = torch.tensor(mean).view(shape)
    std = torch.tensor(std).view(shape)
    return (x.float() - mean) / std


def test_video_batch_normalisation_and_masks():
    batch = make_batch()
    imgs = torch.stack(batch['inputs']['imgs'])
    batch['inputs']['tokenizer_imgs'][0][:, 0] = 0  # frame 0 black
    batch['inputs']['tokenizer_imgs'][0][:, 1] = 255  # frame 1 white
    tok = torch.stack(batch['inputs']['tokenizer_imgs'])
    samples = batch['data_samples']
    out = BEVTDataPreprocessor(mean=MEAN, std=STD)(batch)
    inputs = out['inputs']
    assert set(inputs) == {
        'imgs', 'tokenizer_imgs', 'input_mask', 'target_mask'
    }
    assert out['data_samples'] is not None and len(out['data_samples']) == 2
    assert inputs['imgs'].shape == (2, 3, 4, 64, 64)
    assert inputs['imgs'].dtype == torch.float32
    torch.testing.assert_close(inputs['imgs'], norm(imgs, MEAN, STD))
    # DALL-E map_pixels: x / 255 * 0.8 + 0.1
    assert inputs['tokenizer_imgs'].shape == (2, 3, 4, 32, 32)
    torch.testing.assert_close(inputs['tokenizer_imgs'],
                               tok.float() / 255 * 0.8 + 0.1)
    torch.testing.assert_close(inputs['tokenizer_imgs'][0, :, 0],
                               torch.full((3, 32, 32), 0.1))
    torch.testing.assert_close(inputs['tokenizer_imgs'][0, :, 1],
                               torch.full((3, 32, 32), 0.9))
    for key, shape in (('input_mask', (2, 2, 4, 4)), ('target_mask', (2, 4, 4,
                                                                      4))):
        mask = inputs[key]
        assert mask.shape == shape and mask.dtype == torch.bool
        assert torch.equal(mask, torch.stack([s.get(key) for s in samples]))
        assert 0 < mask.sum() < mask.numel()


def test_tuple_of_video_and_image_batches():
    video = make_batch()
    image = make_batch(n=3, video=False)
    pre = BEVTDataPreprocessor(mean=MEAN, std=STD)
    for data in ((video, image), [video, image]):
        out = pre(data)
        assert isinstance(out, tuple) and len(out) == 2
        out_video, out_image = (o['inputs'] for o in out)
        assert out_video['imgs'].shape == (2, 3, 4, 64, 64)
        assert out_video['target_mask'].shape == (2, 4, 4, 4)
        assert out_image['imgs'].shape == (3, 3, 64, 64)
        assert out_image['tokenizer_imgs'].shape == (3, 3, 32, 32)
        assert out_image['input_mask'].shape == (3, 4, 4)
        assert out_image['target_mask'].dtype == torch.bool
        torch.testing.assert_close(
            out_image['imgs'],
            norm(torch.stack(image['inputs']['imgs']), MEAN, STD))


@pytest.mark.parametrize('video', [True, False])
def test_to_rgb_flips_both_views(video):
    sample = make_sample(video=video)
    for key in ('imgs', 'tokenizer_imgs'):
        view = sample['inputs'][key]
        for c, value in enumerate((10, 20, 30)):  # B, G, R
            view[c] = value
    batch = pseudo_collate([sample])
    kwargs = dict(mean=(1, 2, 3), std=(1, 1, 1), second_mean=(0, ))
    plain = BEVTDataPreprocessor(**kwargs, second_std=(1, ))(batch)
    flipped = BEVTDataPreprocessor(
        **kwargs, second_std=(1, ), to_rgb=True)(
            batch)
    first = (slice(None), ) * (2 if video else 1)
    for out, imgs, tok in ((plain, (9, 18, 27), (10, 20, 30)),
                           (flipped, (29, 18, 7), (30, 20, 10))):
        for c in range(3):
            assert torch.all(out['inputs']['imgs'][0, c][first] == imgs[c])
            assert torch.all(
                out['inputs']['tokenizer_imgs'][0, c][first] == tok[c])


def test_list_of_tensors_and_missing_keys():
    pre = BEVTDataPreprocessor(mean=MEAN, std=STD)
    # a plain list of tensors is ``imgs``; no masks on the samples
    batch = make_batch(masks=False)
    batch['inputs'] = batch['inputs']['imgs']
    out = pre(batch)
    assert set(out['inputs']) == {'imgs'}
    torch.testing.assert_close(out['inputs']['imgs'],
                               norm(torch.stack(batch['inputs']), MEAN, STD))
    # a dict without a tokenizer view, samples with masks
    out = pre(make_batch(tokenizer=False))
    assert set(out['inputs']) == {'imgs', 'input_mask', 'target_mask'}
    # no data samples at all
    batch = make_batch(masks=False)
    batch['data_samples'] = None
    assert set(pre(batch)['inputs']) == {'imgs', 'tokenizer_imgs'}


@pytest.mark.parametrize('field,kwargs', [
    ('mean', dict(mean=(1, 2))),
    ('std', dict(std=(1, 2, 3, 4))),
    ('second_mean', dict(second_mean=(0, 0))),
    ('second_std', dict(second_std=())),
    ('std', dict(std=(1, 0, 1))),
    ('mean', dict(mean='abc')),
])
def test_bad_normalisation_config(field, kwargs):
    cfg = dict(mean=MEAN, std=STD)
    cfg.update(kwargs)
    with pytest.raises(ValueError, match=f'^{field} '):
        BEVTDataPreprocessor(**cfg)


def test_second_norm_of_length_one():
    pre = BEVTDataPreprocessor(
        mean=MEAN, std=STD, second_mean=(0, ), second_std=(255, ))
    batch = make_batch(video=False)
    out = pre(batch)
    torch.testing.assert_close(
        out['inputs']['tokenizer_imgs'],
        torch.stack(batch['inputs']['tokenizer_imgs']).float() / 255)


def test_inconsistent_batches_raise():
    pre = BEVTDataPreprocessor(mean=MEAN, std=STD)
    batch = pseudo_collate([make_sample(), make_sample(size=32)])
    with pytest.raises(ValueError, match=r'imgs.*\(3, 4, 32, 32\)'):
        pre(batch)
    batch = pseudo_collate([make_sample(), make_sample(masks=False)])
    with pytest.raises(ValueError, match='input_mask is set on 1 of 2'):
        pre(batch)
    batch = make_batch()
    batch['inputs']['tokenizer_img'] = batch['inputs'].pop('tokenizer_imgs')
    with pytest.raises(ValueError, match='tokenizer_img'):
        pre(batch)
    batch = make_batch()
    batch['inputs']['imgs'] = [x[:1] for x in batch['inputs']['imgs']]
    with pytest.raises(ValueError, match=r'\(2, 1, 4, 64, 64\)'):
        pre(batch)


def test_device_autocast_and_registry():
    pre = MODELS.build(
        dict(type='BEVTDataPreprocessor', mean=MEAN, std=STD, to_rgb=True))
    assert isinstance(pre, BEVTDataPreprocessor)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = pre(make_batch())['inputs']
    assert out['imgs'].dtype == torch.float32
    assert out['tokenizer_imgs'].dtype == torch.float32
    assert out['input_mask'].dtype == torch.bool
    # everything follows the preprocessor's device (meta: no GPU needed)
    pre.to('meta')
    out = pre((make_batch(), make_batch(video=False)))
    for stream in out:
        for key, value in stream['inputs'].items():
            assert value.device.type == 'meta', key
        assert stream['inputs']['target_mask'].dtype == torch.bool
        assert stream['data_samples'][0].input_mask.device.type == 'meta'


def test_one_copy_per_batch_to_the_device(monkeypatch):
    """The samples are stacked where they are and each batch tensor is
    moved once (not once per sample); the data samples' masks are views of
    the moved batch masks, and the caller's samples are left alone."""
    pre = BEVTDataPreprocessor(mean=MEAN, std=STD).to('meta')
    batch = make_batch(n=3)
    moved = []
    original = torch.Tensor.to

    def recording_to(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if self.device.type == 'cpu' and out.device.type == 'meta':
            moved.append(tuple(self.shape))
        return out

    monkeypatch.setattr(torch.Tensor, 'to', recording_to)
    out = pre(batch)
    monkeypatch.undo()
    assert sorted(moved) == sorted([(3, 3, 4, 64, 64), (3, 3, 4, 32, 32),
                                    (3, 2, 4, 4), (3, 4, 4, 4)])
    samples = out['data_samples']
    for i, sample in enumerate(samples):
        for key in ('input_mask', 'target_mask'):
            view = getattr(sample, key)
            assert view.device.type == 'meta'
            assert view.shape == out['inputs'][key].shape[1:]
            assert view._base is out['inputs'][key], key
    assert batch['data_samples'][0].input_mask.device.type == 'cpu'
