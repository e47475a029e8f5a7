# Copyright (c) bevt contributors. All rights reserved.
"""Type aliases used in bevt signatures (as in mmaction2)."""
from typing import Dict, List, Optional, Union

import torch
from mmengine.config import ConfigDict
from mmengine.structures import BaseDataElement

ConfigType = Union[ConfigDict, dict]
OptConfigType = Optional[ConfigType]
MultiConfig = Union[ConfigType, List[ConfigType]]
OptMultiConfig = Optional[MultiConfig]
SampleList = List[BaseDataElement]
OptSampleList = Optional[SampleList]
ForwardResults = Union[Dict[str, torch.Tensor], List[BaseDataElement], tuple,
                       torch.Tensor]
