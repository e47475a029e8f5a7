# Copyright (c) bevt contributors. All rights reserved.
"""CUDA's autocast without a GPU: a forward pass on fake CUDA tensors.

Autocast's policies differ per device (CUDA runs ``layer_norm``, ``sum``
and ``softmax`` in float32 and promotes ``addcmul``; the CPU's autocast does
none of these), so the casts of a CUDA step cannot be counted by running it
on the CPU. Fake tensors (:class:`torch._subclasses.FakeTensorMode`) carry a
CUDA device without memory or a GPU, and the dispatcher applies CUDA's
autocast to them once it is switched on (``torch.autocast('cuda')`` itself
refuses without a GPU): the operators of a CUDA forward, with their dtypes,
are then seen by a dispatch mode such as :func:`~.op_count.count_ops`. The
autograd engine needs a real device for CUDA tensors, so the backward's
nodes are called one by one instead
(:func:`~.fake_backward.backward_by_hand`); what the forward keeps for it is
measured too (:class:`SavedTensorBytes`).
``tools/analysis_tools/benchmark.py --fake-cuda`` counts a config's
backbone this way (:func:`fake_cuda_backbone_counts`).
"""
import argparse
import functools
import sys
import warnings
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional, Tuple


def clear_shape_caches() -> None:
    """Clear the ``functools.lru_cache`` functions of bevt's and mmaction2's
    modules (window orders, shift masks, keep probabilities...), e.g. of
    the fake tensors that a fake CUDA pass put in them."""
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(('bevt.', 'mmaction.')):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, functools._lru_cache_wrapper):
                value.cache_clear()


@contextmanager
def fake_cuda_autocast(module: Any,
                       dtype: Optional[Any] = 'bfloat16',
                       device: str = 'cuda') -> Iterator[Any]:
    """``module``'s parameters and buffers as fake CUDA tensors, under a
    fake tensor mode with CUDA's autocast to ``dtype`` on (None: off).

    Inside, make the inputs on the yielded device (``torch.randn(...,
    device=device)``) and run the forward. Autocast's cache of weight casts
    lasts until the context ends (``torch.clear_autocast_cache()`` between
    passes counts each as a step would). On exit the module is left with
    its fake tensors (build a new one to run for real), autocast is as it
    was and :func:`clear_shape_caches` drops the caches the pass filled.

    Args:
        module (nn.Module): The model (its parameters are replaced).
        dtype (torch.dtype | str, optional): Autocast dtype (a dtype or its
            name in ``torch``); None runs without autocast. Defaults to
            'bfloat16'.
        device (str): The fake device. Defaults to 'cuda'.

    Yields:
        torch.device: The device to make inputs on.
    """
    import torch
    import torch.nn as nn
    from torch._subclasses.fake_tensor import FakeTensorMode

    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    try:
        # a disabled autocast context (it refuses to enable itself without
        # a GPU), then switched on: nested as under a real one (inner
        # contexts keep the weight cache) and undone on exit
        with mode, warnings.catch_warnings(), \
                torch.autocast('cuda', enabled=False):
            # bevt's per-buffer caches key on data pointers (fake: none)
            warnings.filterwarnings('ignore', 'Accessing the data pointer')
            for sub in module.modules():
                for name, param in list(sub.named_parameters(recurse=False)):
                    fake = mode.from_tensor(param).to(device)
                    setattr(sub, name, nn.Parameter(fake, param.requires_grad))
                for name, buf in list(sub.named_buffers(recurse=False)):
                    setattr(sub, name, mode.from_tensor(buf).to(device))
            if dtype is not None:
                torch.set_autocast_dtype('cuda', dtype)
                torch.set_autocast_enabled('cuda', True)
            yield torch.device(device)
    finally:
        clear_shape_caches()


class SavedTensorBytes:
    """Bytes of the distinct storages that autograd keeps for the backward
    of the forward run inside ``with meter:`` (a ``saved_tensors_hooks``
    pack hook; views of one storage count once). Works on fake tensors."""

    def __init__(self) -> None:
        self.storages: Dict[int, int] = {}
        self._hooks: Any = None

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())

    def _pack(self, tensor: Any) -> Any:
        storage = tensor.untyped_storage()
        key = storage._cdata
        self.storages[key] = max(self.storages.get(key, 0), storage.nbytes())
        return tensor

    def __enter__(self) -> 'SavedTensorBytes':
        import torch

        self._hooks = torch.autograd.graph.saved_tensors_hooks(
            self._pack, lambda tensor: tensor)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._hooks.__exit__(*exc)


