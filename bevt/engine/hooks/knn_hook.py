# Copyright (c) bevt contributors. All rights reserved.
"""Weighted k-nearest-neighbour accuracy of the backbone during pretraining.

The masked-modeling losses and token accuracies of BEVT say little about the
representation. :class:`BEVTKNNHook` measures it the way image
self-supervised codebases do (DINO's ``eval_knn.py``): features of a
labelled "bank" set and a labelled "query" set, each query classified by
the similarity-weighted vote of its ``k`` nearest bank features.
``tools/analysis_tools/knn_eval.py`` runs the same code on any checkpoint.
"""
import copy
import logging
import os.path as osp
import time
from contextlib import nullcontext
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmaction.evaluation.functional import top_k_accuracy
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapperDict
from mmengine.runner import Runner
from mmengine.runner.amp import autocast
from torch import Tensor
from torch.utils.data import Dataset

from bevt.registry import DATASETS, HOOKS

#: The names of the two sets, in the order they are extracted.
SETS = ('bank', 'query')
#: Key of a sample's position in its set, added by :class:`KNNSubset`.
INDEX_KEY = 'knn_index'
#: Keys in the message hub, the log and the visualizer backends.
LOG_KEYS = ('knn/top1', 'knn/top5')


# ---------------------------------------------------------------- the vote
def knn_class_scores(bank_feats: Tensor,
                     bank_labels: Tensor,
                     query_feats: Tensor,
                     num_classes: int,
                     k: int = 20,
                     temperature: float = 0.07,
                     chunk_size: int = 1024) -> Tensor:
    """Similarity-weighted votes of the ``k`` nearest bank samples.

    DINO's ``knn_classifier``: the features are L2-normalised, each query
    takes its ``k`` most cosine-similar bank samples and each of them adds
    ``exp(similarity / temperature)`` to the score of its class. Neither
    mmpretrain (its retrievers rank the bank, they do not vote) nor mmaction2
    has this vote, hence this function.

    Args:
        bank_feats (Tensor): Bank features of shape (B, C).
        bank_labels (Tensor): Bank labels (B, ), long, in
            [0, num_classes).
        query_feats (Tensor): Query features of shape (Q, C).
        num_classes (int): Number of classes.
        k (int): Neighbours per query (at most B are used). Defaults to 20.
        temperature (float): Temperature of the weights. Defaults to 0.07.
        chunk_size (int): Queries per similarity matrix. Defaults to 1024.

    Returns:
        Tensor: Float32 class scores of shape (Q, num_classes).
    """
    if k < 1 or temperature <= 0:
        raise ValueError(f'Invalid k={k} or temperature={temperature}')
    if bank_feats.dim() != 2 or query_feats.dim() != 2 or \
            bank_feats.shape[1] != query_feats.shape[1] or \
            bank_labels.shape != bank_feats.shape[:1]:
        raise ValueError(
            f'Invalid shapes: bank {tuple(bank_feats.shape)}, labels '
            f'{tuple(bank_labels.shape)}, query {tuple(query_feats.shape)}')
    bank = F.normalize(bank_feats.float(), dim=1)  # (B, C)
    query = F.normalize(query_feats.float(), dim=1)  # (Q, C)
    k = min(k, bank.shape[0])
    labels = bank_labels.long()
    scores = []
    for start in range(0, query.shape[0], chunk_size):
        sim = query[start:start + chunk_size] @ bank.t()  # (q, B)
        top_sim, top_idx = sim.topk(k, dim=1)  # (q, k)
        weights = (top_sim / temperature).exp()
        votes = sim.new_zeros(sim.shape[0], num_classes)
        scores.append(votes.scatter_add_(1, labels[top_idx], weights))
    return torch.cat(scores) if scores else query.new_zeros(0, num_classes)


