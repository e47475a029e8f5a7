# Copyright (c) bevt contributors. All rights reserved.
"""The BEVT algorithm: masked image and video modeling in one step."""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmaction.structures import ActionDataSample
from mmengine.model import BaseModel
from torch import Tensor

from bevt.models.target_generators.frames import fold_views, unfold_targets
from bevt.models.utils import masked_positions
from bevt.registry import MODELS
from bevt.utils.typing_utils import ConfigType, OptConfigType, OptMultiConfig

Batch = Dict[str, Union[Dict[str, Tensor], list]]
#: One stream's preprocessed inputs, or several streams' (a joint call)
StreamInputs = Union[Dict[str, Tensor], Sequence[Dict[str, Tensor]]]
_VIEW_HINT = ('the tokenizer view must be (H/16) x the tokenizer downsample '
              'pixels wide (112 px for DALL-E on 224 px inputs)')


@MODELS.register_module()
class BEVT(BaseModel):
    """BEVT: masked image modeling + masked video modeling, shared backbone.

    `BEVT: BERT Pretraining of Video Transformers
    <https://arxiv.org/abs/2112.01529>`_

    Follows mmpretrain's ``BaseSelfSupervisor`` pattern: the masks come
    from the data, the targets from a frozen tokenizer under no-grad. This
    class only orchestrates: each stream of a step goes backbone -> head,
    with its own target ids, and the losses are summed by mmengine.

    The data preprocessor hands over one batch per data loader (the
    multi-loader loop yields ``(video batch, image batch)``), or a single
    batch (stage 1: images only; the video-only ablation). A batch of clips
    (N, 3, T, H, W) is the video stream (loss key ``loss_video``), a batch
    of images (N, 3, H, W) the image stream (``loss_img``).

    Args:
        backbone (dict): E.g. ``BEVTSwinTransformer3D``; ``forward(x, mask)``
            returns (N, L, C) token features.
        head (dict): E.g. ``BEVTMIMHead`` (ids) or ``BEVTRegressionHead``
            (HOG features); ``loss(feats, target, mask, stream)``.
        target_generator (dict): The tokenizer, e.g. ``BEVTDALLETokenizer``;
            maps the tokenizer view to (N, [T,] h, w) ids (or features).
        data_preprocessor (dict, optional): Defaults to
            ``dict(type='BEVTDataPreprocessor')``.
        tokenize_all_frames (bool): Run the tokenizer on every cell of
            every frame, as the official code; by default the tokenizer gets
            ``target_mask`` as its ``cell_mask``, so frames (and images)
            without a masked token are skipped and the DALL-E vocabulary
            projection runs on the masked cells only, which leaves the loss
            unchanged. Defaults to False.
        tokenizer_first (bool): Read on the host, at the start of a step,
            everything the step reads from the device (the tokenizer's
            :meth:`plan_targets` of every stream and the heads' masked
            positions), then run the tokenizer before the backbone: on CUDA
            no read then waits for queued work, so the host can launch the
            whole forward and backward ahead of the device, and the
            backbone is launched while the device runs the tokenizer's
            convolutions. False runs the tokenizer after the backbone, as
            the official code (whose head holds the tokenizer), each part
            reading when it needs to. The result is the same either way.
            Defaults to True.
        joint_streams (bool): Run the backbone once for all streams of a
            step (``backbone([clips, images], [masks...])``): each block then
            runs its per-token layers on the tokens of both streams at once
            (:mod:`~bevt.models.backbones.joint_streams`; a Swin-B step
            runs a third fewer operators). False runs one backbone pass per
            stream, as the official code. The result is the same up to
            float rounding. Defaults to True.
        joint_tokenizer (bool): Encode the tokenizer views of every stream
            of a step in one tokenizer call, the clip frames and the images
            in one batch, as the official head does
            (``torch.cat((imgs_3d, imgs_2d))``); the views must be of one
            size. False makes one call per stream, which gives the same
            targets. Defaults to False.
        compile_backbone (bool | dict): Compile the backbone with
            ``torch.compile`` (in place, through ``nn.Module.compile``: the
            weights and state-dict keys stay as they are); a dict gives
            ``torch.compile``'s arguments, e.g. ``dict(mode='max-autotune')``.
            Each stream (clip or image shape) compiles once. Defaults to
            False.
        init_cfg (dict | list[dict], optional): Defaults to None.
    """

    def __init__(self,
                 backbone: ConfigType,
                 head: ConfigType,
                 target_generator: ConfigType,
                 data_preprocessor: OptConfigType = None,
                 tokenize_all_frames: bool = False,
                 tokenizer_first: bool = True,
                 joint_streams: bool = True,
                 joint_tokenizer: bool = False,
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
        self.tokenize_all_frames = tokenize_all_frames
        for name, value in (('tokenizer_first', tokenizer_first),
                            ('joint_streams', joint_streams),
                            ('joint_tokenizer', joint_tokenizer)):
            if not isinstance(value, bool):
                raise TypeError(f'{name} must be a bool, got {value!r}')
        self.tokenizer_first = tokenizer_first
        self.joint_streams = joint_streams
        self.joint_tokenizer = joint_tokenizer
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
        channels = getattr(self.backbone, 'out_channels', None)
        head_in = getattr(self.head, 'in_channels', None)
        if channels is not None and head_in is not None \
                and channels != head_in:
            raise ValueError(f'head.in_channels ({head_in}) != the '
                             f'backbone output channels ({channels})')
        vocab = getattr(self.target_generator, 'vocab_size', None)
        classes = getattr(self.head, 'num_classes', None)
        if vocab is not None and classes is not None and vocab != classes:
            raise ValueError(f'head.num_classes ({classes}) != '
                             f'target_generator vocab_size ({vocab})')
        dims = getattr(self.target_generator, 'target_dims', None)
        head_dims = getattr(self.head, 'target_dims', None)
        if (vocab is None) != (classes is None) or (dims is not None
                                                    and head_dims is not None
                                                    and dims != head_dims):
            raise ValueError(
                f'head {type(self.head).__name__} does not fit the targets '
                f'of {type(self.target_generator).__name__} (vocab_size='
                f'{vocab}, target_dims={dims})')

    # ------------------------------------------------------------------
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
            dict(inputs=dict(
                imgs=b), data_samples=None) if isinstance(b, Tensor) else b
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
            feats = tuple(self.extract_feat(b['inputs']) for b in batches)
            return feats[0] if len(feats) == 1 else feats
        if mode == 'predict':
            return self.predict(batches)
        raise RuntimeError(f'Invalid mode "{mode}": use "loss", "tensor" '
                           'or "predict"')

    def extract_feat(self, inputs: Dict[str, Tensor]) -> Tensor:
        """Token features of one stream.

        Args:
            inputs (dict): ``imgs`` (N, 3, [T,] H, W) and optionally
                ``input_mask`` (bool, True = masked).

        Returns:
            Tensor: (N, L, C).
        """
        return self.backbone(inputs['imgs'], inputs.get('input_mask'))

    @staticmethod
    def stream_of(imgs: Tensor) -> str:
        """'video' for clips (N, 3, T, H, W), 'img' for images."""
        if imgs.dim() == 5:
            return 'video'
        if imgs.dim() == 4:
            return 'img'
        raise ValueError('inputs["imgs"] must be clips (N, 3, T, H, W) or '
                         f'images (N, 3, H, W), got {tuple(imgs.shape)}')

    def _tokenizer_inputs(self, inputs: Dict[str, Tensor],
                          all_frames: bool) -> Tuple[Tensor, Optional[Tensor]]:
        """The tokenizer view and its ``cell_mask`` (None = every cell)."""
        if 'tokenizer_imgs' not in inputs or 'target_mask' not in inputs:
            raise ValueError('a BEVT loss needs inputs["tokenizer_imgs"] '
                             'and inputs["target_mask"] (see PackBEVTInputs)')
        view, cell_mask = inputs['tokenizer_imgs'], None
        if not (self.tokenize_all_frames or all_frames):
            # only the masked cells need a target: frames without one are
            # skipped, the DALL-E projection runs on the masked cells only
            cell_mask = inputs['target_mask'].to(torch.bool)
            step = self.target_generator.downsample
            grid = (view.shape[-2] // step, view.shape[-1] // step)
            if tuple(cell_mask.shape[-2:]) != grid:
                raise ValueError(
                    f'target_mask has {tuple(cell_mask.shape[-2:])} cells '
                    f'per frame but the tokenizer gives {grid} for its '
                    f'{tuple(view.shape[-2:])} view; ' + _VIEW_HINT)
        return view, cell_mask

    def _joint_inputs(self, inputs: Sequence[Dict[str, Tensor]],
                      all_frames: bool) -> Tuple[Tensor, Optional[Tensor]]:
        """The tokenizer views of several streams as one batch of frames
        (F, 3, h, w) and their ``cell_mask`` (F, h/d, w/d) or None
        (:func:`~bevt.models.target_generators.frames.fold_views`)."""
        views, cells = zip(
            *[self._tokenizer_inputs(i, all_frames) for i in inputs])
        return fold_views(views, cells)

    def plan_targets(self,
                     inputs: StreamInputs,
                     all_frames: bool = False) -> Optional[Any]:
        """The tokenizer's plan for :meth:`targets` of the same ``inputs``
        (what it reads from the masks on the host), or None if the
        tokenizer has no ``plan``."""
        if not hasattr(self.target_generator, 'plan'):
            return None
        if isinstance(inputs, dict):
            view, cell_mask = self._tokenizer_inputs(inputs, all_frames)
        else:
            view, cell_mask = self._joint_inputs(inputs, all_frames)
        return self.target_generator.plan(view, cell_mask=cell_mask)

    @torch.no_grad()
    def targets(self,
                inputs: StreamInputs,
                all_frames: bool = False,
                plan: Optional[Any] = None) -> Union[Tensor, List[Tensor]]:
        """Tokenizer targets of one stream, flattened to the token order;
        given a list of streams, those of each in one tokenizer call.

        Args:
            inputs (dict | Sequence[dict]): ``tokenizer_imgs``
                (N, 3, [T,] h, w) and ``target_mask`` (bool
                (N, [T,] H/16, W/16), True = masked), of one stream or of
                several (their views of one size).
            all_frames (bool): Tokenize every frame even if
                ``tokenize_all_frames`` is off. Defaults to False.
            plan (TokenizerPlan, optional): :meth:`plan_targets` of the same
                arguments, made earlier. Defaults to None.

        Returns:
            Tensor | list[Tensor]: ids (N, L) (-1 where a frame was not
            tokenized) or features (N, L, D), detached; a list of them for a
            list of streams.
        """
        extra = {} if plan is None else dict(plan=plan)
        if not isinstance(inputs, dict):
            frames, cell_mask = self._joint_inputs(inputs, all_frames)
            target = self.target_generator(
                frames, cell_mask=cell_mask, **extra)
            return unfold_targets(target.detach(),
                                  [i['tokenizer_imgs'] for i in inputs])
        view, cell_mask = self._tokenizer_inputs(inputs, all_frames)
        target = self.target_generator(view, cell_mask=cell_mask, **extra)
        if target.is_floating_point():  # (N, [T,] h, w, D) features
            return target.flatten(1, -2).detach()
        return target.flatten(1).detach()

    def _one_tokenizer_call(self, inputs: List[Dict[str, Tensor]]) -> bool:
        """Whether a step encodes all its streams in one tokenizer call
        (``joint_tokenizer``, and more than one stream)."""
        return self.joint_tokenizer and len(inputs) > 1

    def _all_targets(self, inputs: List[Dict[str, Tensor]], all_frames: bool,
                     plans: Optional[list]) -> List[Tensor]:
        """:meth:`targets` of every stream, in one call if
        :meth:`_one_tokenizer_call`; ``plans``: :meth:`_all_plans` or None."""
        if self._one_tokenizer_call(inputs):
            plan = None if plans is None else plans[0]
            return self.targets(inputs, all_frames, plan)
        plans = [None] * len(inputs) if plans is None else plans
        return [self.targets(i, all_frames, p) for i, p in zip(inputs, plans)]

    def _all_plans(self, inputs: List[Dict[str, Tensor]],
                   all_frames: bool) -> list:
        """:meth:`plan_targets` of every stream, or the one plan of all of
        them if :meth:`_one_tokenizer_call`."""
        if self._one_tokenizer_call(inputs):
            return [self.plan_targets(inputs, all_frames)]
        return [self.plan_targets(i, all_frames) for i in inputs]

    def _stream_outputs(self,
                        batches: Sequence[Batch],
                        all_frames: bool = False) -> List[tuple]:
        """(stream, features, targets, flat target mask, masked positions
        or None) of each batch."""
        inputs = [batch['inputs'] for batch in batches]
        streams = [self.stream_of(i['imgs']) for i in inputs]
        plans, positions = None, [None] * len(inputs)
        targets = None
        if self.tokenizer_first:
            # every value the host reads in this step, before any work is
            # queued (on CUDA a read waits for all the work queued before
            # it): the tokenizer's frames and cells, the heads' positions;
            # then the tokenizer, before the backbone
            plans = self._all_plans(inputs, all_frames)
            positions = [
                masked_positions(i['target_mask'].flatten(1).to(torch.bool))
                for i in inputs
            ]
            targets = self._all_targets(inputs, all_frames, plans)
        if self.joint_streams and len(inputs) > 1:
            # one backbone call for every stream
            feats = self.backbone([i['imgs'] for i in inputs],
                                  [i.get('input_mask') for i in inputs])
        else:  # stream after stream
            feats = [self.extract_feat(i) for i in inputs]
        if targets is None:  # after the backbone, as the official head
            targets = self._all_targets(inputs, all_frames, None)
        outputs = []
        for stream, i, feat, target, where in zip(streams, inputs, feats,
                                                  targets, positions):
            mask = i['target_mask'].flatten(1)  # (N, L)
            tokens = feat.shape[1]
            if target.shape[1] != tokens or mask.shape[1] != tokens:
                raise ValueError(
                    f'{stream} stream: the backbone predicts {tokens} '
                    f'tokens per sample, the tokenizer gives '
                    f'{target.shape[1]} targets and target_mask has '
                    f'{mask.shape[1]} entries; ' + _VIEW_HINT)
            outputs.append((stream, feat, target, mask, where))
        return outputs

    def loss(self, batches: Sequence[Batch]) -> Dict[str, Tensor]:
        """Losses of every stream of one step (mmengine sums them).

        Args:
            batches (Sequence[dict]): Preprocessed batches, one per stream.

        Returns:
            dict: ``loss_video`` / ``loss_img`` and the diagnostics
            ``acc_video`` / ``acc_img``.
        """
        streams = [self.stream_of(b['inputs']['imgs']) for b in batches]
        for stream in set(streams):
            if streams.count(stream) > 1:
                raise ValueError(f'two {stream} batches in one step')
        losses = {}
        for stream, feats, target, mask, where in self._stream_outputs(
                batches):
            extra = {} if where is None else dict(positions=where)
            losses.update(self.head.loss(feats, target, mask, stream, **extra))
        return losses

    @torch.no_grad()
    def predict(self, batches: Sequence[Batch]) -> List:
        """Per-token predictions, for visualisation and diagnostics.

        Every frame is tokenized. Each data sample gets, beside its masks,
        in (t, h, w) token order: ``pred_tokens`` and ``target_tokens``
        (long, (L,)) from an ids head (``BEVTMIMHead``), or
        ``pred_features`` and ``target_features`` (float, (L, D)) from a
        regression head (``BEVTRegressionHead``).

        Returns:
            list: The data samples of every batch, in order.
        """
        results = []
        outputs = self._stream_outputs(batches, True)
        for batch, (_, feats, target, _, _) in zip(batches, outputs):
            if not hasattr(self.head, 'predict'):
                raise ValueError(f'{type(self.head).__name__} has no '
                                 'predict()')
            preds = self.head.predict(feats)  # (N, L) or (N, L, D)
            kind = 'features' if preds.is_floating_point() else 'tokens'
            samples = batch.get('data_samples') or [None] * len(preds)
            for i, sample in enumerate(samples):
                if sample is None:
                    sample = ActionDataSample()
                sample.set_field(preds[i], f'pred_{kind}')
                sample.set_field(target[i], f'target_{kind}')
                results.append(sample)
        return results
