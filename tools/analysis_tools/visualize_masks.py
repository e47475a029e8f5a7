# Copyright (c) bevt contributors. All rights reserved.
"""Pictures of what BEVT shows, hides and predicts.

Takes one clip and one image through the train pipelines of a BEVT
pretraining config (the real decoding, crops, tokenizer view and masks),
runs the model of a checkpoint on them and writes to ``--out-dir``:

- ``video_masks.png``: one column per frame; rows: the input clip, what
  the backbone sees (dark stripes = masked 16-px cells; the tube covers
  both frames of a temporal patch) and the prediction on the masked cells
  (green = correct, red = wrong; visible cells dimmed, they carry no
  loss);
- ``video_masks.gif``: the same three panels, frame after frame;
- ``video_tube.png``: the tube mask over time: one row per spatial cell,
  one column per frame (dark = masked);
- ``image_masks.png``: the image, its block mask and the prediction.

Correct means: for an ids head (DALL-E, VQ-KD) the predicted id equals the
tokenizer's; for a regression head (HOG) the predicted feature is nearer
(L2) to its target than the sample's mean target is (the best guess that
ignores where the token is). The printed summary gives these rates on the
masked tokens (and the MSE of the prediction and of the mean guess for
features).

Example::

    python tools/analysis_tools/visualize_masks.py \\
        configs/bevt/smoke/bevt-hog_swin-nano-p244-w444_1xb4-8x2x1-3e_synthetic-motion-shapes.py \\
        --checkpoint work_dirs/demo/pretrain/epoch_3.pth --out-dir work_dirs/demo/pictures
"""  # noqa: E501
import argparse
import math
import os
import os.path as osp
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from bevt.utils.config_streams import loader_pipelines, pipeline_stream

HATCH = ((60, 60, 60), (100, 100, 100))  # masked cells: dark stripes
GREEN = (40, 200, 60)
RED = (230, 40, 40)
LABEL_WIDTH = 96  # px of the row-label column


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Write pictures of the inputs, masks and per-token '
        'prediction correctness of a BEVT pretraining config.')
    parser.add_argument('config', help='BEVT pretraining config')
    parser.add_argument(
        '--checkpoint',
        help='checkpoint of a BEVT run (default: the model at random init; '
        'the pictures of inputs and masks are the same)')
    parser.add_argument(
        '--out-dir',
        default='work_dirs/visualize_masks',
        help='where the pictures go (created)')
    parser.add_argument(
        '--video',
        help='clip to show (default: sample --index of the '
        'video loader\'s dataset)')
    parser.add_argument(
        '--image',
        help='image to show (default: sample --index of the '
        'image loader\'s dataset)')
    parser.add_argument(
        '--index', type=int, default=0, help='dataset sample to show')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the random crops and masks')
    parser.add_argument(
        '--min-size',
        type=int,
        default=160,
        help='frames are enlarged (nearest) to at least this many px')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, as in tools/train.py')
    return parser.parse_args(argv)


# ----------------------------------------------------------------------
# data and model
def load_sample(loader: dict, pipeline: list, stream: str, path: Optional[str],
                index: int, seed: int) -> dict:
    """One packed sample of a stream (``PackBEVTInputs`` output).

    Args:
        loader (dict): The loader config (its dataset is built when
            ``path`` is None).
        pipeline (list): The stream's train pipeline.
        stream (str): 'video' or 'img'.
        path (str, optional): A file to load instead of a dataset sample.
        index (int): Dataset index when ``path`` is None.
        seed (int): Seed of the pipeline's randomness.

    Returns:
        dict: ``dict(inputs=..., data_samples=...)``.
    """
    from mmengine.dataset import Compose
    from mmengine.runner import set_random_seed

    from bevt.registry import DATASETS
    set_random_seed(seed)
    if path is None:
        dataset = DATASETS.build(loader['dataset'])
        if not 0 <= index < len(dataset):
            raise ValueError(f'--index {index} is out of range: the {stream} '
                             f'dataset has {len(dataset)} samples')
        return dataset[index]
    if not osp.isfile(path):
        raise FileNotFoundError(f'No such {stream} file: {path}')
    if stream == 'video':
        info = dict(filename=path, label=-1, start_index=0, modality='RGB')
    else:
        info = dict(img_path=path, gt_label=-1)
    return Compose(pipeline)(info)


