# Copyright (c) bevt contributors. All rights reserved.
"""Official BEVT backbone names -> ours (owned by the backbone)."""
from bevt.models.backbones.bevt_swin_weights import (OFFICIAL_KEY_RENAMES,
                                                     rename_official_keys)

__all__ = ['OFFICIAL_KEY_RENAMES', 'rename_official_keys']
