# Copyright (c) bevt contributors. All rights reserved.
"""bevt's registries: children of mmaction2's, in scope ``'bevt'``.

A config with ``default_scope = 'bevt'`` finds bevt's modules first and
falls back to mmaction2's (``type='SwinTransformer3D'``); other codebases
are reached with a prefix (``type='mmpretrain.DALL-E'``). ``locations``
lists the bevt and the mmaction2 packages, because a lookup that falls
through to a parent does not trigger the parent's lazy imports.

Two exceptions to "child of mmaction2's registry": ``FUNCTION`` is a child
of mmengine's (mmaction2's points at a module that does not exist), and
there is no tokenizer registry: mmaction2's ``TOKENIZER`` is parent-less
and for text, so visual tokenizers live in ``MODELS`` (as mmpretrain's
``'DALL-E'`` does).
"""
from mmaction.registry import DATA_SAMPLERS as MMACTION_DATA_SAMPLERS
from mmaction.registry import DATASETS as MMACTION_DATASETS
from mmaction.registry import EVALUATOR as MMACTION_EVALUATOR
from mmaction.registry import HOOKS as MMACTION_HOOKS
from mmaction.registry import INFERENCERS as MMACTION_INFERENCERS
from mmaction.registry import LOG_PROCESSORS as MMACTION_LOG_PROCESSORS
from mmaction.registry import LOOPS as MMACTION_LOOPS
from mmaction.registry import METRICS as MMACTION_METRICS
from mmaction.registry import MODEL_WRAPPERS as MMACTION_MODEL_WRAPPERS
from mmaction.registry import MODELS as MMACTION_MODELS
from mmaction.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMACTION_OPTIM_WRAPPER_CONSTRUCTORS
from mmaction.registry import OPTIM_WRAPPERS as MMACTION_OPTIM_WRAPPERS
from mmaction.registry import OPTIMIZERS as MMACTION_OPTIMIZERS
from mmaction.registry import PARAM_SCHEDULERS as MMACTION_PARAM_SCHEDULERS
from mmaction.registry import \
    RUNNER_CONSTRUCTORS as MMACTION_RUNNER_CONSTRUCTORS
from mmaction.registry import RUNNERS as MMACTION_RUNNERS
from mmaction.registry import TASK_UTILS as MMACTION_TASK_UTILS
from mmaction.registry import TRANSFORMS as MMACTION_TRANSFORMS
from mmaction.registry import VISBACKENDS as MMACTION_VISBACKENDS
from mmaction.registry import VISUALIZERS as MMACTION_VISUALIZERS
from mmaction.registry import \
    WEIGHT_INITIALIZERS as MMACTION_WEIGHT_INITIALIZERS
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import Registry

SCOPE = 'bevt'


def _child(name: str, parent: Registry, *locations: str) -> Registry:
    return Registry(
        name, parent=parent, scope=SCOPE, locations=list(locations))


# runner, loops, hooks, optimisation
RUNNERS = _child('runner', MMACTION_RUNNERS, 'bevt.engine',
                 'mmaction.engine.runner')
RUNNER_CONSTRUCTORS = _child('runner constructor',
                             MMACTION_RUNNER_CONSTRUCTORS, 'bevt.engine',
                             'mmaction.engine.runner')
LOOPS = _child('loop', MMACTION_LOOPS, 'bevt.engine', 'mmaction.engine.runner')
HOOKS = _child('hook', MMACTION_HOOKS, 'bevt.engine', 'mmaction.engine.hooks')
OPTIMIZERS = _child('optimizer', MMACTION_OPTIMIZERS, 'bevt.engine',
                    'mmaction.engine.optimizers')
OPTIM_WRAPPERS = _child('optim_wrapper', MMACTION_OPTIM_WRAPPERS,
                        'bevt.engine', 'mmaction.engine.optimizers')
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    MMACTION_OPTIM_WRAPPER_CONSTRUCTORS,
                                    'bevt.engine',
                                    'mmaction.engine.optimizers')
PARAM_SCHEDULERS = _child('parameter scheduler', MMACTION_PARAM_SCHEDULERS,
                          'bevt.engine', 'mmaction.engine')
LOG_PROCESSORS = _child('log_processor', MMACTION_LOG_PROCESSORS,
                        'bevt.engine', 'mmaction.engine')

# data
DATASETS = _child('dataset', MMACTION_DATASETS, 'bevt.datasets',
                  'mmaction.datasets')
DATA_SAMPLERS = _child('data sampler', MMACTION_DATA_SAMPLERS, 'bevt.datasets',
                       'mmaction.datasets')
TRANSFORMS = _child('transform', MMACTION_TRANSFORMS, 'bevt.datasets',
                    'mmaction.datasets.transforms')

# models (visual tokenizers included, see the module docstring)
MODELS = _child('model', MMACTION_MODELS, 'bevt.models', 'mmaction.models')
MODEL_WRAPPERS = _child('model_wrapper', MMACTION_MODEL_WRAPPERS,
                        'bevt.models', 'mmaction.models')
WEIGHT_INITIALIZERS = _child('weight initializer',
                             MMACTION_WEIGHT_INITIALIZERS, 'bevt.models',
                             'mmaction.models')
TASK_UTILS = _child('task util', MMACTION_TASK_UTILS, 'bevt.models',
                    'mmaction.models')

# evaluation, visualisation, inference: bevt adds nothing here (yet)
METRICS = _child('metric', MMACTION_METRICS, 'mmaction.evaluation')
EVALUATOR = _child('evaluator', MMACTION_EVALUATOR, 'mmaction.evaluation')
VISUALIZERS = _child('visualizer', MMACTION_VISUALIZERS,
                     'mmaction.visualization')
VISBACKENDS = _child('vis_backend', MMACTION_VISBACKENDS,
                     'mmaction.visualization')
INFERENCERS = _child('inferencer', MMACTION_INFERENCERS,
                     'mmaction.apis.inferencers')
FUNCTION = _child('function', MMENGINE_FUNCTIONS)
