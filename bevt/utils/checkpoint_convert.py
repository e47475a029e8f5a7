# Copyright (c) bevt contributors. All rights reserved.
"""Checkpoint conversion shared by ``tools/model_converters/``.

Three conversions, each a pure function from a state dict to a
:class:`ConversionResult` (the new state dict plus a
:class:`ConversionReport` of kept, renamed, resized, added and dropped
keys), and a strict verification that builds the target module from the
shapes in the state dict:

- :func:`convert_official_bevt`: an official BEVT (xyzforever/BEVT,
  mmcv 1.x) checkpoint -> bevt's ``BEVT`` model (:func:`verify_bevt_backbone`),
  plus the DALL-E tokenizer weights it carries;
- :func:`convert_bevt_to_mmaction`: a BEVT pretraining checkpoint (bevt's or
  official) -> mmaction2's ``SwinTransformer3D`` for fine-tuning, with an
  optional trilinear resize of the relative-position tables
  (:func:`verify_mmaction_backbone`);
- :func:`load_pickled_dalle_encoder`: OpenAI's pickled DALL-E encoder ->
  mmpretrain's ``DALLEEncoder`` state dict (:func:`verify_dalle_encoder`).

Every ``relative_position_index`` of the source is dropped and rebuilt for
the target window (:func:`relative_position_index`): the buffer is
persistent in mmaction2's ``WindowAttention3D``, so a file without it would
not load strictly, and the source's one is wrong after a window change.

Model classes are imported inside the functions that build them, so each
converter only imports the library it needs.
"""
import os
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

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
    """The weights of a checkpoint, ``module.`` prefixes stripped.

    Args:
        checkpoint (dict): A loaded checkpoint: a dict with ``state_dict``,
            ``model`` or ``module`` (tried in this order), or a plain state
            dict.
        path (str): File name for error messages. Defaults to
            '<checkpoint>'.
        report (ConversionReport, optional): Gets a note on stripped
            prefixes. Defaults to None.

    Returns:
        dict: Tensor values by key.

    Raises:
        ValueError: If no dict of tensors is found, naming the top-level
            keys.
    """
    state_dict = checkpoint
    for key in ('state_dict', 'model', 'module'):
        if isinstance(checkpoint.get(key), dict):
            state_dict = checkpoint[key]
            if report is not None:
                report.note(f'weights taken from the {key!r} entry')
            break
    tensors = {k: v for k, v in state_dict.items() if isinstance(v, Tensor)}
    if not tensors:
        raise ValueError(f'{path}: no state dict found (top-level keys: '
                         f'{sorted(map(str, checkpoint))[:10]})')
    others = sorted(set(state_dict) - set(tensors))
    if others:
        raise ValueError(f'{path}: non-tensor values in the state dict: '
                         f'{others[:10]}')
    stripped, count = {}, 0
    for key, value in tensors.items():
        while key.startswith('module.'):
            key = key[len('module.'):]
            count += 1
        stripped[key] = value
    if count and report is not None:
        report.note(f'stripped the DDP prefix "module." from {count} keys')
    return stripped


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


# ----------------------------------------------------------------------
# relative-position tables
def window_rows(window_size: Sequence[int]) -> int:
    """Rows of a relative-position table: (2Wd-1)(2Wh-1)(2Ww-1)."""
    wd, wh, ww = window_size
    return (2 * wd - 1) * (2 * wh - 1) * (2 * ww - 1)


