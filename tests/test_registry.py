# Copyright (c) bevt contributors. All rights reserved.
import mmaction.registry as mmaction_registry
import mmengine.registry as mmengine_registry
import pytest
from mmengine.registry import DefaultScope, Registry

import bevt.registry as bevt_registry

KINDS = [
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'DATASETS',
    'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS', 'MODEL_WRAPPERS',
    'WEIGHT_INITIALIZERS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
    'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'METRICS', 'EVALUATOR',
    'TASK_UTILS', 'VISUALIZERS', 'VISBACKENDS', 'LOG_PROCESSORS',
    'INFERENCERS', 'FUNCTION'
]


@pytest.mark.parametrize('kind', KINDS)
def test_every_kind_is_a_bevt_child_of_mmaction(kind):
    registry = getattr(bevt_registry, kind)
    assert isinstance(registry, Registry)
    assert registry.scope == 'bevt'
    if kind == 'FUNCTION':  # mmaction2's points at a missing module
        assert registry.parent is mmengine_registry.FUNCTIONS
    else:
        assert registry.parent is getattr(mmaction_registry, kind)
    # reachable from mmengine's root, as the runner searches for it
    root = registry._get_root_registry()
    assert root._search_child('bevt') is registry


def test_no_tokenizer_registry():
    assert not hasattr(bevt_registry, 'TOKENIZER')


def test_lookups_through_bevt_scope():
    with DefaultScope.overwrite_default_scope('bevt'):
        model = bevt_registry.MODELS.build(
            dict(
                type='SwinTransformer3D',
                arch=dict(
                    embed_dims=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1]),
                pretrained2d=False))
        assert type(model).__name__ == 'SwinTransformer3D'
        for name in ('DecordInit', 'SampleFrames', 'FormatShape',
                     'PackActionInputs'):
            assert bevt_registry.TRANSFORMS.get(name) is not None, name
        assert bevt_registry.DATASETS.get('VideoDataset') is not None
        assert bevt_registry.METRICS.get('AccMetric') is not None
        assert bevt_registry.VISUALIZERS.get('ActionVisualizer') is not None
        assert bevt_registry.LOOPS.get(
            'MultiLoaderEpochBasedTrainLoop') is not None
        # other codebases through their prefix
        dalle = bevt_registry.MODELS.get('mmpretrain.DALL-E')
        assert dalle.__name__ == 'DALLEEncoder'
        assert bevt_registry.TRANSFORMS.get(
            'mmpretrain.BEiTMaskGenerator') is not None
