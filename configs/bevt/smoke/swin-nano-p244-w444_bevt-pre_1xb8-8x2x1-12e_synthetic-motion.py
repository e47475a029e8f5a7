# Smoke recipe (not from the paper): fine-tune the nano Video Swin on the
# generated motion clips of `bevt.datasets.synthetic_motion` the way the
# Kinetics-400 benchmark config fine-tunes Swin-B: layer decay
# (`BEVTSwin3DLayerDecayConstructor`), accumulation, warmup + cosine, and
# multi-view testing (2 clips x 3 crops, averaged as probabilities).
# The backbone starts from a BEVT smoke checkpoint converted for mmaction2
# (tools/model_converters/bevt_to_mmaction.py), read from `BEVT_PRETRAINED`
# (default work_dirs/demo/pretrain_mmaction.pth); `--cfg-options
# model.backbone.init_cfg=None` trains from scratch instead.
_base_ = [
    '../../_base_/models/swin_nano.py', '../../_base_/default_runtime.py'
]

pretrained = '{{$BEVT_PRETRAINED:work_dirs/demo/pretrain_mmaction.pth}}'
model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    # 6 test views, at most 4 through the backbone at once
    test_cfg=dict(max_testing_views=4))

# dataset settings
dataset_type = 'VideoDataset'
data_root = '{{$BEVT_DATA:data/synthetic}}'
ann_file_train = f'{data_root}/videos_train.txt'
ann_file_val = f'{data_root}/videos_val.txt'
ann_file_test = f'{data_root}/videos_val.txt'

# no flip: the classes are motions, and a flip turns "left" into "right"
train_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=8, frame_interval=2, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 64)),
    dict(type='RandomResizedCrop', area_range=(0.5, 1.0)),
    dict(type='Resize', scale=(64, 64), keep_ratio=False),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(type='DecordInit'),
    dict(
        type='SampleFrames',
        clip_len=8,
        frame_interval=2,
        num_clips=1,
        test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 64)),
    dict(type='CenterCrop', crop_size=64),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
# 2 clips x 3 crops
test_pipeline = [
    dict(type='DecordInit'),
    dict(
        type='SampleFrames',
        clip_len=8,
        frame_interval=2,
        num_clips=2,
        test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 64)),
    dict(type='ThreeCrop', crop_size=64),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]

# 4 clips per iteration x 2 accumulated iterations = 8 clips per step;
# `max_testing_views` needs batch_size=1 in the val and test loaders
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_train,
        data_prefix=dict(video=f'{data_root}/videos/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_val,
        data_prefix=dict(video=f'{data_root}/videos/val'),
        pipeline=val_pipeline,
        test_mode=True))
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_test,
        data_prefix=dict(video=f'{data_root}/videos/val'),
        pipeline=test_pipeline,
        test_mode=True))

val_evaluator = dict(
    type='AccMetric',
    metric_list=('top_k_accuracy', 'mean_class_accuracy'),
    metric_options=dict(top_k_accuracy=dict(topk=(1, 5))))
test_evaluator = val_evaluator

train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=12, val_begin=1, val_interval=4)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# layer decay 0.9 over the nano Swin's 9 depths; no weight decay on norms,
# biases and relative-position tables (plain OptimWrapper: AMP needs a GPU)
optim_wrapper = dict(
    type='OptimWrapper',
    accumulative_counts=2,
    optimizer=dict(
        type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='BEVTSwin3DLayerDecayConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9),
    clip_grad=dict(max_norm=5, norm_type=2))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=12,
        eta_min=0,
        by_epoch=True,
        begin=0,
        end=12)
]

default_hooks = dict(
    checkpoint=dict(interval=4, max_keep_ckpts=1), logger=dict(interval=10))

# Default setting for scaling LR automatically
#   - `enable` means enable scaling LR automatically
#       or not by default.
#   - `base_batch_size` = (1 GPU) x (4 samples per GPU per iteration);
#       mmengine ignores `accumulative_counts`.
auto_scale_lr = dict(enable=False, base_batch_size=4)
