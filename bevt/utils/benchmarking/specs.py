# Copyright (c) bevt contributors. All rights reserved.
"""Config reading and edits of ``tools/analysis_tools/benchmark.py``: the
streams of a pretraining config (:class:`StreamSpec`), size overrides, "the
official way" and random init. The batches made from the streams are in
:mod:`.batches`."""
import argparse
import inspect
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from bevt.utils.config_streams import (loader_pipelines, pipeline_stream,
                                       transform_type)

#: The "official way" of the reference implementation, as model settings:
#: (config path, value); each is applied where the built class accepts it.
OFFICIAL_SETTINGS = (
    ('model.backbone.fused_attention', 'reference'),
    ('model.tokenize_all_frames', True),
    ('model.tokenizer_first', False),  # the tokenizer is in the head
    ('model.joint_streams', False),  # one backbone pass per stream
    ('model.joint_tokenizer', True),  # torch.cat((imgs_3d, imgs_2d))
    ('model.head.gather_masked', False),
    ('model.target_generator.dtype', None),
    ('model.target_generator.channels_last', False),
    ('model.target_generator.inplace', False),
    # every frame of the step in one batch (96 at 4 clips + 32 images)
    ('model.target_generator.chunk_size', 4096),
    ('model.target_generator.stage_bytes', None),
)
#: ... and as the optimizer wrapper's constructor: one param group per
#: parameter (mmcv's and mmengine's default constructors), applied where the
#: config names ours.
OFFICIAL_CONSTRUCTOR = ('BEVTOptimWrapperConstructor',
                        'DefaultOptimWrapperConstructor')
#: ... and its AdamW unfused (one kernel per op and parameter, or foreach),
#: applied where the config fuses it
OFFICIAL_OPTIMIZER = ('fused', False)
ARCH_KEYS = ('embed_dims', 'depths', 'num_heads')


def official_kwargs(prefix: str = 'model') -> Dict[str, Any]:
    """:data:`OFFICIAL_SETTINGS` below ``prefix`` as nested keyword
    arguments, e.g. ``official_kwargs('model.target_generator')`` ->
    ``dict(dtype=None, ..., stage_bytes=None)``."""
    kwargs: Dict[str, Any] = {}
    for key, value in OFFICIAL_SETTINGS:
        if not key.startswith(prefix + '.'):
            continue
        *parents, name = key[len(prefix) + 1:].split('.')
        level = kwargs
        for parent in parents:
            level = level.setdefault(parent, {})
        level[name] = value
    return kwargs


CROP_KEYS = ('size', 'crop_size')


# ----------------------------------------------------------------------
# config handling
def parse_arch(text: str) -> Dict[str, Any]:
    """Parse ``--arch``.

    Args:
        text (str): A JSON object with the keys of :data:`ARCH_KEYS`.

    Returns:
        dict: The arch.

    Raises:
        ValueError: If it is not such an object.
    """
    try:
        arch = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f'Invalid --arch JSON {text!r}: {err}') from None
    if not isinstance(arch, dict) or set(arch) != set(ARCH_KEYS):
        raise ValueError(f'Invalid --arch {text!r}: expected a JSON object '
                         f'with exactly the keys {ARCH_KEYS}')
    depths, heads = arch['depths'], arch['num_heads']
    if not (isinstance(depths, list) and isinstance(heads, list)
            and len(depths) == len(heads) >= 2
            and isinstance(arch['embed_dims'], int)):
        raise ValueError(f'Invalid --arch {text!r}: embed_dims must be an '
                         'int, depths and num_heads lists of one length >= 2')
    return arch


def _pair(value: Any, name: str) -> Tuple[int, int]:
    """``s`` or ``(h, w)`` as ``(h, w)``."""
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 \
            and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f'Invalid {name}: {value!r}; expected an int or (h, w)')


