# Copyright (c) bevt contributors. All rights reserved.
"""Official BEVT backbone names -> ours."""
import re
from typing import Dict

from torch import Tensor

# official BEVT (``SwinTransformerBEVT``) state-dict names -> ours
OFFICIAL_KEY_RENAMES = (
    (r'^lm_down\.', 'image_decoder.reduce.'),
    (r'^fpn\.0\.', 'image_decoder.upsample_spatial.'),
    (r'^lm_down_st\.0\.', 'video_decoder.reduce.'),
    (r'^fpn_s\.0\.', 'video_decoder.upsample_spatial.'),
    (r'^fpn_t\.0\.', 'video_decoder.upsample_temporal.'),
)


def rename_official_keys(state_dict: Dict[str, Tensor],
                         final_norm: str = 'norm3') -> Dict[str, Tensor]:
    """Map official BEVT backbone keys (no ``backbone.`` prefix) to ours.

    The fusion decoders get descriptive names and the final ``norm``
    becomes mmaction2's ``norm{last stage}``; everything else (patch
    embeddings, blocks, merging layers, ``mask_token``) keeps its name.

    Args:
        state_dict (dict): Backbone state dict in the official layout.
        final_norm (str): Our name of the final norm. Defaults to 'norm3'.

    Returns:
        dict: The renamed state dict (a new dict, same tensors).
    """
    renamed = {}
    for key, value in state_dict.items():
        for pattern, new in OFFICIAL_KEY_RENAMES:
            key = re.sub(pattern, new, key)
        key = re.sub(r'^norm\.', f'{final_norm}.', key)
        renamed[key] = value
    return renamed
