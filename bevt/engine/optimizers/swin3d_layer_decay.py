# Copyright (c) bevt contributors. All rights reserved.
"""Layer-wise learning-rate decay for fine-tuning a Video Swin.

The official BEVT Kinetics-400 fine-tune writes layer decay as 28
hand-written ``custom_keys`` for Swin-B. Under the longest-matching-key rule
of mmcv and mmengine those keys leave every ``relative_position_bias_table``
at lr_mult 1 and give weight decay to the norms inside blocks, downsample
layers and the patch embedding, and to every bias. The paper's configs keep
those groups (``BEVTOptimWrapperConstructor`` with the official
``custom_keys``). This constructor is the corrected variant, **not the
paper's recipe** (the ``*-corrected-groups-*`` configs): it derives the same
depth table from any Video Swin, applies it to *every* parameter of a block
and exempts norms, biases and relative-position tables from weight decay.
"""
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm, _InstanceNorm

from bevt.registry import OPTIM_WRAPPER_CONSTRUCTORS
from .merged_groups import merge_param_groups

NORM_TYPES = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm)


def swin3d_layer_depths(backbone: nn.Module) -> Dict[str, int]:
    """Depth from the top of every unit of a Video Swin.

    The units, from the input up, are ``patch_embed``, then for every stage
    ``i`` its blocks ``layers.{i}.blocks.{j}`` and, where the stage has one,
    ``layers.{i}.downsample``. The top unit has depth 1 and ``patch_embed``
    the largest depth. A final norm ``norm{i}`` (mmaction2 names the
    output norm of stage ``i`` so) or ``norm`` (the official name) gets the
    depth of the last block of its stage. For Swin-B (depths 2-2-18-2):
    ``norm3`` and ``layers.3.blocks.1`` 1, ``layers.3.blocks.0`` 2,
    ``layers.2.downsample`` 3, ``layers.2.blocks.17 ... 0`` 4 ... 21, ...,
    ``layers.0.blocks.0`` 27, ``patch_embed`` 28.

    Args:
        backbone (nn.Module): A Video Swin with ``patch_embed`` and
            ``layers`` (each with ``blocks`` and an optional ``downsample``),
            e.g. mmaction2's ``SwinTransformer3D``.

    Returns:
        dict: Unit name (relative to the backbone) -> depth k >= 1.
    """
    if not (hasattr(backbone, 'patch_embed') and hasattr(backbone, 'layers')):
        raise TypeError('Layer decay needs a Video Swin backbone with '
                        f'`patch_embed` and `layers`, got {type(backbone)}')
    units = ['patch_embed']
    for i, layer in enumerate(backbone.layers):
        units += [f'layers.{i}.blocks.{j}' for j in range(len(layer.blocks))]
        if getattr(layer, 'downsample', None) is not None:
            units.append(f'layers.{i}.downsample')
    depths = {unit: len(units) - idx for idx, unit in enumerate(units)}
    for i, layer in enumerate(backbone.layers):
        top_block = f'layers.{i}.blocks.{len(layer.blocks) - 1}'
        depths[f'norm{i}'] = depths[top_block]
    depths['norm'] = depths[f'norm{len(backbone.layers) - 1}']
    return depths