def build_model(cfg: Any, checkpoint: Optional[str]) -> Any:
    """The config's model in eval mode, with the checkpoint's weights and
    the tokenizer's own weights file (if its config names one)."""
    from mmengine.runner import load_checkpoint

    from bevt.registry import MODELS
    model = MODELS.build(cfg.model)
    if checkpoint is not None:
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'No such checkpoint: {checkpoint}')
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    # tokenizer weights are never in BEVT checkpoints: they come from the
    # tokenizer's init_cfg (a random-init tokenizer warns)
    model.target_generator.init_weights()
    return model.eval()


def predict(model: Any, sample: dict) -> Tuple[dict, Any]:
    """(preprocessed inputs, data sample with the predictions) of one
    sample."""
    import torch
    from mmengine.dataset import pseudo_collate
    with torch.no_grad():
        data = model.data_preprocessor(pseudo_collate([sample]), False)
        return data['inputs'], model.predict([data])[0]


def token_correctness(result: Any) -> Tuple[np.ndarray, Dict[str, float]]:
    """Per-token correctness (L,) bool and per-token numbers (L,).

    Ids: predicted id == target id. Features: the prediction's squared
    error is below that of the sample's mean target; the numbers are both
    errors (``mse``, ``mse_mean_guess``, per token, averaged over dims).
    """
    if 'pred_tokens' in result:
        correct = result.pred_tokens == result.target_tokens
        return correct.cpu().numpy(), {}
    pred = result.pred_features.float()  # (L, D)
    target = result.target_features.float()
    error = (pred - target).pow(2).mean(1)  # (L,)
    guess = (target.mean(0, keepdim=True) - target).pow(2).mean(1)
    return (error < guess).cpu().numpy(), dict(
        mse=error.cpu().numpy(), mse_mean_guess=guess.cpu().numpy())


