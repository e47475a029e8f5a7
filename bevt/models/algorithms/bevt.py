# Copyright (c) bevt contributors. All rights reserved.
"""The BEVT algorithm: masked image and video modeling in one step."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmaction.structures import ActionDataSample
from mmengine.model import BaseModel
from torch import Tensor

from bevt.registry import MODELS
from bevt.utils.typing_utils import ConfigType, OptConfigType, OptMultiConfig

Batch = Dict[str, Union[Dict[str, Tensor], list]]
_VIEW_HINT = ('the tokenizer view must be (H/16) x the tokenizer downsample '
              'pixels wide (112 px for DALL-E on 224 px inputs)')


@MODELS.register_module()
class BEVT(BaseModel):
    """BEVT: masked image modeling + masked video modeling, shared backbone.

    `BEVT: BERT Pretraining of Video Transformers
    <https://arxiv.org/abs/2112.01529>`_

    Follows mmpretrain's ``BaseSelfSupervisor`` pattern: the masks come
    from the data, the targets from a frozen tokenizer under no-grad, the
    losses from the head, per stream; mmengine sums them.

    The data preprocessor hands over one batch per data loader (the
    multi-loader loop yields ``(video batch, image batch)``), or a single
    batch. A batch of clips (N, 3, T, H, W) is the video stream (loss key
    ``loss_video``), a batch of images (N, 3, H, W) the image stream
    (``loss_img``).

    Args:
        backbone (dict): E.g. ``BEVTSwinTransformer3D``: ``backbone(x,
            mask)`` gives (N, L, C) tokens.
        head (dict): E.g. ``BEVTMIMHead`` (ids) or ``BEVTRegressionHead``
            (features): ``loss(feats, target, mask, stream)``.
        target_generator (dict): The tokenizer, e.g. ``BEVTDALLETokenizer``:
            ``target_generator(view, cell_mask)`` gives (N, [T,] h, w) ids
            (or features).
        data_preprocessor (dict, optional): Defaults to
            ``dict(type='BEVTDataPreprocessor')``.
        tokenize_all_frames (bool): Tokenize every cell of every frame, as
            the official code. By default the tokenizer gets ``target_mask``
            as its ``cell_mask``: frames without a masked token are skipped
            and the DALL-E vocabulary projection runs on the masked cells
            only; the loss is the same. Defaults to False.
        compile_backbone (bool | dict): Compile the backbone in place with
            ``torch.compile`` (weights and state-dict keys unchanged); a dict
            gives its arguments, e.g. ``dict(mode='max-autotune')``.
            Defaults to False.
        init_cfg (dict | list[dict], optional): Defaults to None.
    """

    def __init__(self,
                 backbone: ConfigType,
                 head: ConfigType,
                 target_generator: ConfigType,
                 data_preprocessor: OptConfigType = None,
                 tokenize_all_frames: bool = False,
                 compile_backbone: Union[bool, dict] = False,
                 init_cfg: OptMultiConfig = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='BEVTDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.head = MODELS.build(head)
        self.target_generator = MODELS.build(target_generator)
        if not isinstance(tokenize_all_frames, bool):
            raise TypeError('tokenize_all_frames must be a bool, got '
                            f'{tokenize_all_frames!r}')
        self.tokenize_all_frames = tokenize_all_frames
        self._check_parts()
        if not isinstance(compile_backbone, (bool, dict)):
            raise TypeError('compile_backbone must be a bool or a dict of '
                            'torch.compile arguments, got '
                            f'{type(compile_backbone).__name__}')
        self.compile_backbone = compile_backbone
        if compile_backbone:
            options = {} if compile_backbone is True else dict(
                compile_backbone)
            options.setdefault('dynamic', False)  # one graph per stream
            self.backbone.compile(**options)

    def _check_parts(self) -> None:
        """Refuse parts that cannot work together, naming the fields."""
        tokens = getattr(self.backbone, 'out_channels', None)
        head_in = getattr(self.head, 'in_channels', None)
        if None not in (tokens, head_in) and tokens != head_in:
            raise ValueError(f'head.in_channels ({head_in}) != the '
                             f'backbone output channels ({tokens})')
        vocab = self.target_generator.vocab_size
        dims = self.target_generator.target_dims
        classes = getattr(self.head, 'num_classes', None)
        head_dims = getattr(self.head, 'target_dims', None)
        if None not in (vocab, classes) and vocab != classes:
            raise ValueError(f'head.num_classes ({classes}) != '
                             f'target_generator vocab_size ({vocab})')
        if (vocab is None) != (classes is None) or (dims != head_dims):
            raise ValueError(
                f'head {type(self.head).__name__} does not fit the targets '
                f'of {type(self.target_generator).__name__} (vocab_size='
                f'{vocab}, target_dims={dims})')

    def forward(self,
                *batches: Union[Batch, Tensor],
                inputs: Optional[Union[Dict[str, Tensor], Tensor]] = None,
                data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        """Dispatch on ``mode`` ('loss', 'tensor', 'predict').

        mmengine calls ``forward(inputs=..., data_samples=..., mode=...)``
        for one batch and ``forward(batch_0, batch_1, ..., mode=...)`` for
        the tuple of a multi-loader step.
        """
        batches = [
            dict(inputs=dict(imgs=b)) if isinstance(b, Tensor) else b
            for b in batches
        ]
        if inputs is not None:
            if isinstance(inputs, Tensor):
                inputs = dict(imgs=inputs)
            batches.insert(0, dict(inputs=inputs, data_samples=data_samples))
        if not batches:
            raise ValueError('BEVT.forward got no batch')
        if mode == 'loss':
            return self.loss(batches)
        if mode == 'tensor':
            feats = [self.extract_feat(b['inputs']) for b in batches]
            return feats[0] if len(feats) == 1 else tuple(feats)
        if mode == 'predict':
            return self.predict(batches)
        raise RuntimeError(f'Invalid mode "{mode}": use "loss", "tensor" '
                           'or "predict"')

    @staticmethod
    def stream_of(imgs: Tensor) -> str:
        """'video' for clips (N, 3, T, H, W), 'img' for images (N, 3, H, W).
        """
        if imgs.dim() not in (4, 5):
            raise ValueError('inputs["imgs"] must be clips (N, 3, T, H, W) '
                             f'or images (N, 3, H, W), got {imgs.shape}')
        return 'video' if imgs.dim() == 5 else 'img'

    def extract_feat(self, inputs: Dict[str, Tensor]) -> Tensor:
        """Token features of one stream.

        Args:
            inputs (dict): ``imgs`` (N, 3, [T,] H, W) and optionally
                ``input_mask`` (bool, True = masked).

        Returns:
            Tensor: Tokens of shape (N, L, C).
        """
        return self.backbone(inputs['imgs'], inputs.get('input_mask'))

    @torch.no_grad()
    def targets(self,
                inputs: Dict[str, Tensor],
                all_frames: bool = False) -> Tensor:
        """Tokenizer targets of one stream, in the backbone's token order.

        Args:
            inputs (dict): ``tokenizer_imgs`` (N, 3, [T,] h, w) and
                ``target_mask`` (bool (N, [T,] H/16, W/16), True = masked).
            all_frames (bool): Tokenize every cell even without
                ``tokenize_all_frames``. Defaults to False.

        Returns:
            Tensor: Ids (N, L) (-1 where no target was computed) or
            features (N, L, D), detached.
        """
        if 'tokenizer_imgs' not in inputs or 'target_mask' not in inputs:
            raise ValueError('a BEVT loss needs inputs["tokenizer_imgs"] '
                             'and inputs["target_mask"] (see PackBEVTInputs)')
        view, mask = inputs['tokenizer_imgs'], inputs['target_mask'].bool()
        step = self.target_generator.downsample
        grid = (view.shape[-2] // step, view.shape[-1] // step)
        if tuple(mask.shape[-2:]) != grid:
            raise ValueError(
                f'target_mask has {tuple(mask.shape[-2:])} cells per frame '
                f'but the tokenizer gives {grid} for its '
                f'{tuple(view.shape[-2:])} view; ' + _VIEW_HINT)
        all_frames = all_frames or self.tokenize_all_frames
        target = self.target_generator(
            view, cell_mask=None if all_frames else mask)
        # (N, [T,] h, w[, D]) -> (N, L[, D])
        return target.flatten(1, 3 if view.dim() == 5 else 2)

    def loss(self, batches: Sequence[Batch]) -> Dict[str, Tensor]:
        """Losses of every stream of one step (mmengine sums them).

        Args:
            batches (Sequence[dict]): Preprocessed batches, one per stream.

        Returns:
            dict: ``loss_video`` / ``loss_img`` and the head's diagnostics
            (e.g. ``acc_video`` / ``acc_img``).
        """
        inputs = [b['inputs'] for b in batches]
        streams = [self.stream_of(i['imgs']) for i in inputs]
        if len(set(streams)) != len(streams):
            raise ValueError(f'one batch per stream, got {streams}')
        targets = [self.targets(i) for i in inputs]  # no grad
        feats = [self.extract_feat(i) for i in inputs]
        losses = {}
        for stream, i, feat, target in zip(streams, inputs, feats, targets):
            mask = i['target_mask'].flatten(1)  # (N, L), True = masked
            if target.shape[1] != feat.shape[1]:
                raise ValueError(
                    f'{stream} stream: the backbone gives {feat.shape[1]} '
                    f'tokens per sample, the tokenizer {target.shape[1]} '
                    'targets; ' + _VIEW_HINT)
            losses.update(self.head.loss(feat, target, mask, stream))
        return losses

    @torch.no_grad()
    def predict(self, batches: Sequence[Batch]) -> List[ActionDataSample]:
        """Per-token predictions, for visualisation and diagnostics.

        Every frame is tokenized. Each data sample gets, in (t, h, w) token
        order: ``pred_tokens`` and ``target_tokens`` (long, (L,)) from an
        ids head, or ``pred_features`` and ``target_features`` (float,
        (L, D)) from a regression head.

        Returns:
            list[ActionDataSample]: The data samples of every batch, in
            order.
        """
        inputs = [b['inputs'] for b in batches]
        results = []
        for batch, i in zip(batches, inputs):
            preds = self.head.predict(self.extract_feat(i))  # (N, L[, D])
            target = self.targets(i, all_frames=True)
            kind = 'features' if preds.is_floating_point() else 'tokens'
            samples = batch.get('data_samples') or [None] * len(preds)
            for n, sample in enumerate(samples):
                sample = ActionDataSample() if sample is None else sample
                sample.set_field(preds[n], f'pred_{kind}')
                sample.set_field(target[n], f'target_{kind}')
                results.append(sample)
        return results
