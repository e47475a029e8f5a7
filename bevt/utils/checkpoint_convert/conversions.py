# Copyright (c) bevt contributors. All rights reserved.
"""The two backbone conversions (official BEVT -> bevt, bevt -> mmaction2)."""
import re
from typing import Dict, Optional, Sequence, Tuple

from torch import Tensor

from ._common import (_INDEX, _NOT_BACKBONE, _TABLE, ATTN_MASK_REASON,
                      HEAD_PREFIX, INDEX_REASON, OFFICIAL_HEAD_PREFIX,
                      PRETRAIN_ONLY, TOKENIZER_PREFIX, ConversionReport,
                      ConversionResult, StateDict, Window)
from .official_keys import rename_official_keys
from .tables import (_attention_prefixes, relative_position_index,
                     resize_relative_position_table, tables_window)


def _backbone_key(bare: str, final_norm: str, report: ConversionReport,
                  source_key: str) -> Optional[str]:
    """Our name of one bare backbone key (None: drop it)."""
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