# ----------------------------------------------------------------------
# drawing (RGB uint8 arrays)
def _enlarge(frame: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement of an (H, W, 3) frame."""
    return np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)


def _cells(mask: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """A (h, w) cell mask as an (H, W) pixel mask."""
    h, w = mask.shape
    return np.repeat(np.repeat(mask, shape[0] // h, 0), shape[1] // w, 1)


def _grid(frame: np.ndarray, cells: Tuple[int, int]) -> np.ndarray:
    """Thin dark lines between the cells."""
    out = frame.copy()
    height, width = out.shape[:2]
    for i in range(1, cells[0]):
        out[i * height // cells[0], :] = (40, 40, 40)
    for j in range(1, cells[1]):
        out[:, j * width // cells[1]] = (40, 40, 40)
    return out


def masked_view(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """What the backbone sees: masked cells replaced by dark stripes."""
    out = frame.copy()
    height, width = frame.shape[:2]
    yy, xx = np.mgrid[:height, :width]
    stripes = ((yy + xx) // 4) % 2 == 1
    pix_mask = _cells(mask, (height, width))
    out[pix_mask & ~stripes] = HATCH[0]
    out[pix_mask & stripes] = HATCH[1]
    return _grid(out, mask.shape)


def prediction_view(frame: np.ndarray, mask: np.ndarray,
                    correct: np.ndarray) -> np.ndarray:
    """Masked cells tinted green (correct) or red (wrong); the visible
    cells dimmed (they carry no loss)."""
    out = frame.astype(np.float32)
    pix_mask = _cells(mask, frame.shape[:2])
    pix_correct = _cells(correct, frame.shape[:2])
    out[~pix_mask] *= 0.35
    for value, colour in ((True, GREEN), (False, RED)):
        sel = pix_mask & (pix_correct == value)
        out[sel] = 0.45 * out[sel] + 0.55 * np.array(colour, np.float32)
    return _grid(out.round().astype(np.uint8), mask.shape)


def label_row(panels: List[np.ndarray], label: str) -> np.ndarray:
    """Panels side by side (2-px gaps) after a label column."""
    import cv2
    height = panels[0].shape[0]
    gap = np.full((height, 2, 3), 255, np.uint8)
    head = np.full((height, LABEL_WIDTH, 3), 255, np.uint8)
    for i, line in enumerate(label.split('\n')):
        cv2.putText(head, line, (4, 18 + 16 * i), cv2.FONT_HERSHEY_SIMPLEX,
                    0.42, (0, 0, 0), 1, cv2.LINE_AA)
    parts = [head]
    for panel in panels:
        parts += [panel, gap]
    return np.concatenate(parts[:-1], axis=1)


def stack_rows(rows: List[np.ndarray]) -> np.ndarray:
    """Rows one under the other (4-px gaps, padded to one width)."""
    width = max(r.shape[1] for r in rows)
    out = []
    for row in rows:
        pad = np.full((row.shape[0], width - row.shape[1], 3), 255, np.uint8)
        out += [
            np.concatenate([row, pad], axis=1),
            np.full((4, width, 3), 255, np.uint8)
        ]
    return np.concatenate(out[:-1], axis=0)


def tube_chart(target_mask: np.ndarray, cell_px: int = 14) -> np.ndarray:
    """The tube mask over time: rows = spatial cells (row-major), columns
    = frames; dark = masked. (T, h, w) bool -> RGB picture."""
    import cv2
    frames, h, w = target_mask.shape
    chart = target_mask.reshape(frames, h * w).T  # (h*w, T)
    img = np.where(chart[..., None], 50, 225).astype(np.uint8)
    img = np.repeat(img, 3, axis=2)
    img = _enlarge(img, cell_px)
    for t in range(1, frames):  # frame separators
        img[:, t * cell_px] = 160
    for c in range(1, h * w):
        img[c * cell_px, :] = 160
    top = np.full((22, img.shape[1], 3), 255, np.uint8)
    for t in range(frames):
        cv2.putText(top, str(t), (t * cell_px + 2, 16),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    chart_img = np.concatenate([top, img], axis=0)
    return label_row([chart_img], f'tube mask\n{h}x{w} cells\n(rows)\n'
                     'x frames')


def save_png(path: str, img: np.ndarray) -> None:
    """Write an RGB array as PNG."""
    from PIL import Image
    Image.fromarray(img).save(path)


def save_gif(path: str, frames: List[np.ndarray], ms: int = 300) -> None:
    """Write RGB arrays as a looping GIF."""
    from PIL import Image
    images = [Image.fromarray(f) for f in frames]
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=ms, loop=0)


# ----------------------------------------------------------------------
def _frames(imgs: Any) -> np.ndarray:
    """Packed uint8 (3, [T,] H, W) tensor -> (T, H, W, 3) RGB array."""
    arr = imgs.cpu().numpy()
    if arr.ndim == 3:
        arr = arr[:, None]
    return np.ascontiguousarray(arr.transpose(1, 2, 3, 0))


def _summary(stream: str, mask: np.ndarray, correct: np.ndarray,
             extra: Dict[str, np.ndarray]) -> str:
    """One line: masked tokens and the correct rate on them."""
    flat = mask.reshape(-1)
    rate = correct.reshape(-1)[flat].mean() if flat.any() else float('nan')
    text = (f'{stream}: {int(flat.sum())} of {flat.size} tokens masked; '
            f'correct on masked: {100 * rate:.1f} %')
    if 'mse' in extra and flat.any():
        text += (f'; MSE on masked: {extra["mse"][flat].mean():.4f} (mean '
                 f'guess: {extra["mse_mean_guess"][flat].mean():.4f})')
    return text


def draw_video(sample: dict, inputs: dict, result: Any, scale: int,
               out_dir: str) -> Tuple[List[str], str]:
    """Write the video pictures; return their paths and a summary."""
    frames = _frames(sample['inputs']['imgs'])  # (T, H, W, 3)
    target_mask = inputs['target_mask'][0].cpu().numpy()  # (T, h, w)
    input_mask = inputs['input_mask'][0].cpu().numpy()  # (T/p, h, w)
    correct, extra = token_correctness(result)
    correct = correct.reshape(target_mask.shape)
    num = frames.shape[0]
    rows = dict(input=[], masked=[], pred=[])
    for t in range(num):
        frame = _enlarge(frames[t], scale)
        rows['input'].append(frame)
        slot = t * input_mask.shape[0] // num
        rows['masked'].append(masked_view(frame, input_mask[slot]))
        rows['pred'].append(prediction_view(frame, target_mask[t], correct[t]))
    picture = stack_rows([
        label_row(rows['input'], f'input\n{num} frames'),
        label_row(rows['masked'], 'backbone\nsees\n(stripes =\nmasked)'),
        label_row(rows['pred'], 'prediction\ngreen = ok\nred = wrong')
    ])
    paths = [
        osp.join(out_dir, n)
        for n in ('video_masks.png', 'video_masks.gif', 'video_tube.png')
    ]
    save_png(paths[0], picture)
    save_gif(paths[1], [
        label_row([rows['input'][t], rows['masked'][t], rows['pred'][t]],
                  f'frame {t}') for t in range(num)
    ])
    save_png(paths[2], tube_chart(target_mask))
    return paths, _summary('video', target_mask, correct, extra)


def draw_image(sample: dict, inputs: dict, result: Any, scale: int,
               out_dir: str) -> Tuple[List[str], str]:
    """Write the image picture; return its path and a summary."""
    frame = _enlarge(_frames(sample['inputs']['imgs'])[0], scale)
    mask = inputs['target_mask'][0].cpu().numpy()  # (h, w)
    correct, extra = token_correctness(result)
    correct = correct.reshape(mask.shape)
    picture = label_row([
        frame,
        masked_view(frame, inputs['input_mask'][0].cpu().numpy()),
        prediction_view(frame, mask, correct)
    ], 'image |\nbackbone\nsees |\nprediction')
    path = osp.join(out_dir, 'image_masks.png')
    save_png(path, picture)
    return [path], _summary('image', mask, correct, extra)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit status."""
    args = parse_args(argv)
    try:
        return _main(args)
    except (ValueError, FileNotFoundError, KeyError, TypeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    """:func:`main` after parsing."""
    from mmengine.registry import init_default_scope

    import bevt.datasets  # noqa: F401  (registers the parts)
    import bevt.models  # noqa: F401
    from bevt.utils import load_config
    cfg = load_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'bevt'))
    streams = {}
    for loader, pipeline in loader_pipelines(cfg):
        stream = pipeline_stream(pipeline)
        if stream is not None and stream not in streams:
            streams[stream] = (loader, pipeline)
    if not streams:
        raise ValueError(f'{args.config} has no BEVT stream: no train '
                         'pipeline with BEVTTubeMaskGenerator or '
                         'BEVTBlockMaskGenerator')
    model = build_model(cfg, args.checkpoint)
    if args.checkpoint is None:
        print('no --checkpoint: the predictions are those of a random-init '
              'model')
    os.makedirs(args.out_dir, exist_ok=True)
    written, lines = [], []
    for stream, (loader, pipeline) in streams.items():
        path = args.video if stream == 'video' else args.image
        sample = load_sample(loader, pipeline, stream, path, args.index,
                             args.seed)
        inputs, result = predict(model, sample)
        width = sample['inputs']['imgs'].shape[-1]
        scale = max(1, math.ceil(args.min_size / width))
        draw = draw_video if stream == 'video' else draw_image
        paths, line = draw(sample, inputs, result, scale, args.out_dir)
        source = path or f'sample {args.index} of {loader["dataset"]["type"]}'
        lines.append(f'{line}  [{source}]')
        written += paths
    print('\n'.join(lines))
    print('wrote:\n  ' + '\n  '.join(written))
    return 0


if __name__ == '__main__':
    sys.exit(main())