def knn_accuracy(bank_feats: Tensor,
                 bank_labels: Tensor,
                 query_feats: Tensor,
                 query_labels: Tensor,
                 k: int = 20,
                 temperature: float = 0.07) -> Dict[str, float]:
    """Top-1 and top-5 accuracy of :func:`knn_class_scores` on the queries.

    Args:
        bank_feats (Tensor): Bank features of shape (B, C).
        bank_labels (Tensor): Bank labels of shape (B, ).
        query_feats (Tensor): Query features of shape (Q, C).
        query_labels (Tensor): Query labels of shape (Q, ).
        k (int): Neighbours per query. Defaults to 20.
        temperature (float): Temperature of the weights. Defaults to 0.07.

    Returns:
        dict: ``top1`` and ``top5``, fractions in [0, 1] (mmaction2's
        ``top_k_accuracy``; with fewer than 5 classes top-5 is 1).
    """
    num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
    scores = knn_class_scores(bank_feats, bank_labels, query_feats,
                              num_classes, k, temperature)
    top1, top5 = top_k_accuracy(scores.numpy(),
                                query_labels.long().numpy(), (1, 5))
    return dict(top1=float(top1), top5=float(top5))


# ---------------------------------------------------------------- the sets
def balanced_indices(labels: Optional[Sequence[int]], size: int,
                     max_samples: Optional[int]) -> List[int]:
    """Indices of at most ``max_samples`` samples, as balanced as possible.

    With labels, the classes take turns in list order: the first sample of
    every class, then the second of every class, and so on, so a few samples
    per class are kept even from a list sorted by class. Without labels the
    samples are evenly spaced over the list.

    Args:
        labels (Sequence[int], optional): The label of every sample.
        size (int): Number of samples in the set.
        max_samples (int, optional): The cap; None keeps every sample.

    Returns:
        list[int]: Sorted indices into the set.
    """
    if max_samples is None or max_samples >= size:
        return list(range(size))
    if labels is None:
        return sorted({int(i) for i in np.linspace(0, size - 1, max_samples)})
    per_class: Dict[int, List[int]] = {}
    for idx, label in enumerate(labels):
        per_class.setdefault(int(label), []).append(idx)
    turns = [per_class[label] for label in sorted(per_class)]
    chosen: List[int] = []
    for rank in range(max(len(t) for t in turns)):
        chosen += [t[rank] for t in turns if rank < len(t)]
        if len(chosen) >= max_samples:
            break
    return sorted(chosen[:max_samples])


def _dataset_labels(dataset: Dataset) -> Optional[List[int]]:
    """Labels from the annotations of ``dataset`` (no file is decoded):
    ``label`` (mmaction2) or ``gt_label`` (mmpretrain) of
    ``get_data_info``, through wrappers with a ``dataset`` attribute."""
    while not hasattr(dataset, 'get_data_info') and hasattr(
            dataset, 'dataset'):
        dataset = dataset.dataset
    if not hasattr(dataset, 'get_data_info'):
        return None
    labels = []
    for idx in range(len(dataset)):
        info = dataset.get_data_info(idx)
        label = info.get('label', info.get('gt_label'))
        if label is None or np.size(label) != 1:
            return None
        labels.append(int(np.asarray(label).reshape(-1)[0]))
    return labels


class KNNSubset(Dataset):
    """The chosen samples of a dataset, each tagged with its position.

    Args:
        dataset (Dataset): The full set.
        indices (Sequence[int]): The samples to keep.
    """

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, idx: int) -> dict:
        sample = self.dataset[self.indices[idx]]
        if not isinstance(sample, dict):
            raise TypeError('a kNN set must give packed samples (dicts with '
                            f'inputs and data_samples), got {type(sample)}')
        return dict(sample, **{INDEX_KEY: idx})


