# Copyright (c) bevt contributors. All rights reserved.
"""Synthetic steps of ``tools/analysis_tools/benchmark.py``: samples per
stream (:func:`stream_counts`) and uint8-noise batches with real masks, as
the data pipeline packs them (:func:`make_batches`), for the streams that
:func:`~.specs.stream_specs` reads from a config."""
import random
from typing import Any, Dict, List, Optional

from .specs import StreamSpec


def _sample(spec: StreamSpec, gen: Any) -> Any:
    """One packed sample (as PackBEVTInputs writes it) of ``spec``."""
    import numpy as np
    import torch
    from mmaction.structures import ActionDataSample

    from bevt.datasets.transforms.masking import generate_block_mask, tube_mask

    args = spec.mask_args
    block = generate_block_mask(
        input_size=args['input_size'],
        num_masking_patches=args['num_masking_patches'],
        min_num_patches=args['min_num_patches'],
        max_num_patches=args.get('max_num_patches'),
        min_aspect=args.get('min_aspect', 0.3),
        max_aspect=args.get('max_aspect'))  # (h, w), True = masked
    frames = (spec.clip_len, ) if spec.clip_len else ()
    imgs = torch.randint(
        0, 256, (3, ) + frames + spec.crop, generator=gen,
        dtype=torch.uint8)  # (3, [T, ] H, W)
    view = torch.randint(
        0, 256, (3, ) + frames + spec.view, generator=gen, dtype=torch.uint8)
    sample = ActionDataSample()
    if spec.clip_len:
        patch = args['temporal_patch']
        tube = tube_mask(block, spec.clip_len // patch,
                         tuple(args['tube_range']))  # (T/p, h, w)
        sample.input_mask = torch.from_numpy(tube)
        sample.target_mask = torch.from_numpy(np.repeat(tube, patch, 0))
    else:
        sample.input_mask = torch.from_numpy(block)
        sample.target_mask = torch.from_numpy(block.copy())
    return imgs, view, sample


def stream_counts(specs: Dict[str, StreamSpec],
                  videos: Optional[int],
                  images: Optional[int],
                  action: str = 'run') -> Dict[str, int]:
    """Samples per stream and step of the config's streams: ``--videos`` /
    ``--images``, or the loader's batch size where not given (0 leaves a
    stream out).

    Raises:
        ValueError: A count for a stream without a pipeline, or no samples
            at all (nothing to ``action``).
    """
    looked = '(looked in train_dataloader and train_cfg.other_loaders)'
    counts = {}
    for stream, flag in (('video', videos), ('img', images)):
        if stream in specs:
            counts[stream] = specs[stream].batch_size if flag is None \
                else flag
        elif flag:
            raise ValueError(
                f'--{"videos" if stream == "video" else "images"} {flag}, '
                f'but the config has no {stream} pipeline {looked}')
    if not any(counts.values()):
        raise ValueError(f'nothing to {action}: --videos and --images are '
                         f'both 0 or the config has no BEVT mask pipelines '
                         f'{looked}')
    return counts


def make_batches(specs: Dict[str, StreamSpec], counts: Dict[str, int],
                 num: int, seed: int) -> List[Any]:
    """``num`` collated steps: a (video, image) tuple or a single batch.

    Args:
        specs (dict): Stream shapes.
        counts (dict): Samples per stream and step (0 = stream left out).
        num (int): Number of distinct steps.
        seed (int): Seed of pixels and masks.

    Returns:
        list: Per step, a ``dict(inputs, data_samples)`` per stream (a
        tuple when there are two).
    """
    import torch

    random.seed(seed)
    gen = torch.Generator().manual_seed(seed)
    steps = []
    for _ in range(num):
        batches = []
        for stream in ('video', 'img'):
            if not counts.get(stream):
                continue
            samples = [
                _sample(specs[stream], gen) for _ in range(counts[stream])
            ]
            batches.append(
                dict(
                    inputs=dict(
                        imgs=[s[0] for s in samples],
                        tokenizer_imgs=[s[1] for s in samples]),
                    data_samples=[s[2] for s in samples]))
        steps.append(tuple(batches) if len(batches) > 1 else batches[0])
    return steps