def fake_cuda_backbone_counts(backbone: Any,
                              videos: int,
                              images: int,
                              clip_len: int,
                              video_crop: Tuple[int, int],
                              image_crop: Tuple[int, int],
                              dtype: Optional[Any],
                              joint: bool = True) -> Dict[str, Any]:
    """Operators, casts and saved bytes of one forward of ``backbone`` on
    both streams under CUDA's autocast, on fake CUDA tensors, and the
    operators of its backward.

    One forward fills the caches (window orders, masks), then one more is
    counted with autocast's weight cache emptied, as at the start of a
    step. The backward is counted from a further forward, from every
    output (the gradients a head would give), by
    :func:`~.fake_backward.backward_by_hand`, which runs the operators the
    autograd engine runs (tested on the CPU against the engine). The
    attention counts as CUDA's fused kernels run it: one operator each way,
    keeping its inputs (:func:`~.op_count.count_ops`).

    Args:
        backbone (nn.Module): A ``BEVTSwinTransformer3D`` (its parameters
            become fake tensors).
        videos (int): Clips (0: no video stream).
        images (int): Images (0: no image stream).
        clip_len (int): Frames per clip.
        video_crop (tuple[int, int]): (H, W) of the clips.
        image_crop (tuple[int, int]): (H, W) of the images.
        dtype (torch.dtype, optional): Autocast dtype; None: float32.
        joint (bool): Both streams in one call (``BEVT(joint_streams=True)``)
            or one call each. Defaults to True.

    Returns:
        dict: ``operators`` (total), ``casts`` (``_to_copy``),
        ``saved_bytes`` and ``ops`` (calls per operator name) of the
        forward; ``backward_operators``, ``backward_casts`` and
        ``backward_ops`` of the backward.
    """
    from collections import Counter

    import torch

    from .fake_backward import backward_by_hand
    from .op_count import count_ops

    backbone.train()
    patch, scale = backbone.patch_size, backbone.mask_scale

    def grid(crop):  # the mask grid of a view
        return (crop[0] // (patch[1] * scale), crop[1] // (patch[2] * scale))

    with fake_cuda_autocast(backbone, dtype) as device:
        inputs, masks = [], []
        if videos:
            inputs.append(
                torch.randn(videos, 3, clip_len, *video_crop, device=device))
            masks.append(
                torch.rand(
                    videos,
                    clip_len // patch[0],
                    *grid(video_crop),
                    device=device) > 0.5)
        if images:
            inputs.append(torch.randn(images, 3, *image_crop, device=device))
            masks.append(
                torch.rand(images, *grid(image_crop), device=device) > 0.5)

        def forward():
            if joint:
                return backbone(inputs, masks)
            return [backbone(x, mask) for x, mask in zip(inputs, masks)]

        def step():  # the forward, then its backward from every output
            outs = [o for o in forward() if o.requires_grad]
            backward_by_hand(outs, [torch.empty_like(o) for o in outs])

        forward()
        torch.clear_autocast_cache()
        counts = Counter(count_ops(forward))
        torch.clear_autocast_cache()
        # the step's forward keeps what CUDA's would (count_ops runs each
        # attention as one operator keeping its inputs); its backward, with
        # grad mode off, keeps nothing
        with SavedTensorBytes() as saved:
            backward = Counter(count_ops(step)) - counts
    ops, backward = ({
        k: n
        for k, n in c.items() if not k.startswith('host_sync.')
    } for c in (counts, backward))
    return dict(
        operators=sum(ops.values()),
        casts=ops.get('_to_copy', 0),
        saved_bytes=saved.bytes,
        ops=ops,
        backward_operators=sum(backward.values()),
        backward_casts=backward.get('_to_copy', 0),
        backward_ops=backward)


def fake_cuda_benchmark(cfg: Any, args: argparse.Namespace,
                        specs: Dict[str, Any]) -> Dict[str, Any]:
    """``--fake-cuda`` of ``tools/analysis_tools/benchmark.py``: print and
    return :func:`fake_cuda_backbone_counts` of the config's backbone on
    ``--videos`` clips and ``--images`` images (default: the config's
    batch sizes) under ``--amp`` (default bf16; 'none': float32)."""
    import torch

    from bevt.registry import MODELS
    from .batches import stream_counts
    from .measure import quiet_logger

    counts = stream_counts(specs, args.videos, args.images, 'count')
    amp = args.amp or 'bf16'
    dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(amp)
    torch.manual_seed(args.seed)
    with quiet_logger():
        backbone = MODELS.build(cfg.model.backbone)
    video, image = specs.get('video'), specs.get('img')
    result = fake_cuda_backbone_counts(
        backbone,
        counts.get('video', 0),
        counts.get('img', 0),
        video.clip_len if video else 0,
        video.crop if video else (0, 0),
        image.crop if image else (0, 0),
        dtype,
        joint=cfg.model.get('joint_streams', True))
    print('batch: ' + '; '.join(specs[s].describe(n)
                                for s, n in counts.items() if n))
    print(f'precision: CUDA autocast {amp}'
          if dtype is not None else 'precision: float32')
    print('streams: ' +
          ('one backbone call for both' if cfg.model.
           get('joint_streams', True) else 'one backbone call each'))
    print('counted: the second forward (caches filled by the first), '
          'autocast\'s weight cache emptied as at a step\'s start, and its '
          'backward from every output (autocast off, as in a training '
          'step), its nodes called one by one as the autograd engine would '
          '(the engine itself needs a GPU); an attention is one operator '
          'each way keeping its inputs, as CUDA\'s fused kernels\n')
    print(f'{"":20}{"forward":>9}{"backward":>10}')
    for label, key in (('operators', 'operators'), ('casts (_to_copy)',
                                                    'casts')):
        print(f'{label:20}{result[key]:9d}{result["backward_" + key]:10d}')
    print(f'saved for backward  {result["saved_bytes"] / 1e9:.2f} GB')
    for name, ops in (('forward', result['ops']), ('backward',
                                                   result['backward_ops'])):
        top = sorted(ops.items(), key=lambda kv: -kv[1])[:12]
        print(f'most called ({name}): ' + ', '.join(f'{k} {n}'
                                                    for k, n in top))
    return dict(
        mode='fake-cuda',
        amp=amp,
        videos=counts.get('video', 0),
        images=counts.get('img', 0),
        **result)