def _defaults(name: str) -> Dict[str, Any]:
    """Constructor defaults of a registered bevt transform."""
    from bevt.registry import TRANSFORMS

    cls = TRANSFORMS.get(name)
    return {
        k: p.default
        for k, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


@dataclass
class StreamSpec:
    """The shapes of one stream's synthetic samples.

    Args:
        stream (str): 'video' or 'img'.
        batch_size (int): The config loader's batch size.
        crop (Tuple[int, int]): Model view (H, W).
        view (Tuple[int, int]): Tokenizer view (h, w).
        mask_args (dict): Arguments of the mask generator transform.
        clip_len (int, optional): Frames per clip; None for images.
    """

    stream: str
    batch_size: int
    crop: Tuple[int, int]
    view: Tuple[int, int]
    mask_args: Dict[str, Any] = field(default_factory=dict)
    clip_len: Optional[int] = None

    def describe(self, num: int) -> str:
        """One line for the report, for ``num`` samples."""
        grid = _pair(self.mask_args['input_size'], 'input_size')
        frames = f'{self.clip_len}x' if self.clip_len else ''
        if self.clip_len:
            slots = self.clip_len // self.mask_args['temporal_patch']
            masks = f'tube masks {slots}x{grid[0]}x{grid[1]}'
        else:
            masks = f'block masks {grid[0]}x{grid[1]}'
        name = 'clip(s)' if self.clip_len else 'image(s)'
        return (f'{num} {name} 3x{frames}{self.crop[0]}x{self.crop[1]}, '
                f'tokenizer view {self.view[0]}x{self.view[1]}, {masks} '
                f'(<= {self.mask_args["num_masking_patches"]} cells)')


def stream_specs(cfg: Any) -> Dict[str, StreamSpec]:
    """Read the shapes of each stream from the config's train pipelines.

    Args:
        cfg (Config): The config.

    Returns:
        dict: ``{'video': StreamSpec, 'img': StreamSpec}`` for the streams
        the config has.

    Raises:
        ValueError: If a pipeline lacks a crop size or tokenizer view.
    """
    specs = {}
    for loader, pipeline in loader_pipelines(cfg):
        stream = pipeline_stream(pipeline)
        if stream is None or stream in specs:
            continue
        crop = view = clip_len = None
        mask_name = 'BEVTTubeMaskGenerator' if stream == 'video' \
            else 'BEVTBlockMaskGenerator'
        mask_args = _defaults(mask_name)
        for t in pipeline:
            kind = transform_type(t)
            for key in CROP_KEYS:
                if key in t and kind != 'BEVTTokenizerView':
                    crop = _pair(t[key], f'{kind}.{key}')
            if kind == 'Resize' and t.get('keep_ratio') is False:
                w, h = _pair(t['scale'], 'Resize.scale')  # mmaction (w, h)
                crop = (h, w)
            if kind == 'BEVTTokenizerView':
                view = _pair(
                    t.get('size',
                          _defaults(kind).get('size')), 'tokenizer view')
            if t.get('clip_len') is not None and kind != mask_name:
                clip_len = int(t['clip_len']) * int(t.get('num_clips', 1))
            if kind == mask_name:
                mask_args.update({k: v for k, v in t.items() if k != 'type'})
        if crop is None:
            raise ValueError(f'No crop size found in the {stream} pipeline '
                             '(RandomCrop/CenterCrop/Resize); pass --crop')
        if view is None:
            raise ValueError(f'No BEVTTokenizerView in the {stream} '
                             'pipeline: the model needs a tokenizer view')
        if stream == 'video':
            clip_len = mask_args.get('clip_len') or clip_len
            if clip_len is None:
                raise ValueError('No clip_len in the video pipeline; pass '
                                 '--clip-len')
            mask_args['clip_len'] = clip_len
        specs[stream] = StreamSpec(stream, int(loader.get('batch_size', 1)),
                                   crop, view, mask_args, clip_len)
    return specs


def apply_size_overrides(cfg: Any, args: argparse.Namespace) -> List[str]:
    """Apply ``--arch``, ``--tokenizer-n-hid``, ``--clip-len``, ``--crop``.

    Args:
        cfg (Config): Edited in place.
        args (argparse.Namespace): The arguments.

    Returns:
        list[str]: What was changed, for the report.
    """
    notes = []
    model = cfg.model
    if args.arch is not None:
        arch = parse_arch(args.arch)
        model.backbone.arch = arch
        if 'in_channels' in model.get('head', {}):
            model.head.in_channels = arch['embed_dims'] * 2**(
                len(arch['depths']) - 1)
        notes.append(f'backbone arch={arch}')
    if args.tokenizer_n_hid is not None:
        generator = model.target_generator
        if transform_type(generator) != 'BEVTDALLETokenizer':
            raise ValueError('--tokenizer-n-hid needs a BEVTDALLETokenizer, '
                             f'the config has {generator.get("type")}')
        encoder = dict(generator.get('encoder') or {})
        encoder['n_hid'] = args.tokenizer_n_hid
        generator.encoder = encoder
        notes.append(f'tokenizer n_hid={args.tokenizer_n_hid}')
    if args.clip_len is not None:
        for _, pipeline in loader_pipelines(cfg):
            for t in pipeline:
                if t.get('clip_len') is not None:
                    t['clip_len'] = args.clip_len
        notes.append(f'clip_len={args.clip_len}')
    if args.crop is not None:
        _apply_crop(cfg, args.crop)
        notes.append(f'crop={args.crop}')
    return notes


def _apply_crop(cfg: Any, crop: int) -> None:
    """Set the crop of every train pipeline, scaling what depends on it."""
    specs = stream_specs(cfg)
    for _, pipeline in loader_pipelines(cfg):
        stream = pipeline_stream(pipeline)
        if stream is None:
            continue
        old = specs[stream]
        scale = crop / old.crop[0]
        grid = _pair(old.mask_args['input_size'], 'input_size')
        new_grid = max(int(round(grid[0] * scale)), 1)
        area = new_grid**2 / (grid[0] * grid[1])
        for t in pipeline:
            kind = transform_type(t)
            for key in CROP_KEYS:
                if key in t and kind != 'BEVTTokenizerView':
                    t[key] = crop
            if kind == 'Resize' and t.get('keep_ratio') is False:
                t['scale'] = (crop, crop)
            if kind == 'BEVTTokenizerView':
                t['size'] = max(int(round(old.view[0] * scale)), 1)
            if kind in ('BEVTTubeMaskGenerator', 'BEVTBlockMaskGenerator'):
                t['input_size'] = new_grid
                for key in ('num_masking_patches', 'min_num_patches',
                            'max_num_patches'):
                    value = t.get(key, old.mask_args.get(key))
                    if value is not None:
                        t[key] = max(int(round(value * area)), 1)


def _accepts(type_name: str, key: str) -> bool:
    """Whether the registered class ``type_name`` takes argument ``key``."""
    from bevt.registry import MODELS

    cls = MODELS.get(type_name)
    return cls is not None and key in inspect.signature(
        cls.__init__).parameters


def apply_official(cfg: Any) -> List[str]:
    """Switch the model config to "the official way" where applicable.

    Args:
        cfg (Config): Edited in place.

    Returns:
        list[str]: The settings applied, as ``key=value``.
    """
    applied = []
    for key, value in OFFICIAL_SETTINGS:
        path = key.split('.')
        parent = cfg
        for name in path[:-1]:
            parent = parent.get(name)
        if parent is None or not _accepts(parent['type'], path[-1]):
            continue
        parent[path[-1]] = value
        applied.append(f'{".".join(path[1:])}={value}')
    wrapper = cfg.get('optim_wrapper')
    ours, default = OFFICIAL_CONSTRUCTOR
    if wrapper is not None and wrapper.get('constructor') == ours:
        wrapper['constructor'] = default
        applied.append(f'optim_wrapper.constructor={default}')
    optimizer = None if wrapper is None else wrapper.get('optimizer')
    key, value = OFFICIAL_OPTIMIZER
    if optimizer is not None and optimizer.get(key):
        optimizer[key] = value
        applied.append(f'optim_wrapper.optimizer.{key}={value}')
    return applied


def make_random_init(cfg: Any) -> None:
    """Drop the tokenizer's ``init_cfg`` and the backbone's checkpoint."""
    generator = cfg.model.get('target_generator')
    if generator is not None and 'init_cfg' in generator:
        generator.init_cfg = None
    backbone = cfg.model.get('backbone')
    if backbone is not None and backbone.get('pretrained') is not None:
        backbone.pretrained = None