def _unit_of(name: str, depths: Dict[str, int]) -> Optional[str]:
    """The longest unit that contains parameter ``name`` (dot boundaries)."""
    parts = name.split('.')
    for end in range(len(parts) - 1, 0, -1):
        unit = '.'.join(parts[:end])
        if unit in depths:
            return unit
    return None


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class BEVTSwin3DLayerDecayConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise lr decay and no-decay groups for a Video Swin recognizer.

    Used to fine-tune `BEVT: BERT Pretraining of Video Transformers
    <https://arxiv.org/abs/2112.01529>`_ checkpoints in mmaction2's
    ``Recognizer3D`` + ``SwinTransformer3D``. Every parameter of the
    backbone gets ``lr_mult = layer_decay_rate ** k * backbone_lr_mult``
    with k its depth from the top (:func:`swin3d_layer_depths`); all other
    parameters (the head) get lr_mult 1. Relative-position tables are
    decayed with their block. Weight decay is 0 for the parameters of norm
    layers (``norm_decay_mult``), for all biases (``bias_decay_mult``) and
    for names containing a ``no_decay_keys`` entry; other parameters get
    decay_mult 1.

    ``paramwise_cfg`` keys (others raise ``ValueError``):

    - ``layer_decay_rate`` (float): Defaults to 1.0 (no layer decay).
    - ``backbone_lr_mult`` (float): Multiplies the lr of every backbone
      parameter (SSv2's 0.1). Defaults to 1.0.
    - ``norm_decay_mult`` (float): Defaults to 0.0.
    - ``bias_decay_mult`` (float): Defaults to 0.0.
    - ``no_decay_keys`` (Sequence[str]): Defaults to
      ``('absolute_pos_embed', 'relative_position_bias_table')``.
    - ``custom_keys`` (dict): ``{substring: dict(lr_mult=, decay_mult=)}``
      like mmengine's, but **every** matching key multiplies on top of the
      rules above (no longest-key-wins rule, nothing is overridden).

    A table of param group -> (depth, lr_mult, decay_mult, count) is
    logged at INFO.

    Args:
        optim_wrapper_cfg (dict): The optimizer wrapper config (with
            ``optimizer``), as for ``DefaultOptimWrapperConstructor``.
        paramwise_cfg (dict, optional): The keys above. Defaults to None.
    """

    valid_keys = ('layer_decay_rate', 'backbone_lr_mult', 'norm_decay_mult',
                  'bias_decay_mult', 'no_decay_keys', 'custom_keys')
    backbone_name = 'backbone'

    def __init__(self,
                 optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None) -> None:
        paramwise_cfg = dict(paramwise_cfg or {})
        unknown = sorted(set(paramwise_cfg) - set(self.valid_keys))
        if unknown:
            raise ValueError(f'Invalid paramwise_cfg keys {unknown}; valid '
                             f'keys are {list(self.valid_keys)}')
        # always take the param-wise path (mmengine skips it when empty)
        paramwise_cfg.setdefault('layer_decay_rate', 1.0)
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        cfg = self.paramwise_cfg
        self.layer_decay_rate = float(cfg['layer_decay_rate'])
        self.backbone_lr_mult = float(cfg.get('backbone_lr_mult', 1.0))
        self.norm_decay_mult = float(cfg.get('norm_decay_mult', 0.0))
        self.bias_decay_mult = float(cfg.get('bias_decay_mult', 0.0))
        no_decay_keys = cfg.get('no_decay_keys',
                                ('absolute_pos_embed',
                                 'relative_position_bias_table'))
        if isinstance(no_decay_keys, str):
            no_decay_keys = (no_decay_keys, )
        self.no_decay_keys: Sequence[str] = tuple(no_decay_keys)
        self.custom_keys: Dict[str, dict] = dict(cfg.get('custom_keys', {}))
        if not 0 < self.layer_decay_rate <= 1:
            raise ValueError('layer_decay_rate must be in (0, 1], got '
                             f'{self.layer_decay_rate}')

    def _multipliers(self, name: str, is_norm: bool,
                     depths: Dict[str, int]) -> Tuple[str, int, float, float]:
        """(group, depth, lr_mult, decay_mult) of one parameter."""
        prefix = self.backbone_name + '.'
        if name.startswith(prefix):
            unit = _unit_of(name[len(prefix):], depths)
            if unit is None:  # not in a known unit: treat as the input end
                unit, depth = '<other>', max(depths.values())
                print_log(
                    f'{name} is in no Video Swin unit; it gets the depth '
                    f'of patch_embed ({depth})',
                    logger='current',
                    level=logging.WARNING)
            else:
                depth = depths[unit]
            group = prefix + unit
            lr_mult = self.layer_decay_rate**depth * self.backbone_lr_mult
        else:
            group, depth, lr_mult = name.split('.')[0], 0, 1.0
        if is_norm:
            decay_mult = self.norm_decay_mult
        elif name.endswith('.bias') or name == 'bias':
            decay_mult = self.bias_decay_mult
        elif any(key in name for key in self.no_decay_keys):
            decay_mult = 0.0
        else:
            decay_mult = 1.0
        for key, options in self.custom_keys.items():
            if key in name:
                lr_mult *= options.get('lr_mult', 1.0)
                decay_mult *= options.get('decay_mult', 1.0)
        return group, depth, lr_mult, decay_mult

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   **kwargs) -> None:
        """Add the param groups of ``module``: one per distinct (lr,
        weight decay), see :func:`merge_param_groups`.

        Args:
            params (list[dict]): Param groups, extended in place.
            module (nn.Module): The whole model (with a ``backbone``).
            prefix (str): Unused; kept for the parent's signature.
        """
        backbone = getattr(module, self.backbone_name, None)
        if backbone is None:
            raise TypeError(f'{type(module)} has no `{self.backbone_name}` '
                            'to apply layer decay to')
        depths = swin3d_layer_depths(backbone)
        rows: Dict[Tuple[str, int, float, float], int] = {}
        for module_name, mod in module.named_modules():
            is_norm = isinstance(mod, NORM_TYPES)
            for param_name, param in mod.named_parameters(recurse=False):
                name = (f'{module_name}.{param_name}'
                        if module_name else param_name)
                if not param.requires_grad:
                    print_log(
                        f'{name} is skipped since its requires_grad=False',
                        logger='current',
                        level=logging.WARNING)
                    continue
                group, depth, lr_mult, decay_mult = self._multipliers(
                    name, is_norm, depths)
                param_group = dict(params=[param], lr=self.base_lr * lr_mult)
                if self.base_wd is not None:
                    param_group['weight_decay'] = self.base_wd * decay_mult
                params.append(param_group)
                row = (group, depth, lr_mult, decay_mult)
                rows[row] = rows.get(row, 0) + 1
        params[:] = merge_param_groups(params)
        self._log_table(rows, max(depths.values()))

    def _log_table(self, rows: Dict[Tuple[str, int, float, float], int],
                   num_depths: int) -> None:
        """Log param group -> depth, lr_mult, decay_mult, count at INFO."""
        lines = [
            f'{type(self).__name__}: layer_decay_rate='
            f'{self.layer_decay_rate}, backbone_lr_mult='
            f'{self.backbone_lr_mult}, {num_depths} backbone depths, '
            f'base lr={self.base_lr}, base weight_decay={self.base_wd}',
            f'{"param group":<34} {"depth":>5} {"lr_mult":>10} '
            f'{"decay_mult":>10} {"params":>6}'
        ]
        order: Dict[str, int] = {}
        for group, *_ in rows:
            order.setdefault(group, len(order))
        for (group, depth, lr_mult, decay_mult), count in sorted(
                rows.items(), key=lambda r: (order[r[0][0]], -r[0][3])):
            lines.append(f'{group:<34} {depth:>5} {lr_mult:>10.4g} '
                         f'{decay_mult:>10.4g} {count:>6}')
        print_log('\n'.join(lines), logger='current', level=logging.INFO)
