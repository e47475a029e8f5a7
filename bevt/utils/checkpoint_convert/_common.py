# Copyright (c) bevt contributors. All rights reserved.
"""Shared types, constants, the conversion report and checkpoint files."""
import argparse
import os
import os.path as osp
import pickle
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from bevt.models.backbones.bevt_swin_weights import checkpoint_weights

StateDict = Dict[str, Tensor]
Window = Tuple[int, int, int]

#: Window of the official BEVT / Video Swin-B K400 recipes.
DEFAULT_WINDOW = (8, 7, 7)
#: Our names of the pretraining-only backbone parts (after the official
#: renames) and why a fine-tuning backbone drops them.
PRETRAIN_ONLY = (
    ('patch_embed_2d.', 'image-stream patch embedding (pretraining only)'),
    ('mask_token', 'mask token (pretraining only)'),
    ('image_decoder.', 'image fusion decoder (pretraining only)'),
    ('video_decoder.', 'video fusion decoder (pretraining only)'),
)
INDEX_REASON = 'derived buffer (rebuilt for the target window)'
ATTN_MASK_REASON = 'derived buffer (computed at run time)'
TOKENIZER_PREFIX = 'cls_head.vae_encoder.'
OFFICIAL_HEAD_PREFIX = 'cls_head.lm_head.'
HEAD_PREFIX = 'head.fc.'
_TABLE = 'relative_position_bias_table'
_INDEX = 'relative_position_index'
_LIST_LIMIT = 20
# top-level parts of a BEVT model that a bare backbone dict may still carry
_NOT_BACKBONE = ('head.', 'cls_head.', 'target_generator.')


class ConversionReport:
    """What a conversion did to each key, for the printed summary.

    Keys are the source keys after the ``module.`` prefixes are stripped;
    a rename is a change of the name itself (not of a structural prefix such
    as ``backbone.``, which is reported once in :attr:`notes`).
    """

    def __init__(self) -> None:
        self.kept: List[str] = []
        self.renamed: List[Tuple[str, str]] = []
        self.resized: List[Tuple[str, tuple, tuple]] = []
        self.added: List[Tuple[str, str]] = []
        self.dropped: List[Tuple[str, str]] = []
        self.notes: List[str] = []

    def keep(self, key: str) -> None:
        """Record a key kept under its name."""
        self.kept.append(key)

    def rename(self, old: str, new: str) -> None:
        """Record a key kept under a new name."""
        self.renamed.append((old, new))

    def resize(self, key: str, old: Sequence[int], new: Sequence[int]) -> None:
        """Record a tensor whose shape changed (old and new shape)."""
        self.resized.append((key, tuple(old), tuple(new)))

    def add(self, key: str, reason: str) -> None:
        """Record a key that the source did not have."""
        self.added.append((key, reason))

    def drop(self, key: str, reason: str) -> None:
        """Record a key left out of the output, with the reason."""
        self.dropped.append((key, reason))

    def note(self, text: str) -> None:
        """Record a remark printed before the key lists."""
        self.notes.append(text)

    def summary(self, verbose: bool = False, limit: int = 5) -> str:
        """A human-readable summary.

        Args:
            verbose (bool): List every key of every group. Defaults to
                False.
            limit (int): Keys listed per group unless ``verbose`` (renames
                are always listed in full). Defaults to 5.

        Returns:
            str: The summary, one item per line.
        """

        def listing(items: List[str], full: bool = False) -> List[str]:
            shown = items if (verbose or full) else items[:limit]
            lines = [f'    {item}' for item in shown]
            if len(items) > len(shown):
                lines.append(f'    ... ({len(items) - len(shown)} more; '
                             '--verbose lists all)')
            return lines

        lines = [f'note: {text}' for text in self.notes]
        lines.append(f'kept: {len(self.kept)} keys')
        if verbose:
            lines += listing(self.kept)
        lines.append(f'renamed: {len(self.renamed)} keys')
        lines += listing([f'{a} -> {b}' for a, b in self.renamed], full=True)
        if self.resized:
            lines.append(f'resized: {len(self.resized)} keys')
            lines += listing(
                [f'{k}: {list(a)} -> {list(b)}' for k, a, b in self.resized])
        for title, pairs in (('added', self.added), ('dropped', self.dropped)):
            lines.append(f'{title}: {len(pairs)} keys')
            for reason in dict.fromkeys(reason for _, reason in pairs):
                keys = [key for key, why in pairs if why == reason]
                lines.append(f'  {reason}: {len(keys)}')
                lines += listing(keys)
        return '\n'.join(lines)


