# Smoke recipe (not from the paper): fine-tune the nano Video Swin on the
# generated motion clips of `bevt.datasets.synthetic_motion` the way the
# Kinetics-400 benchmark config fine-tunes Swin-B: layer decay, accumulation,
# warmup + cosine, and multi-view testing (2 clips x 3 crops, averaged as
# probabilities). The param groups are those of the corrected-groups
# variant (`BEVTSwin3DLayerDecayConstructor`, derived from the nano Swin's
# depths): the official custom_keys are written for Swin-B's 28 depths.
# The backbone starts from a BEVT smoke checkpoint converted for mmaction2
# (tools/model_converters/bevt_to_mmaction.py), read from `BEVT_PRETRAINED`
# (default work_dirs/demo/pretrain_mmaction.pth); `--cfg-options
# model.backbone.init_cfg=None` trains from scratch instead.
_base_ = [
    '../../_base_/models/swin_nano.py',
    '../../_base_/datasets/video_recognition.py',
    '../../_base_/schedules/swin_adamw_60e.py',
    '../../_base_/default_runtime.py'
]

pretrained = '{{$BEVT_PRETRAINED:work_dirs/demo/pretrain_mmaction.pth}}'
model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    # 6 test views, at most 4 through the backbone at once
    test_cfg=dict(max_testing_views=4))

# dataset settings
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

# 4 clips per iteration x 2 accumulated iterations = 8 clips per step
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    dataset=dict(
        ann_file=ann_file_train,
        data_prefix=dict(video=f'{data_root}/videos/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=2,
    dataset=dict(
        ann_file=ann_file_val,
        data_prefix=dict(video=f'{data_root}/videos/val'),
        pipeline=val_pipeline))
test_dataloader = dict(
    num_workers=2,
    dataset=dict(
        ann_file=ann_file_test,
        data_prefix=dict(video=f'{data_root}/videos/val'),
        pipeline=test_pipeline))

# 12 epochs (1 of warmup), validation every 4; layer decay 0.9 over the nano
# Swin's 9 depths; no weight decay on norms, biases and relative-position
# tables (plain OptimWrapper: AMP needs a GPU)
train_cfg = dict(max_epochs=12, val_interval=4)
optim_wrapper = dict(
    type='OptimWrapper',
    accumulative_counts=2,
    optimizer=dict(lr=1e-3, weight_decay=0.05),
    constructor='BEVTSwin3DLayerDecayConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9),
    clip_grad=dict(max_norm=5, norm_type=2))
param_scheduler = _base_.param_scheduler
param_scheduler[0].end = 1
param_scheduler[1].update(T_max=12, end=12)

default_hooks = dict(
    checkpoint=dict(interval=4, max_keep_ckpts=1), logger=dict(interval=10))

# Default setting for scaling LR automatically
#   - `enable` means enable scaling LR automatically
#       or not by default.
#   - `base_batch_size` = (1 GPU) x (4 samples per GPU per iteration);
#       mmengine ignores `accumulative_counts`.
auto_scale_lr = dict(enable=False, base_batch_size=4)
