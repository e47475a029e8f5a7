# Copyright (c) bevt contributors. All rights reserved.
"""Preflight checks of the values in a config's pipelines and tokenizer.

What :mod:`.preflight` reports besides missing files: the tokenizer view
size against the token grid times the tokenizer's downsampling, and the
mask generators' budgets within their grids, read from the transform and
model configs with the classes' defaults filled in. Nothing is built.
"""
import inspect
import sys
from typing import Any, Callable, Dict, Optional, Tuple

#: Records one problem: ``add(key, message, hint='')``
Add = Callable[..., None]
#: The mask transforms whose ``input_size`` is the token grid
MASK_TRANSFORMS = ('BEVTBlockMaskGenerator', 'BEVTTubeMaskGenerator')


def type_name(cfg: Any) -> str:
    """The class name of a config dict, any scope prefix dropped."""
    if not isinstance(cfg, dict):
        return ''
    return str(cfg.get('type', '')).split('.')[-1]


def is_int(value: Any) -> bool:
    """Whether ``value`` is an int (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(value: Any) -> bool:
    """Whether ``value`` is an int above 0."""
    return is_int(value) and value > 0


def _size_hw(size: Any) -> Optional[Tuple[int, int]]:
    """``size`` as ``(h, w)`` of positive ints, or None if it is not."""
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(
            positive_int(s) for s in size):
        return int(size[0]), int(size[1])
    return None


def _lookup(cfg: dict, registry: Any) -> Optional[Tuple[type, dict]]:
    """The registered class of a transform (or model) config and its
    arguments with the class defaults filled in; None if the class is not
    found. Nothing is built.

    Raises:
        TypeError: The class does not take these arguments.
    """
    try:
        cls = registry.get(str(cfg.get('type')))
    except Exception:  # an unknown scope or a failing import
        cls = None
    if not inspect.isclass(cls):
        return None
    kwargs = {k: v for k, v in cfg.items() if k != 'type'}
    signature = inspect.signature(cls.__init__)
    try:  # `None` stands for `self`
        bound = signature.bind_partial(None, **kwargs)
    except TypeError as err:
        raise TypeError(f'{cls.__name__} does not take these arguments '
                        f'({err})') from None
    bound.apply_defaults()
    args = dict(bound.arguments)
    args.pop(next(iter(signature.parameters)))
    return cls, args


def tokenizer_downsample(model: Any) -> Tuple[Optional[int], str]:
    """Pixels per target cell of a bevt ``model.target_generator`` (None if
    there is none), with its class name."""
    if not isinstance(model, dict):
        return None, ''
    tokenizer = model.get('target_generator')
    if not isinstance(tokenizer, dict):
        return None, ''
    from bevt.registry import MODELS
    try:
        found = _lookup(tokenizer, MODELS)
    except TypeError:  # building the model will say more
        found = None
    if found is None:
        return None, ''
    cls, args = found
    from bevt.models.target_generators.base import BEVTTokenizer
    if not issubclass(cls, BEVTTokenizer):
        return None, cls.__name__
    downsample = args.get('downsample')
    if downsample is None and 'encoder' in args:  # a ViT patch (VQ-KD)
        vit = (args.get('encoder') or {}).get('encoder_config') or {}
        module = sys.modules.get(cls.__module__)
        default = getattr(module, 'VQKD_ENCODER', {}).get('patch_size')
        downsample = vit.get('patch_size', default)
    if downsample is None:
        downsample = cls.downsample
    if not positive_int(downsample):
        return None, cls.__name__
    return int(downsample), cls.__name__


def check_pipeline(add: Add, key: str, pipeline: Any,
                   tokenizer: Callable[[], Tuple[Optional[int], str]]) -> None:
    """The tokenizer view against the token grid, and the mask budgets
    of one dataset's pipeline.

    Args:
        add (callable): Records a problem: ``add(key, message, hint)``.
        key (str): Config key of the dataset.
        pipeline (list): Its transforms.
        tokenizer (callable): Gives ``(pixels per target cell or None,
            class name)`` of the model's tokenizer
            (:func:`tokenizer_downsample`).
    """
    if not isinstance(pipeline, (list, tuple)):
        return
    from bevt.registry import TRANSFORMS
    steps = [(f'{key}.pipeline.{idx}', step)
             for idx, step in enumerate(pipeline) if isinstance(step, dict)]
    clip_lens = [
        step.get('clip_len') for _, step in steps
        if type_name(step) == 'SampleFrames'
    ]
    grids, views = [], []
    for where, step in steps:
        kind = type_name(step)
        if kind not in MASK_TRANSFORMS + ('BEVTTokenizerView', ):
            continue
        try:
            found = _lookup(step, TRANSFORMS)
        except TypeError as err:
            add(where, str(err))
            continue
        if found is None:
            continue
        args = found[1]
        if kind == 'BEVTTokenizerView':
            views.append((where, args))
            continue
        grid = check_mask_budget(add, where, args, clip_lens)
        if grid is not None:
            grids.append((where, grid))
    downsample, tokenizer_name = tokenizer()
    if downsample is None or not grids:
        return
    for where, args in views:
        size = _size_hw(args.get('size'))
        if size is None:
            add(
                f'{where}.size', 'the tokenizer view size must be a '
                f'positive int or (h, w), got {args.get("size")!r}')
            continue
        for mask_key, (grid_h, grid_w) in grids:
            expected = (grid_h * downsample, grid_w * downsample)
            value = expected[0] if grid_h == grid_w else expected
            if size != expected:
                add(
                    f'{where}.size',
                    f'the tokenizer view is {size[0]}x{size[1]} px, '
                    f'but {tokenizer_name} (model.target_generator) turns '
                    f'{downsample} px into one target, so the '
                    f'{grid_h}x{grid_w} token grid of {mask_key} '
                    f'needs {expected[0]}x{expected[1]} px',
                    f'set {where}.size={value} or '
                    f'{mask_key}.input_size to the view size / '
                    f'{downsample}')


def check_mask_budget(add: Add, key: str, args: Dict[str, Any],
                      clip_lens: list) -> Optional[Tuple[int, int]]:
    """The mask generator's budgets within its grid; returns the grid
    (or None if ``input_size`` is not valid)."""
    grid = _size_hw(args.get('input_size'))
    if grid is None:
        add(
            f'{key}.input_size', 'the token grid must be a positive int '
            f'or (h, w), got {args.get("input_size")!r}')
        return None
    cells = grid[0] * grid[1]
    budget = args.get('num_masking_patches')
    smallest = args.get('min_num_patches')
    largest = args.get('max_num_patches')
    if not is_int(budget) or not 0 <= budget <= cells:
        add(
            f'{key}.num_masking_patches',
            f'num_masking_patches={budget!r} is not within the '
            f'{grid[0]}x{grid[1]} grid (0..{cells})')
    elif budget == 0:
        pass  # nothing is masked: the block sizes do not matter
    elif not positive_int(smallest) or smallest > budget:
        add(
            f'{key}.min_num_patches',
            f'min_num_patches={smallest!r} must be in 1..'
            f'num_masking_patches ({budget}): blocks drawn larger than '
            'the budget mostly fail, and the masks get fewer cells '
            'than asked')
    elif largest is not None and (not positive_int(largest)
                                  or largest < smallest):
        add(
            f'{key}.max_num_patches',
            f'max_num_patches={largest!r} must be None or at least '
            f'min_num_patches ({smallest})')
    clip_len = args.get('clip_len')
    temporal_patch = args.get('temporal_patch')
    if clip_len is not None and positive_int(temporal_patch):
        if not positive_int(clip_len) or clip_len % temporal_patch:
            add(
                f'{key}.clip_len',
                f'clip_len={clip_len!r} must be a positive multiple of '
                f'temporal_patch={temporal_patch}')
        elif clip_lens and clip_lens[0] != clip_len:
            add(
                f'{key}.clip_len',
                f'the tube mask is made for {clip_len} frames, but '
                f'SampleFrames samples {clip_lens[0]}',
                f'set {key}.clip_len={clip_lens[0]} (or None to read it '
                'from the sample)')
    return grid