@dataclass
class ConversionResult:
    """The output of a conversion.

    Attributes:
        state_dict (dict): The converted weights.
        report (ConversionReport): What happened to each key.
        window_size (tuple, optional): (Wd, Wh, Ww) the relative-position
            tables of ``state_dict`` are made for.
        tokenizer (dict): Tokenizer weights found in the source (keys
            without prefix); empty if none.
    """
    state_dict: StateDict
    report: ConversionReport
    window_size: Optional[Window] = None
    tokenizer: StateDict = field(default_factory=dict)


# ----------------------------------------------------------------------
# files
def load_checkpoint_file(path: str, trust_pickle: bool = False) -> dict:
    """Read a checkpoint file on CPU.

    Args:
        path (str): Local file.
        trust_pickle (bool): Unpickle with ``weights_only=False``, which can
            run code stored in the file: only for a file you trust. By
            default bevt's safe loader is used (``weights_only=True`` plus
            the numpy / mmengine globals mmengine checkpoints need).
            Defaults to False.

    Returns:
        dict: The loaded object.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        ValueError: If the file does not hold a dict.
        pickle.UnpicklingError: If the safe loader refuses the file.
    """
    from bevt.compat.checkpoint import UnsafeCheckpointError, load_from_local
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} not found')
    if trust_pickle:
        checkpoint = torch.load(path, map_location='cpu', weights_only=False)
    else:
        try:
            checkpoint = load_from_local(path, map_location='cpu')
        except UnsafeCheckpointError as e:
            raise UnsafeCheckpointError(
                f'{e} If you trust {path}, pass --trust-pickle.') from e
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{path}: expected a dict, got '
                         f'{type(checkpoint).__name__}')
    return checkpoint


def extract_state_dict(checkpoint: dict,
                       path: str = '<checkpoint>',
                       report: Optional[ConversionReport] = None) -> StateDict:
    """:func:`~bevt.models.backbones.bevt_swin_weights.checkpoint_weights`
    with its notes written to ``report``."""
    return checkpoint_weights(checkpoint, path,
                              None if report is None else report.note)


def save_checkpoint(state_dict: StateDict,
                    path: str,
                    meta: Optional[dict] = None,
                    plain: bool = False) -> None:
    """Write ``{'state_dict': ..., 'meta': ...}`` (or a plain state dict).

    Args:
        state_dict (dict): Weights to save (made contiguous).
        path (str): Output file; missing folders are created.
        meta (dict, optional): Plain-typed metadata. Defaults to None.
        plain (bool): Save the bare state dict, without ``meta``.
            Defaults to False.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    weights = {k: v.detach().contiguous() for k, v in state_dict.items()}
    obj = weights if plain else dict(state_dict=weights, meta=meta or {})
    torch.save(obj, path)


#: What a converter reports as an error message (exit code 1), not a trace.
CLI_ERRORS = (OSError, ValueError, pickle.UnpicklingError)


def run_conversion(convert: Callable[[argparse.Namespace], None],
                   args: argparse.Namespace,
                   errors: Tuple[type, ...] = CLI_ERRORS) -> int:
    """Run a converter's ``convert(args)`` as a command.

    Args:
        convert (callable): The conversion.
        args (argparse.Namespace): Its parsed arguments.
        errors (tuple[type]): Exceptions printed as ``error: ...`` (exit
            code 1). Defaults to :data:`CLI_ERRORS`.

    Returns:
        int: 0 on success, 1 (after printing the error) otherwise.
    """
    try:
        convert(args)
    except errors as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0
