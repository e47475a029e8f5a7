# Copyright (c) bevt contributors. All rights reserved.
"""The frozen base shared by every BEVT target generator."""
import logging
from typing import Callable, Optional, Union

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor

from bevt.utils.typing_utils import OptMultiConfig

_DTYPES = {'float16': torch.float16, 'bfloat16': torch.bfloat16}


def check_int(name: str, value: int, minimum: int = 1) -> None:
    """Raise a ``ValueError`` naming ``name`` unless ``value`` is an int
    (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) \
            or value < minimum:
        raise ValueError(
            f'Invalid {name}: {value!r}; expected an int >= {minimum}')


def _drop_own_keys(module: 'BEVTTokenizer', state_dict: dict, prefix: str,
                   *args) -> None:
    """``state_dict`` post-hook and ``load_state_dict`` pre-hook: remove the
    tokenizer's keys (so an old checkpoint that carries them loads nothing
    into it); the prefix is kept for :func:`_forget_missing_keys`."""
    module._prefix = prefix
    for key in [key for key in state_dict if key.startswith(prefix)]:
        del state_dict[key]


def _forget_missing_keys(module: 'BEVTTokenizer', incompatible_keys) -> None:
    """``load_state_dict`` post-hook: the tokenizer's keys are never
    missing."""
    missing = incompatible_keys.missing_keys
    missing[:] = [k for k in missing if not k.startswith(module._prefix)]


class BEVTTokenizer(BaseModule):
    """Base of the frozen target generators of `BEVT: BERT Pretraining of
    Video Transformers <https://arxiv.org/abs/2112.01529>`_.

    A subclass builds the wrapped encoder, calls :meth:`_freeze` and
    implements :meth:`_encode` for a batch of images. This class folds clip
    frames into the batch, encodes only the frames that have a needed cell,
    at the requested precision (optionally through ``torch.compile``), and
    keeps the module frozen: no parameter requires a gradient,
    :meth:`forward` runs under ``torch.no_grad()``, the module stays in
    ``eval()`` mode, and its weights are never in a
    ``state_dict()`` (nor loaded from one, nor reported missing): they come
    only from ``init_cfg=dict(type='Pretrained', checkpoint=...)``.

    Args:
        dtype (str, optional): Precision of the encoder: None runs it in
            full precision (any surrounding autocast disabled);
            ``'float16'`` / ``'bfloat16'`` run it under
            ``torch.autocast`` of that dtype; ``'auto'`` is float16 on CUDA
            (the official DALL-E runs its convolutions in float16) and full
            precision elsewhere. Defaults to None.
        channels_last (bool): Encoder weights and inputs in the
            ``channels_last`` memory format. Defaults to False.
        compile (bool | dict): Run :meth:`_encode` through
            ``torch.compile`` (it fuses the activations and residual sums
            around the convolutions; the same ids); a dict gives its
            arguments. Compiled at the first call. Defaults to False.
        init_cfg (dict | list[dict], optional): Only ``Pretrained`` is
            meaningful; subclasses hand it to the wrapped encoder.
            Defaults to None.
    """

    #: int, optional: Size of the id vocabulary; None for feature targets.
    vocab_size: Optional[int] = None
    #: int, optional: Channels of feature targets; None for id tokenizers.
    target_dims: Optional[int] = None
    #: int: Pixels per target cell along each side of the input.
    downsample: int = 1
    #: bool: Whether the module has weights that must be loaded.
    has_weights: bool = True

    def __init__(self,
                 dtype: Optional[str] = None,
                 channels_last: bool = False,
                 compile: Union[bool, dict] = False,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__()
        if dtype not in (None, 'auto', *_DTYPES):
            raise ValueError(f'Invalid dtype: {dtype!r}; expected None, '
                             f"'auto', 'float16' or 'bfloat16'")
        if not isinstance(channels_last, bool):
            raise ValueError(
                f'Invalid channels_last: {channels_last!r}; expected a bool')
        if not isinstance(compile, (bool, dict)):
            raise ValueError(f'Invalid compile: {compile!r}; expected a bool '
                             'or a dict of torch.compile arguments')
        if init_cfg is not None and not isinstance(init_cfg,
                                                   (dict, list, tuple)):
            raise ValueError(f'Invalid init_cfg: {init_cfg!r}')
        self.dtype = dtype
        self.channels_last = channels_last
        self.compile_options = compile
        self._compiled_encode: Optional[Callable] = None
        cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
        self.pretrained = any(
            cfg is not None and cfg.get('type') == 'Pretrained'
            for cfg in cfgs)
        self._prefix = ''
        self.register_state_dict_post_hook(_drop_own_keys)
        self.register_load_state_dict_pre_hook(_drop_own_keys)
        self.register_load_state_dict_post_hook(_forget_missing_keys)

    def _freeze(self) -> None:
        """Freeze the built encoder (subclasses call it last in
        ``__init__``)."""
        self.requires_grad_(False)
        if self.channels_last:
            self.to(memory_format=torch.channels_last)
        super().train(False)

    def train(self, mode: bool = True) -> 'BEVTTokenizer':
        """Stay in eval mode whatever ``mode`` is.

        Args:
            mode (bool): Ignored. Defaults to True.

        Returns:
            BEVTTokenizer: ``self``.
        """
        return super().train(False)

    def init_weights(self) -> None:
        """Load the weights of ``init_cfg``, or warn that there are none."""
        if self.has_weights and not self.pretrained:
            print_log(
                f'{self.__class__.__name__} is randomly initialised: no '
                'init_cfg=dict(type="Pretrained", checkpoint=...) was given, '
                'so its targets are meaningless (fine for tests only).',
                logger='current',
                level=logging.WARNING)
        super().init_weights()

    def resolved_dtype(self, device_type: str) -> Optional[str]:
        """``dtype`` on ``device_type`` ('auto' resolved); None = full
        precision."""
        if self.dtype == 'auto':
            return 'float16' if device_type == 'cuda' else None
        return self.dtype

    def _check_input(self, x: Tensor, cell_mask: Optional[Tensor]) -> None:
        """Raise a ``ValueError`` for inputs :meth:`forward` cannot take."""
        if x.dim() not in (4, 5):
            raise ValueError(
                f'Invalid input shape: {tuple(x.shape)}; expected images '
                '(N, 3, h, w) or clips (N, 3, T, h, w)')
        h, w = x.shape[-2:]
        if h % self.downsample or w % self.downsample:
            raise ValueError(f'Invalid input size: {(h, w)}; both sides '
                             f'must be multiples of {self.downsample}')
        grid = (x.shape[0], ) + tuple(
            x.shape[2:-2]) + (h // self.downsample, w // self.downsample)
        if cell_mask is not None and (cell_mask.dtype != torch.bool
                                      or tuple(cell_mask.shape) != grid):
            raise ValueError(
                f'Invalid cell_mask: {cell_mask.dtype} '
                f'{tuple(cell_mask.shape)}; expected torch.bool {grid}')

    def _encode(self,
                images: Tensor,
                cells: Optional[Tensor] = None) -> Tensor:
        """Encode a batch of images (implemented by subclasses).

        Args:
            images (Tensor): Float images of shape (B, 3, h, w).
            cells (Tensor, optional): Bool (B, h/d, w/d); True = the target
                of this cell is needed. An encoder may skip the others
                (their output is overwritten). Defaults to None (all).

        Returns:
            Tensor: int64 ids of shape (B, h/d, w/d), or float features of
            shape (B, h/d, w/d, D), with d = ``downsample``.
        """
        raise NotImplementedError

    def __getstate__(self) -> dict:
        """Copies and pickles compile their own :meth:`_encode`."""
        state = dict(super().__getstate__())
        state['_compiled_encode'] = None
        return state

    def _encoder(self) -> Callable:
        """:meth:`_encode`, or its compiled version with ``compile``."""
        if not self.compile_options:
            return self._encode
        if self._compiled_encode is None:
            options = {} if self.compile_options is True else dict(
                self.compile_options)
            self._compiled_encode = torch.compile(self._encode, **options)
        return self._compiled_encode

    @torch.no_grad()
    def forward(self, x: Tensor, cell_mask: Optional[Tensor] = None) -> Tensor:
        """Targets of images or clips.

        Args:
            x (Tensor): Images (N, 3, h, w) or clips (N, 3, T, h, w),
                normalised for the encoder by the data preprocessor; h and w
                are multiples of ``downsample``.
            cell_mask (Tensor, optional): Bool (N, [T,] h/d, w/d); True =
                the target of this cell is needed (BEVT passes its
                ``target_mask``). Frames without such a cell are not
                encoded, and every cell that is not needed is filled with -1
                (ids) or 0 (features). Defaults to None (all needed).

        Returns:
            Tensor: Detached int64 ids in [0, vocab_size) of shape
            (N, [T,] h/d, w/d), or float32 features of shape
            (N, [T,] h/d, w/d, D), with d = ``downsample`` and D =
            ``target_dims``.
        """
        self._check_input(x, cell_mask)
        lead = x.shape[:1] if x.dim() == 4 else (x.shape[0], x.shape[2])
        frames = x if x.dim() == 4 else x.transpose(1, 2).flatten(0, 1)
        shape = (len(frames), frames.shape[-2] // self.downsample,
                 frames.shape[-1] // self.downsample)  # F = N or N*T frames
        if self.target_dims is None:  # (F, h/d, w/d)
            out = x.new_full(shape, -1, dtype=torch.long)
        else:  # (F, h/d, w/d, D)
            out = x.new_zeros(shape + (self.target_dims, ))
        cells = None if cell_mask is None else cell_mask.reshape(shape)
        # the frames with a needed cell
        keep = slice(None) if cells is None else cells.flatten(1).any(1)
        images = frames[keep].float()  # (F', 3, h, w)
        if len(images):
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            dtype = self.resolved_dtype(x.device.type)
            with torch.autocast(
                    x.device.type,
                    dtype=_DTYPES.get(dtype),
                    enabled=dtype is not None):
                out[keep] = self._encoder()(
                    images, None if cells is None else cells[keep])
        if cells is not None:
            out[~cells] = -1 if self.target_dims is None else 0
        return out.view(*lead, *out.shape[1:])
