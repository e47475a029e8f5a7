# Copyright (c) bevt contributors. All rights reserved.
"""The frozen-tokenizer contract shared by every BEVT target generator."""
import logging
from contextlib import contextmanager
from typing import Iterator, Optional, Union

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor

from bevt.utils.typing_utils import OptMultiConfig
from .frames import TokenizerPlan, check_mask, gather_frames, needed_frames

_DTYPES = {'float16': torch.float16, 'bfloat16': torch.bfloat16}


def is_pretrained_cfg(init_cfg: OptMultiConfig) -> bool:
    """Whether ``init_cfg`` holds a ``Pretrained`` entry.

    Args:
        init_cfg (dict | list[dict], optional): An mmengine init config.

    Returns:
        bool: True if one of its entries has ``type='Pretrained'``.
    """
    if init_cfg is None:
        return False
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    return any(cfg.get('type') == 'Pretrained' for cfg in cfgs)


def check_int(name: str, value: int, minimum: int = 1) -> None:
    """Raise a ``ValueError`` naming ``name`` unless ``value`` is an int
    (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) \
            or value < minimum:
        raise ValueError(
            f'Invalid {name}: {value!r}; expected an int >= {minimum}')


def _drop_state_keys(module: 'BEVTTokenizer', state_dict: dict, prefix: str,
                     local_metadata: dict) -> None:
    """``state_dict`` post-hook: remove every key of the tokenizer."""
    for key in [key for key in state_dict if key.startswith(prefix)]:
        del state_dict[key]


def _ignore_loaded_keys(module: 'BEVTTokenizer', state_dict: dict, prefix: str,
                        *args) -> None:
    """``load_state_dict`` pre-hook: skip tokenizer keys of the source.

    The keys are removed from the (copied) source dict, so an old checkpoint
    that still carries tokenizer weights neither overwrites the tokenizer nor
    reports them as unexpected. The prefix is remembered for the post-hook,
    which does not receive it.
    """
    module._loaded_prefix = prefix
    for key in [key for key in state_dict if key.startswith(prefix)]:
        del state_dict[key]


def _forget_missing_keys(module: 'BEVTTokenizer', incompatible_keys) -> None:
    """``load_state_dict`` post-hook: tokenizer keys are never missing."""
    prefix = module.__dict__.get('_loaded_prefix')
    if prefix is None:
        return
    missing = incompatible_keys.missing_keys
    missing[:] = [key for key in missing if not key.startswith(prefix)]


class BEVTTokenizer(BaseModule):
    """Base class of the frozen target generators of `BEVT: BERT Pretraining
    of Video Transformers <https://arxiv.org/abs/2112.01529>`_.

    A subclass builds the wrapped encoder in ``__init__``, calls
    :meth:`_freeze` and implements :meth:`_encode` for one chunk of images.
    This class folds clip frames into the batch, skips frames that
    ``frame_mask`` (or ``cell_mask``) marks as not needed, hands the needed
    cells of each frame to :meth:`_encode` (which may compute only those),
    encodes in chunks of ``chunk_size`` frames under the requested
    precision, and keeps the module frozen:

    - every parameter has ``requires_grad=False``, :meth:`forward` runs
      under ``torch.no_grad()`` and the module stays in ``eval()`` mode
      even after ``train()`` on it or on a parent;
    - its weights never appear in a ``state_dict()`` (of itself or of a
      parent module), and ``load_state_dict`` of a parent neither reports
      them as missing nor loads them from a checkpoint that carries them:
      they come only from ``init_cfg=dict(type='Pretrained', ...)``.

    Args:
        dtype (str, optional): Precision of the encoder: ``None`` runs it in
            full precision with any surrounding autocast disabled, and
            ``'float16'`` / ``'bfloat16'`` run it under
            ``torch.autocast(device_type=x.device.type, dtype=...)``.
            A device whose autocast does not support the dtype raises a
            ``RuntimeError`` in :meth:`forward` (recent torch supports both
            on CPU, float16 being slow there). ``'auto'`` picks per input
            device: bfloat16 on a CUDA GPU that supports it, float16 on
            other CUDA GPUs, full precision elsewhere (so CPU targets equal
            those of ``None``). Defaults to None.
        channels_last (bool): Convert the encoder weights and each input
            chunk to the ``channels_last`` memory format. Defaults to False.
        chunk_size (int | str): Number of images (frames) encoded at once,
            which bounds the memory of the encoder activations and logits;
            ``'auto'``: 64 on CUDA, :attr:`cpu_chunk_size` elsewhere.
            Defaults to 64.
        init_cfg (dict | list[dict], optional): Initialization config dict.
            Only ``Pretrained`` is meaningful; subclasses hand it to the
            wrapped encoder. Defaults to None.
    """

    #: int, optional: Size of the id vocabulary; None for feature targets.
    vocab_size: Optional[int] = None
    #: int, optional: Channels of feature targets; None for id tokenizers.
    target_dims: Optional[int] = None
    #: int: Pixels per target cell along each side of the input.
    downsample: int = 1
    #: bool: Whether the module has weights that must be loaded.
    has_weights: bool = True
    #: int: Frames per chunk for ``chunk_size='auto'`` off CUDA.
    cpu_chunk_size: int = 64

    def __init__(self,
                 dtype: Optional[str] = None,
                 channels_last: bool = False,
                 chunk_size: Union[int, str] = 64,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__()
        if dtype is not None and dtype not in (*_DTYPES, 'auto'):
            raise ValueError(f'Invalid dtype: {dtype!r}; expected None, '
                             f'\'auto\' or one of {sorted(_DTYPES)}')
        if not isinstance(channels_last, bool):
            raise ValueError(
                f'Invalid channels_last: {channels_last!r}; expected a bool')
        if chunk_size != 'auto':
            check_int('chunk_size', chunk_size)
        if init_cfg is not None and not isinstance(init_cfg,
                                                   (dict, list, tuple)):
            raise ValueError(f'Invalid init_cfg: {init_cfg!r}')
        self.dtype = dtype
        self.channels_last = channels_last
        self.chunk_size = chunk_size
        self.pretrained = is_pretrained_cfg(init_cfg)
        self.register_state_dict_post_hook(_drop_state_keys)
        self.register_load_state_dict_pre_hook(_ignore_loaded_keys)
        self.register_load_state_dict_post_hook(_forget_missing_keys)

    def _freeze(self) -> None:
        """Freeze the built encoder; subclasses call it at the end of
        ``__init__``."""
        self.requires_grad_(False)
        if self.channels_last:
            self.to(memory_format=torch.channels_last)
        super().train(False)

    def train(self, mode: bool = True) -> 'BEVTTokenizer':
        """Keep the tokenizer in eval mode whatever ``mode`` is.

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

    def _encode(self,
                images: Tensor,
                cells: Optional[Tensor] = None,
                positions: Optional[Tensor] = None) -> Tensor:
        """Encode one chunk of images (implemented by subclasses).

        Args:
            images (Tensor): Float images of shape (B, 3, h, w).
            cells (Tensor, optional): Bool (B, h/d, w/d): the cells whose
                target is needed; an encoder may skip the others (their
                output is overwritten by :meth:`forward`). Defaults to None
                (all).
            positions (Tensor, optional): :meth:`cell_positions` of
                ``cells``, read before the chunk was queued. Defaults to
                None.

        Returns:
            Tensor: int64 ids of shape (B, h/d, w/d), or float features of
            shape (B, h/d, w/d, D) with d = ``downsample``.
        """
        raise NotImplementedError

    def cell_positions(self, cells: Tensor) -> Optional[Tensor]:
        """What :meth:`_encode` reads of a chunk's ``cells`` on the host
        (e.g. their positions: an output size, which makes the host wait
        for the device on CUDA). :meth:`plan` reads it for every chunk
        before any chunk is queued. None (the default) = nothing."""
        return None

    def _check_input(self, x: Tensor) -> None:
        """Raise a ``ValueError`` for an input :meth:`forward` cannot take."""
        if x.dim() not in (4, 5):
            raise ValueError(
                f'Invalid input shape: {tuple(x.shape)}; expected images '
                '(N, 3, h, w) or clips (N, 3, T, h, w)')
        h, w = x.shape[-2:]
        if h % self.downsample or w % self.downsample:
            raise ValueError(f'Invalid input size: {(h, w)}; both sides '
                             f'must be multiples of {self.downsample}')

    #: Which folded frames :meth:`forward` encodes
    #: (:func:`~.frames.needed_frames`)
    needed_frames = staticmethod(needed_frames)

    def resolved_dtype(self, device_type: str) -> Optional[str]:
        """``self.dtype`` on ``device_type``, with ``'auto'`` resolved."""
        if self.dtype != 'auto':
            return self.dtype
        if device_type == 'cuda':
            return 'bfloat16' if torch.cuda.is_bf16_supported() \
                else 'float16'
        return None

    def resolved_chunk_size(self, device_type: str) -> int:
        """``self.chunk_size`` on ``device_type``, with ``'auto'`` resolved."""
        if self.chunk_size != 'auto':
            return self.chunk_size
        return 64 if device_type == 'cuda' else self.cpu_chunk_size

    @contextmanager
    def _precision(self, device_type: str) -> Iterator[None]:
        """Autocast context of ``self.dtype`` on ``device_type``."""
        name = self.resolved_dtype(device_type)
        if name is None:
            with torch.autocast(device_type=device_type, enabled=False):
                yield
            return
        dtype = _DTYPES[name]
        with torch.autocast(device_type=device_type, dtype=dtype):
            if not torch.is_autocast_enabled(device_type):
                raise RuntimeError(
                    f'dtype={name!r} is not supported by autocast on '
                    f'{device_type!r}; use dtype=None on this device')
            yield

    def _encode_frames(self,
                       frames: Tensor,
                       cells: Optional[Tensor] = None,
                       positions: Optional[Tensor] = None) -> Tensor:
        """Encode one chunk in the configured precision and memory format.

        Args:
            frames (Tensor): Images of shape (B, 3, h, w).
            cells (Tensor, optional): See :meth:`_encode`.
            positions (Tensor, optional): See :meth:`_encode`.

        Returns:
            Tensor: See :meth:`_encode`.
        """
        frames = frames.float()
        if self.channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        with self._precision(frames.device.type):
            return self._encode(frames, cells, positions)

    @torch.no_grad()
    def plan(self,
             x: Tensor,
             frame_mask: Optional[Tensor] = None,
             cell_mask: Optional[Tensor] = None) -> TokenizerPlan:
        """Read from the masks what :meth:`forward` encodes.

        Everything the host must read from the device for one call (the
        needed frames, and :meth:`cell_positions` of every chunk) is read
        here, so that a caller can plan several calls before it queues any
        of them (on CUDA a read waits for all the work queued before it).
        The arguments are those of :meth:`forward`.

        Returns:
            TokenizerPlan: For ``forward(x, ..., plan=...)``.
        """
        self._check_input(x)
        lead = tuple(x.shape[:1]) if x.dim() == 4 else (x.shape[0], x.shape[2])
        cell_shape = (x.shape[-2] // self.downsample,
                      x.shape[-1] // self.downsample)
        if frame_mask is not None and cell_mask is not None:
            raise ValueError('Give frame_mask or cell_mask, not both')
        check_mask('frame_mask', frame_mask, lead)
        cells = check_mask('cell_mask', cell_mask, lead + cell_shape)
        keep = self.needed_frames(frame_mask, cells)  # (N*T, ) or None
        num_frames = x.shape[0] if x.dim() == 4 else lead[0] * lead[1]
        if cells is not None:
            cells = cells.to(x.device).reshape((num_frames, ) + cell_shape)
        if keep is None:
            index = torch.arange(num_frames, device=x.device)
        else:
            index = keep.to(x.device).nonzero().flatten()
        chunks = index.split(self.resolved_chunk_size(
            x.device.type)) if index.numel() else ()
        chunk_cells = tuple(None if cells is None else cells[chunk]
                            for chunk in chunks)
        positions = tuple(None if c is None else self.cell_positions(c)
                          for c in chunk_cells)
        return TokenizerPlan(num_frames, chunks, cells, chunk_cells, positions)

    @torch.no_grad()
    def forward(self,
                x: Tensor,
                frame_mask: Optional[Tensor] = None,
                cell_mask: Optional[Tensor] = None,
                plan: Optional[TokenizerPlan] = None) -> Tensor:
        """Compute the targets of images or clips.

        Clip frames are folded into the batch (frame t of clip n is image
        ``n * T + t``) and encoded independently, ``chunk_size`` at a time.

        Args:
            x (Tensor): Images of shape (N, 3, h, w) or clips of shape
                (N, 3, T, h, w), already normalised for the encoder by the
                data preprocessor; h and w are multiples of ``downsample``.
            frame_mask (Tensor, optional): Bool, (N,) for images or (N, T)
                for clips; True = this image / frame is needed. Frames that
                are not needed never reach the encoder and their output is
                filled with -1 (ids) or 0 (features). Defaults to None (all
                needed).
            cell_mask (Tensor, optional): Bool, (N, h/d, w/d) for images or
                (N, T, h/d, w/d) for clips; True = the target of this cell
                is needed (BEVT passes its ``target_mask``). Frames without
                such a cell are skipped as with ``frame_mask``, an encoder
                may compute only the needed cells (the DALL-E projection
                does), and every other cell is filled with -1 / 0. Not
                together with ``frame_mask``. Defaults to None (all needed).
            plan (TokenizerPlan, optional): :meth:`plan` of these arguments,
                made earlier; then nothing is read on the host here.
                Defaults to None (planned here).

        Returns:
            Tensor: Detached targets. Id tokenizers give int64 ids in
            [0, vocab_size) of shape (N, h/d, w/d) or (N, T, h/d, w/d);
            feature targets give float32 features of shape
            (N, h/d, w/d, D) or (N, T, h/d, w/d, D), with d = ``downsample``
            and D = ``target_dims``.
        """
        if plan is None:
            plan = self.plan(x, frame_mask, cell_mask)
        lead = tuple(x.shape[:1]) if x.dim() == 4 else (x.shape[0], x.shape[2])
        cell_shape = (x.shape[-2] // self.downsample,
                      x.shape[-1] // self.downsample)
        if plan.num_frames != (lead[0] if x.dim() == 4 else lead[0] * lead[1]):
            raise ValueError(f'the plan is for {plan.num_frames} frames, the '
                             f'input has {tuple(x.shape)}')
        if self.target_dims is None:
            out = x.new_full(
                (plan.num_frames, ) + cell_shape, -1,
                dtype=torch.long)  # (N*T, h/d, w/d)
        else:
            out = x.new_zeros(
                (plan.num_frames, ) + cell_shape + (self.target_dims, ),
                dtype=torch.float32)  # (N*T, h/d, w/d, D)
        for chunk, cells, positions in zip(plan.chunks, plan.chunk_cells,
                                           plan.positions):
            out[chunk] = self._encode_frames(
                gather_frames(x, chunk), cells, positions)
        if plan.cells is not None:  # masked_fill_: no host sync on CUDA
            cells = plan.cells
            fill = ~cells if out.dim() == cells.dim() else ~cells[..., None]
            out.masked_fill_(fill, -1 if self.target_dims is None else 0)
        return out.view(lead + out.shape[1:]).detach()
