# Copyright (c) bevt contributors. All rights reserved.
"""Data preprocessor for BEVT's video and image streams."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseDataPreprocessor
from mmengine.structures import BaseDataElement
from torch import Tensor

from bevt.registry import MODELS
from bevt.utils.typing_utils import OptSampleList

MASK_KEYS = ('input_mask', 'target_mask')
INPUT_KEYS = ('imgs', 'tokenizer_imgs')


def _check_norm(value: Sequence[float], name: str,
                lengths: Tuple[int, ...]) -> Tensor:
    """Validate a mean or std and return it as a float32 tensor (C, )."""
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f'{name} must be a sequence of numbers, got '
                         f'{value!r}') from None
    if len(values) not in lengths:
        raise ValueError(f'{name} must have {" or ".join(map(str, lengths))}'
                         f' values, got {len(values)}: {value!r}')
    if name.endswith('std') and any(v == 0 for v in values):
        raise ValueError(f'{name} must not contain 0, got {value!r}')
    return torch.tensor(values, dtype=torch.float32)


def _stack(tensors: Union[Tensor, Sequence[Tensor]], name: str) -> Tensor:
    """Stack per-sample tensors (a batched tensor passes through).

    Raises:
        ValueError: If the list is empty or the samples differ in shape.
    """
    if isinstance(tensors, Tensor):
        return tensors
    if not isinstance(tensors, Sequence) or len(tensors) == 0:
        raise ValueError(f'{name} must be a non-empty list of tensors, got '
                         f'{type(tensors).__name__}')
    tensors = [torch.as_tensor(t) for t in tensors]
    shapes = sorted({tuple(t.shape) for t in tensors})
    if len(shapes) > 1:
        raise ValueError(f'All {name} of a batch must have one shape; got '
                         f'{shapes}')
    return torch.stack(tensors)


@MODELS.register_module()
class BEVTDataPreprocessor(BaseDataPreprocessor):
    """Data preprocessor of `BEVT: BERT Pretraining of Video Transformers
    <https://arxiv.org/abs/2112.01529>`_ for both streams.

    For each stream's batch it stacks the model view ``imgs`` (video
    (N, 3, T, H, W) or image (N, 3, H, W)), moves it to the device and
    normalises it with ``mean``/``std``, stacks the tokenizer view
    ``tokenizer_imgs`` ((N, 3, T, h, w) or (N, 3, h, w)) and normalises it
    with ``second_mean``/``second_std``, and stacks the bool masks
    ``input_mask`` / ``target_mask`` of the data samples (True = masked).
    The default second normalisation is DALL-E's ``map_pixels``:
    ``(x + 31.875) / 318.75 == x / 255 * 0.8 + 0.1``, in [0.1, 0.9].

    ``data`` is one stream's batch or, from
    ``MultiLoaderEpochBasedTrainLoop``, a tuple of them (e.g. video and
    image); each is processed the same way and the order is kept.

    Args:
        mean (Sequence[float]): Pixel mean of the 3 channels of ``imgs``
            (R, G, B if ``to_rgb``).
        std (Sequence[float]): Pixel std of the 3 channels of ``imgs``.
        second_mean (Sequence[float]): Mean (1 or 3 values) of the
            tokenizer view. Defaults to ``(-31.875, ) * 3``.
        second_std (Sequence[float]): Std (1 or 3 values) of the tokenizer
            view. Defaults to ``(318.75, ) * 3``.
        to_rgb (bool): Whether to flip BGR to RGB (on both views, before
            normalising). Defaults to False.
        non_blocking (bool): Whether to copy to the device without
            blocking. Defaults to False.
    """

    def __init__(self,
                 mean: Sequence[float],
                 std: Sequence[float],
                 second_mean: Sequence[float] = (-31.875, ) * 3,
                 second_std: Sequence[float] = (318.75, ) * 3,
                 to_rgb: bool = False,
                 non_blocking: bool = False) -> None:
        super().__init__(non_blocking=non_blocking)
        self.to_rgb = to_rgb
        for name, value, lengths in (('mean', mean, (3, )), ('std', std,
                                                             (3, )),
                                     ('second_mean', second_mean, (1, 3)),
                                     ('second_std', second_std, (1, 3))):
            self.register_buffer(name, _check_norm(value, name, lengths),
                                 False)

    def forward(self,
                data: Union[dict, Sequence[dict]],
                training: bool = False) -> Union[dict, Tuple[dict, ...]]:
        """Preprocess one stream's batch or a tuple of them.

        Args:
            data (dict or Sequence[dict]): ``dict(inputs, data_samples)``
                from ``pseudo_collate``, or a tuple/list of such dicts. Its
                ``inputs`` is ``dict(imgs=[...], tokenizer_imgs=[...])``
                (``tokenizer_imgs`` optional) of uint8 tensors per sample,
                or a plain list of ``imgs`` tensors.
            training (bool): Unused; the same for training and testing.

        Returns:
            dict or Tuple[dict]: For each stream, ``dict(inputs=dict(imgs,
            tokenizer_imgs, input_mask, target_mask), data_samples)``:
            ``imgs`` float32 (N, 3, [T, ] H, W); ``tokenizer_imgs`` float32
            (N, 3, [T, ] h, w); ``input_mask`` bool (N, T/2, H/16, W/16) or
            (N, H/16, W/16); ``target_mask`` bool (N, T, H/16, W/16) or
            (N, H/16, W/16); True = masked. Keys whose source is missing
            are left out.
        """
        if isinstance(data, dict):
            return self.forward_stream(data)
        if isinstance(data, (tuple, list)):
            return tuple(self.forward_stream(d) for d in data)
        raise TypeError(f'Unsupported data type: {type(data)}')

    def forward_stream(self, data: dict) -> dict:
        """Preprocess one stream's batch; see :meth:`forward`."""
        if not isinstance(data, dict) or 'inputs' not in data:
            raise ValueError('Each batch must be a dict with an "inputs" key,'
                             f' got {type(data).__name__}')
        inputs = data['inputs']
        data_samples = data.get('data_samples')
        if not isinstance(inputs, dict):
            inputs = dict(imgs=inputs)
        unknown = sorted(set(inputs) - set(INPUT_KEYS))
        if unknown or 'imgs' not in inputs:
            raise ValueError(f'inputs must have the keys {INPUT_KEYS} '
                             f'(imgs required), got {sorted(inputs)}')

        # stacked where the loader left the samples, then moved in one copy
        imgs = self.cast_data(_stack(inputs['imgs'], 'imgs'))
        out = dict(imgs=self._normalize(imgs, self.mean, self.std, 'imgs'))
        if inputs.get('tokenizer_imgs') is not None:
            tok = self.cast_data(
                _stack(inputs['tokenizer_imgs'], 'tokenizer_imgs'))
            if tok.dim() != imgs.dim() or tok.shape[0] != imgs.shape[0]:
                raise ValueError(
                    'tokenizer_imgs must have the batch size and dims of '
                    f'imgs; got {tuple(tok.shape)} vs {tuple(imgs.shape)}')
            out['tokenizer_imgs'] = self._normalize(tok, self.second_mean,
                                                    self.second_std,
                                                    'tokenizer_imgs')
        masks = self._stack_masks(data_samples, imgs.shape[0])
        out.update(masks)
        return dict(
            inputs=out,
            data_samples=self._samples_to_device(data_samples, masks))

    def _samples_to_device(self, data_samples: OptSampleList,
                           masks: Dict[str, Tensor]) -> OptSampleList:
        """The data samples on the device, their masks as views of the
        batch ``masks`` (already there), so that nothing is copied twice.

        One copy per batch rather than per sample: on CUDA each copy from
        pageable memory waits for the device; 4 clips + 32 images made 144
        such copies per step.
        """
        if not data_samples:
            return data_samples
        moved = []
        for i, sample in enumerate(data_samples):
            if masks and isinstance(sample, BaseDataElement):
                sample = sample.new()  # the caller's sample is left alone
                for key, mask in masks.items():
                    sample.set_field(mask[i], key)
            moved.append(sample)
        return self.cast_data(type(data_samples)(moved))

    def _normalize(self, x: Tensor, mean: Tensor, std: Tensor,
                   name: str) -> Tensor:
        """(N, 3, [T, ] H, W) uint8 -> float32, BGR->RGB if ``to_rgb``."""
        if x.dim() not in (4, 5) or x.shape[1] != 3:
            raise ValueError(f'{name} must be (N, 3, H, W) or (N, 3, T, H, '
                             f'W), got {tuple(x.shape)}')
        if self.to_rgb:
            x = x[:, [2, 1, 0]]
        shape = (1, -1) + (1, ) * (x.dim() - 2)  # channel dim 1
        return (x.float() - mean.view(shape)) / std.view(shape)

    def _stack_masks(self, data_samples: OptSampleList,
                     batch_size: int) -> Dict[str, Tensor]:
        """Stack the masks of the data samples into bool (N, ...) tensors.

        Raises:
            ValueError: If only some samples have a mask, or their number
                differs from the batch size.
        """
        out: Dict[str, Tensor] = {}
        if not data_samples:
            return out
        for key in MASK_KEYS:
            masks: List[Optional[Tensor]] = [
                ds.get(key) for ds in data_samples
            ]
            num = sum(m is not None for m in masks)
            if num == 0:
                continue
            if num != len(masks) or num != batch_size:
                raise ValueError(f'{key} is set on {num} of {len(masks)} '
                                 f'data samples; expected all {batch_size}')
            mask = _stack(masks, key)
            if mask.is_floating_point():
                raise TypeError(f'{key} must be bool, got {mask.dtype}')
            out[key] = self.cast_data(mask).to(torch.bool)
        return out