def _ann_files(cfg: Any) -> Iterator[str]:
    """Every non-empty ``ann_file`` in a (nested) dataset config."""
    if isinstance(cfg, dict):
        if isinstance(cfg.get('ann_file'), str) and cfg['ann_file']:
            yield cfg['ann_file']
        for value in cfg.values():
            yield from _ann_files(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            yield from _ann_files(value)


def missing_ann_files(loader_cfg: dict) -> List[str]:
    """The local annotation files of a loader config that do not exist.

    Args:
        loader_cfg (dict): A dataloader config with a ``dataset`` dict.

    Returns:
        list[str]: The missing files (remote ``scheme://`` paths are not
        checked).
    """
    return [
        path for path in _ann_files(loader_cfg.get('dataset'))
        if '://' not in path and not osp.isfile(path)
    ]


def build_knn_loader(loader_cfg: dict,
                     max_samples: Optional[int] = None
                     ) -> torch.utils.data.DataLoader:
    """The loader of one kNN set: its dataset cut to a balanced subset
    (:func:`balanced_indices`), an unshuffled ``DefaultSampler`` and
    ``pseudo_collate`` unless the config names others.

    Args:
        loader_cfg (dict): ``batch_size``, ``dataset`` and optionally
            ``num_workers``, ``sampler``, ``max_samples`` (overrides the
            argument) and other ``DataLoader`` arguments.
        max_samples (int, optional): The cap on the set. Defaults to None.

    Returns:
        DataLoader: Batches of ``dict(inputs, data_samples, knn_index)``.
    """
    cfg = copy.deepcopy(dict(loader_cfg))
    max_samples = cfg.pop('max_samples', max_samples)
    dataset = cfg.pop('dataset')
    if isinstance(dataset, dict):
        dataset = DATASETS.build(dataset)
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    labels = None
    if max_samples is not None and max_samples < len(dataset):
        labels = _dataset_labels(dataset)
    indices = balanced_indices(labels, len(dataset), max_samples)
    cfg.setdefault('sampler', dict(type='DefaultSampler', shuffle=False))
    cfg.setdefault('num_workers', 0)
    return Runner.build_dataloader(
        dict(cfg, dataset=KNNSubset(dataset, indices)))


# ---------------------------------------------------------------- features
def _label(data_sample: Any) -> int:
    """The single label of a data sample (``gt_label``)."""
    label = getattr(data_sample, 'gt_label', None)
    if label is None:
        raise ValueError('the samples of a kNN set need labels (gt_label); '
                         'end its pipeline with PackBEVTInputs and give the '
                         'dataset labelled annotations')
    return int(torch.as_tensor(label).reshape(-1)[0])


def pooled_features(model: torch.nn.Module, data: dict) -> Tensor:
    """Mean-pooled backbone features of one unmasked batch.

    The backbone's ``forward_encoder`` gives the tokens after the last stage
    and the final norm, without the pretraining-only fusion decoders (for
    clips, what a fine-tuned mmaction2 ``SwinTransformer3D`` starts from).

    Args:
        model (nn.Module): A model with ``data_preprocessor`` and a
            ``backbone`` with ``forward_encoder`` (e.g. :class:`BEVT`).
        data (dict): A collated batch, ``dict(inputs, data_samples)``.

    Returns:
        Tensor: Features of shape (N, C).
    """
    data = model.data_preprocessor(data, False)
    imgs = data['inputs']['imgs'] if isinstance(data['inputs'],
                                                dict) else data['inputs']
    return model.backbone.forward_encoder(imgs).mean(dim=1)  # (N, L, C)


@torch.no_grad()
def extract_features(model: torch.nn.Module,
                     loader: torch.utils.data.DataLoader,
                     amp: bool = False,
                     amp_dtype: Optional[torch.dtype] = None
                     ) -> Tuple[Tensor, Tensor]:
    """Features and labels of every sample of a kNN set, from all ranks.

    Each rank extracts its share (the backbone in eval mode; autocast with
    ``amp``); the shares are gathered with
    :func:`mmengine.dist.all_gather_object` and ordered by the sample's
    position in the set, each sample once. ``DefaultSampler`` pads the last
    round with repeated samples; :func:`mmengine.dist.collect_results`
    drops the padding by assuming the sampler's order, the positions do not
    need to.

    Args:
        model (nn.Module): See :func:`pooled_features` (unwrapped).
        loader (DataLoader): From :func:`build_knn_loader`.
        amp (bool): Extract under :func:`mmengine.runner.amp.autocast`.
            Defaults to False.
        amp_dtype (torch.dtype, optional): Its dtype. Defaults to None
            (autocast's default).

    Returns:
        tuple[Tensor, Tensor]: Float32 features (N, C) and long labels
        (N, ), on the CPU, N the size of the set.
    """
    was_training = model.training
    model.eval()
    feats, labels, indices = [], [], []
    try:
        for batch in loader:
            indices += [int(i) for i in batch.pop(INDEX_KEY)]
            labels += [_label(s) for s in batch['data_samples']]
            with autocast(dtype=amp_dtype) if amp else nullcontext():
                feats.append(pooled_features(model, batch).float().cpu())
    finally:
        model.train(was_training)
    part = (torch.tensor(indices, dtype=torch.long),
            torch.cat(feats) if feats else torch.zeros(0, 0),
            torch.tensor(labels, dtype=torch.long))
    parts = dist.all_gather_object(part) if dist.get_world_size() > 1 \
        else [part]
    parts = [p for p in parts if len(p[0])]
    index = torch.cat([p[0] for p in parts])
    order = torch.argsort(index, stable=True)
    index = index[order]
    first = torch.ones_like(index, dtype=torch.bool)
    first[1:] = index[1:] != index[:-1]  # padding repeats a sample
    size = len(loader.dataset)
    if int(first.sum()) != size or (size and int(index[-1]) != size - 1):
        raise RuntimeError(f'the ranks extracted {int(first.sum())} distinct '
                           f'samples of a kNN set of {size}; use a sampler '
                           'that covers the set (DefaultSampler)')
    keep = order[first]
    return (torch.cat([p[1] for p in parts])[keep],
            torch.cat([p[2] for p in parts])[keep])


def amp_settings(optim_wrapper: Any) -> Tuple[bool, Optional[torch.dtype]]:
    """Whether an optim wrapper (or any of an ``OptimWrapperDict``) trains
    under AMP, and its autocast dtype.

    Args:
        optim_wrapper (OptimWrapper | OptimWrapperDict | None): The runner's.

    Returns:
        tuple[bool, torch.dtype | None]: ``(amp, dtype)``.
    """
    wrappers = list(optim_wrapper.values()) if isinstance(
        optim_wrapper, OptimWrapperDict) else [optim_wrapper]
    for wrapper in wrappers:
        if isinstance(wrapper, AmpOptimWrapper):
            return True, wrapper.cast_dtype
    return False, None


@HOOKS.register_module()
class BEVTKNNHook(Hook):
    """Weighted kNN accuracy of the backbone's features while pretraining.

    Part of `BEVT: BERT Pretraining of Video Transformers
    <https://arxiv.org/abs/2112.01529>`_'s tooling; the protocol is DINO's
    ``eval_knn.py``. Before the first epoch (so that the curve starts at the
    initialisation, or at the resumed weights) and every ``interval`` epochs
    (and after the last), the backbone in eval mode embeds every sample of a
    labelled ``bank`` set and a labelled ``query`` set: unmasked inputs
    (the sets' pipelines decide the view, e.g. the centre crop of one clip
    or of an image) through :meth:`BEVTSwinTransformer3D.forward_encoder`,
    mean-pooled over tokens. Each rank embeds its share, the shares are
    gathered (:func:`extract_features`), and every query is classified by
    the similarity-weighted vote of its ``k`` nearest bank samples
    (:func:`knn_class_scores`). Under an ``AmpOptimWrapper`` the features
    are extracted under autocast with its dtype.

    ``knn/top1`` and ``knn/top5`` (fractions) go to the message hub, to one
    line of the log (``kNN (epoch E): knn/top1: ...``) and, at step
    ``runner.iter``, to the visualizer's backends (``scalars.json``,
    TensorBoard, ...). If an annotation file of a set is missing, the hook
    turns itself off with one warning; training goes on.

    Args:
        bank (dict): Dataloader config of the labelled set to search:
            ``batch_size``, ``dataset`` (with a pipeline ending in
            ``PackBEVTInputs``), optionally ``num_workers``, ``sampler``
            (default: unshuffled ``DefaultSampler``) and ``max_samples``.
        query (dict): Dataloader config of the labelled set to classify.
        interval (int): Epochs between two evaluations. Defaults to 1.
        k (int): Neighbours per query. Defaults to 20.
        temperature (float): Temperature of the vote weights. Defaults to
            0.07.
        max_samples (int, optional): Samples kept of each set (a set's own
            ``max_samples`` wins), chosen by :func:`balanced_indices`.
            Defaults to None (all).
        before_train (bool): Also evaluate before the first epoch.
            Defaults to True.

    Example:
        >>> custom_hooks = [dict(
        ...     type='BEVTKNNHook',
        ...     bank=dict(batch_size=8, num_workers=4, dataset=bank_set),
        ...     query=dict(batch_size=8, num_workers=4, dataset=query_set),
        ...     interval=1, k=20, temperature=0.07, max_samples=4000)]
    """

    priority = 'NORMAL'

    def __init__(self,
                 bank: dict,
                 query: dict,
                 interval: int = 1,
                 k: int = 20,
                 temperature: float = 0.07,
                 max_samples: Optional[int] = None,
                 before_train: bool = True) -> None:
        if interval < 1:
            raise ValueError(f'Invalid interval: {interval}')
        if k < 1:
            raise ValueError(f'Invalid k: {k}')
        if temperature <= 0:
            raise ValueError(f'Invalid temperature: {temperature}')
        if max_samples is not None and max_samples < 1:
            raise ValueError(f'Invalid max_samples: {max_samples}')
        for name, cfg in zip(SETS, (bank, query)):
            if not isinstance(cfg, dict) or 'dataset' not in cfg:
                raise TypeError(f'{name} must be a dataloader config with a '
                                f'dataset, got {cfg!r}')
        self.loader_cfgs = dict(bank=bank, query=query)
        self.interval = interval
        self.k = k
        self.temperature = temperature
        self.max_samples = max_samples
        self.evaluate_before_train = before_train
        self.enabled = True
        self._loaders: Dict[str, torch.utils.data.DataLoader] = {}

    def check_sets(self) -> List[str]:
        """The missing annotation files of the two sets."""
        return [
            path for name in SETS
            for path in missing_ann_files(self.loader_cfgs[name])
        ]

    def loaders(self) -> Dict[str, torch.utils.data.DataLoader]:
        """The bank and query loaders, built on first use."""
        if not self._loaders:
            self._loaders = {
                name: build_knn_loader(self.loader_cfgs[name],
                                       self.max_samples)
                for name in SETS
            }
        return self._loaders

    def evaluate(self,
                 model: torch.nn.Module,
                 amp: bool = False,
                 amp_dtype: Optional[torch.dtype] = None) -> Dict[str, Any]:
        """Extract both sets and run the kNN vote (every rank calls this).

        Args:
            model (nn.Module): The model (wrappers are unwrapped).
            amp (bool): Extract under autocast. Defaults to False.
            amp_dtype (torch.dtype, optional): Its dtype. Defaults to None.

        Returns:
            dict: ``top1``, ``top5`` (fractions), ``num_bank``,
            ``num_query``.
        """
        if is_model_wrapper(model):
            model = model.module
        feats = {
            name: extract_features(model, loader, amp, amp_dtype)
            for name, loader in self.loaders().items()
        }
        (bank, bank_labels), (query, query_labels) = feats['bank'], \
            feats['query']
        result: Dict[str, Any] = knn_accuracy(bank, bank_labels, query,
                                              query_labels, self.k,
                                              self.temperature)
        result.update(num_bank=len(bank), num_query=len(query))
        return result

    def _run(self, runner, epoch: int) -> None:
        """Evaluate, then log to the message hub, the log and the
        visualizer."""
        if not self.enabled:
            return
        began = time.time()
        amp, amp_dtype = amp_settings(getattr(runner, 'optim_wrapper', None))
        result = self.evaluate(runner.model, amp, amp_dtype)
        scalars = {key: result[key.split('/')[1]] for key in LOG_KEYS}
        for key, value in scalars.items():
            runner.message_hub.update_scalar(key, value)
        runner.logger.info(
            f'kNN (epoch {epoch}): ' +
            '  '.join(f'{key}: {value:.4f}'
                      for key, value in scalars.items()) +
            f'  (k={self.k}, T={self.temperature}, '
            f'{result["num_bank"]} bank / {result["num_query"]} query '
            f'samples, {time.time() - began:.1f} s)')
        runner.visualizer.add_scalars(
            scalars, step=runner.iter, file_path=f'{runner.timestamp}.json')

    def before_train(self, runner) -> None:
        """Turn off if a set's list is missing; else evaluate the initial
        (or resumed) weights.

        Args:
            runner (Runner): The runner.
        """
        missing = self.check_sets()
        if missing:
            self.enabled = False
            print_log(
                'BEVTKNNHook is off: the annotation files of its kNN sets '
                f'are missing: {", ".join(missing)} (write them, or point '
                'the bank and query datasets of the hook in custom_hooks at '
                'existing lists).',
                logger='current',
                level=logging.WARNING)
            return
        if self.evaluate_before_train:
            self._run(runner, runner.epoch)

    def after_train_epoch(self, runner) -> None:
        """Evaluate every ``interval`` epochs and after the last.

        Args:
            runner (Runner): The runner.
        """
        if self.every_n_epochs(runner, self.interval) or \
                self.is_last_train_epoch(runner):
            self._run(runner, runner.epoch + 1)
