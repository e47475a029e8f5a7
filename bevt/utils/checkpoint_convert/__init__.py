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
from ._common import (ATTN_MASK_REASON, CLI_ERRORS, DEFAULT_WINDOW,
                      HEAD_PREFIX, INDEX_REASON, OFFICIAL_HEAD_PREFIX,
                      PRETRAIN_ONLY, TOKENIZER_PREFIX, ConversionReport,
                      ConversionResult, StateDict, Window, extract_state_dict,
                      load_checkpoint_file, run_conversion, save_checkpoint)
from .conversions import convert_bevt_to_mmaction, convert_official_bevt
from .dalle import (infer_dalle_encoder_cfg, load_pickled_dalle_encoder,
                    verify_dalle_encoder)
from .official_keys import OFFICIAL_KEY_RENAMES, rename_official_keys
from .tables import (infer_window_size, relative_position_index,
                     resize_relative_position_table, tables_window,
                     window_rows)
from .verify import (describe_swin3d, infer_swin3d_kwargs, load_strictly,
                     verify_bevt_backbone, verify_mmaction_backbone)

__all__ = [
    'CLI_ERRORS', 'run_conversion', 'OFFICIAL_KEY_RENAMES',
    'rename_official_keys', 'ATTN_MASK_REASON', 'ConversionReport',
    'ConversionResult', 'DEFAULT_WINDOW', 'HEAD_PREFIX', 'INDEX_REASON',
    'OFFICIAL_HEAD_PREFIX', 'PRETRAIN_ONLY', 'StateDict', 'TOKENIZER_PREFIX',
    'Window', 'convert_bevt_to_mmaction', 'convert_official_bevt',
    'describe_swin3d', 'extract_state_dict', 'infer_dalle_encoder_cfg',
    'infer_swin3d_kwargs', 'infer_window_size', 'load_checkpoint_file',
    'load_pickled_dalle_encoder', 'load_strictly', 'relative_position_index',
    'resize_relative_position_table', 'save_checkpoint', 'tables_window',
    'verify_bevt_backbone', 'verify_dalle_encoder', 'verify_mmaction_backbone',
    'window_rows'
]