def infer_window_size(rows: int,
                      source_window: Optional[Sequence[int]] = None,
                      spatial_hint: Optional[Sequence[int]] = None) -> Window:
    """The window (Wd, Wh, Ww) of a relative-position table.

    Tried in order: ``source_window`` (then it must fit), the default
    (8, 7, 7), Wd solved for the spatial window ``spatial_hint`` (Wh, Ww),
    Wd solved for 7x7, and a cubic window.

    Args:
        rows (int): Rows of the table.
        source_window (Sequence[int], optional): The known window.
            Defaults to None.
        spatial_hint (Sequence[int], optional): (Wh, Ww) to assume.
            Defaults to None.

    Returns:
        tuple: (Wd, Wh, Ww).

    Raises:
        ValueError: If ``source_window`` does not fit or nothing does.
    """
    if source_window is not None:
        window = tuple(int(w) for w in source_window)
        if len(window) != 3 or window_rows(window) != rows:
            raise ValueError(
                f'source window {window} gives {window_rows(window)} table '
                f'rows but the tables have {rows}')
        return window
    if window_rows(DEFAULT_WINDOW) == rows:
        return DEFAULT_WINDOW
    hints = [tuple(spatial_hint)] if spatial_hint is not None else []
    for wh, ww in hints + [DEFAULT_WINDOW[1:]]:
        plane = (2 * wh - 1) * (2 * ww - 1)
        if rows % plane == 0 and (rows // plane) % 2 == 1:
            return ((rows // plane + 1) // 2, wh, ww)
    side = round(rows**(1 / 3))
    if side**3 == rows and side % 2 == 1:
        return ((side + 1) // 2, ) * 3
    raise ValueError(f'cannot infer the window of relative-position tables '
                     f'with {rows} rows; pass --source-window T H W')


def tables_window(state_dict: StateDict,
                  source_window: Optional[Sequence[int]] = None,
                  spatial_hint: Optional[Sequence[int]] = None) -> Window:
    """The common window of every relative-position table of a backbone.

    Args:
        state_dict (dict): Backbone weights.
        source_window (Sequence[int], optional): See
            :func:`infer_window_size`. Defaults to None.
        spatial_hint (Sequence[int], optional): See
            :func:`infer_window_size`. Defaults to None.

    Returns:
        tuple: (Wd, Wh, Ww).

    Raises:
        ValueError: If there is no table or the tables differ in rows.
    """
    rows = {k: v.shape[0] for k, v in state_dict.items() if k.endswith(_TABLE)}
    if not rows:
        raise ValueError('no relative_position_bias_table in the backbone')
    if len(set(rows.values())) > 1:
        raise ValueError('relative-position tables of different sizes: '
                         f'{sorted(set(rows.values()))}')
    return infer_window_size(
        next(iter(rows.values())), source_window, spatial_hint)


def relative_position_index(window_size: Sequence[int]) -> Tensor:
    """mmaction2's ``WindowAttention3D.relative_position_index`` buffer.

    Args:
        window_size (Sequence[int]): (Wd, Wh, Ww).

    Returns:
        Tensor: int64 (Wd*Wh*Ww, Wd*Wh*Ww) indices into the table rows.
    """
    wd, wh, ww = window_size
    coords = torch.stack(
        torch.meshgrid(
            torch.arange(wd),
            torch.arange(wh),
            torch.arange(ww),
            indexing='ij')).flatten(1)  # (3, Wd*Wh*Ww)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel = rel + torch.tensor([wd - 1, wh - 1, ww - 1])
    scale = torch.tensor([(2 * wh - 1) * (2 * ww - 1), 2 * ww - 1, 1])
    return (rel * scale).sum(-1)


def resize_relative_position_table(table: Tensor, src_window: Sequence[int],
                                   dst_window: Sequence[int]) -> Tensor:
    """Trilinear resize of a relative-position table to another window.

    Each head's table is a (2Wd-1, 2Wh-1, 2Ww-1) grid of offsets, resized
    with ``F.interpolate(mode='trilinear', align_corners=False)`` as the
    official window-16 fine-tuning does.

    Args:
        table (Tensor): (window_rows(src_window), nH).
        src_window (Sequence[int]): (Wd, Wh, Ww) of ``table``.
        dst_window (Sequence[int]): The new window.

    Returns:
        Tensor: (window_rows(dst_window), nH), the dtype of ``table``.
    """
    rows, heads = table.shape
    if rows != window_rows(src_window):
        raise ValueError(f'table with {rows} rows is not made for window '
                         f'{tuple(src_window)}')
    grid = [2 * w - 1 for w in src_window]
    size = [2 * w - 1 for w in dst_window]
    x = table.float().t().reshape(1, heads, *grid)  # (1, nH, 2Wd-1, ...)
    x = F.interpolate(x, size=size, mode='trilinear', align_corners=False)
    return x.reshape(heads, -1).t().to(table.dtype)  # (rows', nH)


def _attention_prefixes(state_dict: StateDict) -> List[str]:
    """The ``...attn.`` prefixes of the blocks that own a table."""
    return [k[:-len(_TABLE)] for k in state_dict if k.endswith(_TABLE)]


# ----------------------------------------------------------------------
# architecture inference and strict verification
def infer_swin3d_kwargs(state_dict: StateDict) -> dict:
    """Constructor arguments of a Video Swin from its backbone weights.

    Args:
        state_dict (dict): Backbone weights (mmaction2 names, no prefix).

    Returns:
        dict: ``arch`` (``embed_dims`` from ``patch_embed.proj.weight``,
        ``depths`` from the block indices, ``num_heads`` from the table
        columns), ``patch_size``, ``in_channels``, ``mlp_ratio``,
        ``qkv_bias`` and ``patch_norm``.

    Raises:
        ValueError: For a 2D or incomplete checkpoint, naming the key.
    """
    kernel = state_dict.get('patch_embed.proj.weight')
    if kernel is None:
        raise ValueError('no patch_embed.proj.weight: not a Video Swin '
                         f'backbone (first keys: {list(state_dict)[:5]})')
    if kernel.dim() != 5:
        raise ValueError(
            f'patch_embed.proj.weight has shape {tuple(kernel.shape)}: a 2D '
            'checkpoint; inflate it with pretrained2d=True instead')
    blocks: Dict[int, set] = {}
    for key in state_dict:
        match = re.match(r'layers\.(\d+)\.blocks\.(\d+)\.', key)
        if match:
            blocks.setdefault(int(match[1]), set()).add(int(match[2]))
    stages = sorted(blocks)
    if not stages or stages != list(range(len(stages))):
        raise ValueError(f'stages {stages}: expected layers.0 ... layers.N')
    depths, num_heads = [], []
    for i in stages:
        if sorted(blocks[i]) != list(range(len(blocks[i]))):
            raise ValueError(f'layers.{i}: block indices {sorted(blocks[i])}')
        depths.append(len(blocks[i]))
        key = f'layers.{i}.blocks.0.attn.{_TABLE}'
        if key not in state_dict:
            raise ValueError(f'{key} missing: cannot infer the heads')
        num_heads.append(int(state_dict[key].shape[1]))
    embed_dims = int(kernel.shape[0])
    hidden = state_dict['layers.0.blocks.0.mlp.fc1.weight'].shape[0]
    return dict(
        arch=dict(embed_dims=embed_dims, depths=depths, num_heads=num_heads),
        patch_size=tuple(int(p) for p in kernel.shape[2:]),
        in_channels=int(kernel.shape[1]),
        mlp_ratio=hidden / embed_dims,
        qkv_bias='layers.0.blocks.0.attn.qkv.bias' in state_dict,
        patch_norm='patch_embed.norm.weight' in state_dict)


def _listed(keys: Sequence[str]) -> str:
    """The first ``_LIST_LIMIT`` keys, comma-separated, and a count."""
    shown = ', '.join(map(str, keys[:_LIST_LIMIT]))
    more = len(keys) - _LIST_LIMIT
    return shown + (f', ... ({more} more)' if more > 0 else '')


def load_strictly(module: nn.Module, state_dict: StateDict, what: str) -> None:
    """Load ``state_dict`` into ``module``, refusing any mismatch.

    mmengine's non-strict ``Pretrained`` load only warns about a missing
    key or a shape mismatch and leaves that weight at random init, so the
    converters check here that the target loads exactly.

    Args:
        module (nn.Module): The target.
        state_dict (dict): Weights with the target's names.
        what (str): Name of the target for the error message.

    Raises:
        ValueError: Listing the missing and unexpected keys and the shape
            mismatches (key, file shape, model shape).
    """
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = [
        f'{k} {list(state_dict[k].shape)} vs {list(own[k].shape)}' for k in own
        if k in state_dict and state_dict[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        lines = [f'the converted weights do not load strictly into {what}:']
        if missing:
            lines.append(f'missing keys ({len(missing)}): {_listed(missing)}')
        if unexpected:
            lines.append(f'unexpected keys ({len(unexpected)}): '
                         f'{_listed(unexpected)}')
        if wrong:
            lines.append(f'shape mismatches (file vs model) ({len(wrong)}): '
                         f'{_listed(wrong)}')
        raise ValueError('\n'.join(lines))
    module.load_state_dict(state_dict, strict=True)


def verify_mmaction_backbone(state_dict: StateDict,
                             window_size: Sequence[int]) -> nn.Module:
    """Build mmaction2's ``SwinTransformer3D`` and load the weights strictly.

    Args:
        state_dict (dict): Backbone weights without prefix.
        window_size (Sequence[int]): (Wd, Wh, Ww) of the target.

    Returns:
        nn.Module: The loaded ``SwinTransformer3D`` (``pretrained2d=False``,
        final norm of the last stage only).
    """
    from mmaction.models.backbones.swin import SwinTransformer3D
    kwargs = infer_swin3d_kwargs(state_dict)
    stages = len(kwargs['arch']['depths'])
    model = SwinTransformer3D(
        pretrained2d=False,
        window_size=tuple(window_size),
        drop_path_rate=0.,
        out_indices=(stages - 1, ),
        **kwargs)
    load_strictly(model, state_dict, describe_swin3d(kwargs, window_size))
    return model


def verify_bevt_backbone(state_dict: StateDict,
                         window_size: Sequence[int]) -> nn.Module:
    """Build ``BEVTSwinTransformer3D`` and load the weights strictly.

    Args:
        state_dict (dict): Backbone weights with bevt's names, no prefix.
        window_size (Sequence[int]): (Wd, Wh, Ww).

    Returns:
        nn.Module: The loaded ``BEVTSwinTransformer3D``.
    """
    from bevt.models.backbones.bevt_swin import BEVTSwinTransformer3D
    kwargs = infer_swin3d_kwargs(state_dict)
    model = BEVTSwinTransformer3D(
        window_size=tuple(window_size), drop_path_rate=0., **kwargs)
    what = 'BEVT' + describe_swin3d(kwargs, window_size)
    load_strictly(model, state_dict, what)
    return model


def describe_swin3d(kwargs: dict, window_size: Sequence[int]) -> str:
    """One-line description, e.g. for the summary and error messages."""
    arch = kwargs['arch']
    return (f'SwinTransformer3D(embed_dims={arch["embed_dims"]}, '
            f'depths={arch["depths"]}, num_heads={arch["num_heads"]}, '
            f'patch_size={kwargs["patch_size"]}, '
            f'window_size={tuple(window_size)})')


# ----------------------------------------------------------------------
# conversions
def _backbone_key(bare: str, final_norm: str, report: ConversionReport,
                  source_key: str) -> Optional[str]:
    """Our name of one bare backbone key (None: drop it)."""
    from bevt.models.backbones.bevt_swin import rename_official_keys
    if bare.endswith(_INDEX):
        report.drop(source_key, INDEX_REASON)
        return None
    if 'attn_mask' in bare:
        report.drop(source_key, ATTN_MASK_REASON)
        return None
    return next(iter(rename_official_keys({bare: None}, final_norm)))


def _num_stages(backbone: StateDict) -> int:
    """Number of ``layers.<i>`` stages of bare backbone weights."""
    stages = {
        int(m[1])
        for m in map(re.compile(r'layers\.(\d+)\.').match, backbone) if m
    }
    if not stages:
        raise ValueError('no layers.<i>.* keys: not a Swin backbone')
    return max(stages) + 1


def _add_indices(state_dict: StateDict, prefix: str, window: Window,
                 report: ConversionReport) -> None:
    """Write a fresh ``relative_position_index`` beside every table."""
    index = relative_position_index(window)
    for attn in _attention_prefixes(state_dict):
        key = attn + _INDEX
        state_dict[key] = index.clone()
        report.add(prefix + key,
                   f'relative_position_index for window {window}')


def convert_official_bevt(
    state_dict: StateDict,
    source_window: Optional[Sequence[int]] = None,
    report: Optional[ConversionReport] = None,
) -> ConversionResult:
    """Official BEVT (``SwinTransformerBEVT`` + ``cls_head``) -> bevt ``BEVT``.

    ``backbone.*`` keys get our names (see ``OFFICIAL_KEY_RENAMES``; the
    final ``norm`` becomes ``norm{last stage}``), ``cls_head.lm_head.*``
    becomes ``head.fc.*``, ``cls_head.vae_encoder.*`` goes to
    :attr:`ConversionResult.tokenizer` (prefix stripped), and every
    ``relative_position_index`` is rebuilt (``attn_mask`` dropped). Keys of
    bevt's own layout pass unchanged; any other key is dropped and listed.

    Args:
        state_dict (dict): The model weights, ``module.`` prefixes already
            stripped (see :func:`extract_state_dict`).
        source_window (Sequence[int], optional): The model's window if it
            cannot be inferred from the tables. Defaults to None.
        report (ConversionReport, optional): Report to extend (e.g. the
            one :func:`extract_state_dict` wrote to). Defaults to None (a
            new one).

    Returns:
        ConversionResult: ``state_dict`` with keys ``backbone.*`` and
        ``head.fc.*`` for ``BEVT``, and the tokenizer weights.
    """
    report = ConversionReport() if report is None else report
    backbone = {
        k[len('backbone.'):]: v
        for k, v in state_dict.items() if k.startswith('backbone.')
    }
    if not backbone:
        raise ValueError('no backbone.* keys: not a BEVT model checkpoint '
                         f'(first keys: {list(state_dict)[:5]})')
    final_norm = f'norm{_num_stages(backbone) - 1}'
    out: StateDict = {}
    tokenizer: StateDict = {}
    for key, value in state_dict.items():
        if key.startswith('backbone.'):
            new = _backbone_key(key[len('backbone.'):], final_norm, report,
                                key)
            if new is None:
                continue
            new = 'backbone.' + new
        elif key.startswith(OFFICIAL_HEAD_PREFIX):
            new = HEAD_PREFIX + key[len(OFFICIAL_HEAD_PREFIX):]
        elif key.startswith(HEAD_PREFIX):
            new = key
        elif key.startswith(TOKENIZER_PREFIX):
            tokenizer[key[len(TOKENIZER_PREFIX):]] = value
            report.drop(key, 'DALL-E tokenizer (loaded through its init_cfg)')
            continue
        else:
            report.drop(key, 'not part of bevt\'s BEVT model')
            continue
        out[new] = value
        if new == key:
            report.keep(key)
        else:
            report.rename(key, new)
    if not any(k.startswith(HEAD_PREFIX) for k in out):
        raise ValueError(f'no {OFFICIAL_HEAD_PREFIX}* (or {HEAD_PREFIX}*) '
                         'keys: the masked-modelling head is missing')
    tables = {k: v for k, v in out.items() if k.startswith('backbone.')}
    window = tables_window(tables, source_window)
    _add_indices(out, '', window, report)
    return ConversionResult(out, report, window, tokenizer)


def convert_bevt_to_mmaction(
    state_dict: StateDict,
    window_size: Optional[Sequence[int]] = None,
    source_window: Optional[Sequence[int]] = None,
    report: Optional[ConversionReport] = None,
) -> ConversionResult:
    """A BEVT pretraining checkpoint -> mmaction2 ``SwinTransformer3D``.

    Takes the ``backbone.*`` keys (all keys if there are none), strips a
    leading ``encoder.``, applies the official renames (the top-level
    ``norm`` becomes ``norm{last stage}``; bevt's ``norm3`` stays), drops the
    pretraining-only parts (``patch_embed_2d``, ``mask_token``, the fusion
    decoders), the heads, the tokenizer, ``attn_mask`` and
    ``relative_position_index``, resizes every relative-position table to
    ``window_size`` (:func:`resize_relative_position_table`) and writes a
    ``relative_position_index`` for the target window.

    Args:
        state_dict (dict): Model weights, ``module.`` prefixes stripped.
        window_size (Sequence[int], optional): Target (Wd, Wh, Ww), e.g.
            (16, 7, 7) for SSv2. Defaults to None (the source window).
        source_window (Sequence[int], optional): The source window if it
            cannot be inferred from the tables. Defaults to None.
        report (ConversionReport, optional): Report to extend. Defaults to
            None (a new one).

    Returns:
        ConversionResult: Backbone keys without prefix.
    """
    report = ConversionReport() if report is None else report
    has_prefix = any(k.startswith('backbone.') for k in state_dict)
    if has_prefix:
        report.note('keys taken from backbone.*, prefix stripped')
    backbone: Dict[str, Tuple[str, Tensor]] = {}
    for key, value in state_dict.items():
        if has_prefix and not key.startswith('backbone.'):
            if key.startswith(TOKENIZER_PREFIX):
                report.drop(key, 'DALL-E tokenizer')
            elif key.startswith(('head.', 'cls_head.')):
                report.drop(key, 'pretraining head')
            else:
                report.drop(key, 'not a backbone key')
            continue
        if not has_prefix and key.startswith(_NOT_BACKBONE):
            report.drop(key, 'not a backbone key')
            continue
        bare = key[len('backbone.'):] if has_prefix else key
        if bare.startswith('encoder.'):
            bare = bare[len('encoder.'):]
        backbone[bare] = (key, value)
    if not backbone:
        raise ValueError('no backbone keys found')
    final_norm = f'norm{_num_stages(backbone) - 1}'
    out: StateDict = {}
    for bare, (key, value) in backbone.items():
        new = _backbone_key(bare, final_norm, report, key)
        if new is None:
            continue
        reason = next(
            (why for prefix, why in PRETRAIN_ONLY if new.startswith(prefix)),
            None)
        if reason is not None:
            report.drop(key, reason)
            continue
        out[new] = value
        if new == bare:
            report.keep(key)
        else:
            report.rename(key, new)
    src_prefix = 'backbone.' if has_prefix else ''
    hint = tuple(window_size)[1:] if window_size is not None else None
    src_window = tables_window(out, source_window, hint)
    dst_window = tuple(window_size) if window_size is not None \
        else src_window
    if dst_window != src_window:
        report.note(f'relative-position tables resized (trilinear) from '
                    f'window {src_window} to {dst_window}')
        for attn in _attention_prefixes(out):
            key = attn + _TABLE
            old = out[key]
            out[key] = resize_relative_position_table(old, src_window,
                                                      dst_window)
            report.resize(src_prefix + key, old.shape, out[key].shape)
    _add_indices(out, '', dst_window, report)
    if final_norm + '.weight' not in out:
        raise ValueError(f'no final norm (norm.* or {final_norm}.*) in the '
                         'backbone')
    return ConversionResult(out, report, dst_window)


# ----------------------------------------------------------------------
# DALL-E
def infer_dalle_encoder_cfg(state_dict: StateDict) -> dict:
    """``DALLEEncoder`` sizes from its weights (mmpretrain / OpenAI names).

    Args:
        state_dict (dict): Keys ``blocks.input.w``, ``blocks.group_*...``,
            ``blocks.output.conv.w`` (``.w`` / ``.b`` parameters).

    Returns:
        dict: ``group_count``, ``n_hid``, ``n_blk_per_group``,
        ``input_channels`` and ``vocab_size``.

    Raises:
        ValueError: If a key is missing or the layout differs from
            mmpretrain's four groups.
    """
    for key in ('blocks.input.w', 'blocks.output.conv.w'):
        if key not in state_dict:
            raise ValueError(f'{key} missing: not a DALL-E encoder (first '
                             f'keys: {list(state_dict)[:5]})')
    groups: Dict[int, set] = {}
    for key in state_dict:
        match = re.match(r'blocks\.group_(\d+)\.block_(\d+)\.', key)
        if match:
            groups.setdefault(int(match[1]), set()).add(int(match[2]))
    if sorted(groups) != [1, 2, 3, 4]:
        raise ValueError(f'groups {sorted(groups)}: mmpretrain\'s '
                         'DALLEEncoder has exactly group_1 ... group_4')
    counts = {len(blocks) for blocks in groups.values()}
    if len(counts) != 1:
        raise ValueError(f'groups with different block counts: {groups}')
    stem = state_dict['blocks.input.w']
    return dict(
        group_count=4,
        n_hid=int(stem.shape[0]),
        n_blk_per_group=counts.pop(),
        input_channels=int(stem.shape[1]),
        vocab_size=int(state_dict['blocks.output.conv.w'].shape[0]))


def verify_dalle_encoder(state_dict: StateDict) -> nn.Module:
    """Load DALL-E weights strictly into mmpretrain's ``DALLEEncoder``.

    Args:
        state_dict (dict): Encoder weights (``blocks.*.w`` / ``.b``).

    Returns:
        nn.Module: The loaded ``DALLEEncoder`` of the inferred sizes.
    """
    from mmpretrain.models.selfsup.cae import DALLEEncoder
    cfg = infer_dalle_encoder_cfg(state_dict)
    encoder = DALLEEncoder(**cfg)
    args = ', '.join(f'{k}={v}' for k, v in cfg.items())
    load_strictly(encoder, state_dict, f'DALLEEncoder({args})')
    return encoder


def load_pickled_dalle_encoder(path: str,
                               trust_pickle: bool = False) -> StateDict:
    """The weights of OpenAI's pickled DALL-E encoder (``encoder.pkl``).

    The file is a pickled ``dall_e.encoder.Encoder`` module: unpickling it
    imports the ``DALL-E`` package and can run any code the file holds.

    Args:
        path (str): The pickle.
        trust_pickle (bool): Must be True: confirms the file is trusted.
            Defaults to False.

    Returns:
        dict: The encoder's state dict (float tensors on CPU).

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        PermissionError: Without ``trust_pickle``.
        ModuleNotFoundError: If the classes it names cannot be imported.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'encoder pickle {path} not found')
    if not trust_pickle:
        raise PermissionError(
            f'{path} is a pickled Python object: unpickling it can run '
            'arbitrary code. Convert only a file you trust (OpenAI\'s '
            'encoder.pkl) and pass --trust-pickle to proceed.')
    try:
        obj = torch.load(path, map_location='cpu', weights_only=False)
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            f'{path} needs the module {e.name!r} to unpickle; for OpenAI\'s '
            'encoder.pkl run `pip install DALL-E`') from e
    if isinstance(obj, nn.Module):
        state_dict = obj.state_dict()
    elif isinstance(obj, dict):
        state_dict = extract_state_dict(obj, path)
    else:
        raise ValueError(f'{path}: expected a pickled module or a state '
                         f'dict, got {type(obj).__name__}')
    return {k: v.detach().float().cpu() for k, v in state_dict.items()}
