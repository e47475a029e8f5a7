# Fine-tune a BEVT-pretrained Video Swin-B on Something-Something v2: the
# official recipe (xyzforever/BEVT, cfg-ssv2; reported 70.6 top-1 with 1x3
# views), in plain mmaction2 modules, so the fine-tuned checkpoint loads in
# mmaction2. 8 GPUs x 1 clip x 8 accumulated iterations = 64 clips per step:
#   tools/dist_train.sh <this config> 8 --seed 0
# The window is 16x7x7: the pretrained 8x7x7 relative-position tables must
# be resized (trilinearly, (15,13,13) -> (31,13,13) per head) by the
# converter, since mmaction2's SwinTransformer3D cannot do it on load:
#   python tools/model_converters/bevt_to_mmaction.py \
#       work_dirs/<stage 2>/epoch_150.pth \
#       checkpoints/bevt_swin-base-w1677_mmaction.pth --window-size 16 7 7
_base_ = ['../../_base_/default_runtime.py']

model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='SwinTransformer3D',
        arch='base',
        pretrained=None,
        pretrained2d=False,
        patch_size=(2, 4, 4),
        window_size=(16, 7, 7),
        mlp_ratio=4.,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.4,
        patch_norm=True,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/bevt_swin-base-w1677_mmaction.pth',
            prefix='backbone.')),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape='NCTHW'),
    cls_head=dict(
        type='I3DHead',
        in_channels=1024,
        num_classes=174,
        spatial_type='avg',
        dropout_ratio=0.5,
        init_std=0.01,
        label_smooth_eps=0.1,
        average_clips='prob'),
    # the 3 test views go through the backbone 2 at a time (as officially);
    # mmaction2 then needs batch_size=1 in the val and test loaders
    test_cfg=dict(max_testing_views=2))

# dataset settings
dataset_type = 'VideoDataset'
data_root = 'data/sthv2/videos'
data_root_val = 'data/sthv2/videos'
ann_file_train = 'data/sthv2/sthv2_train_list_videos.txt'
ann_file_val = 'data/sthv2/sthv2_val_list_videos.txt'
ann_file_test = 'data/sthv2/sthv2_val_list_videos.txt'

# 32 frames, one at random from each of 32 equal segments (the middle one
# in test mode). No `Flip` (SSv2 has left/right classes), but imgaug's
# RandAugment, which the official run used, begins with a horizontal flip
# of p=0.5 and a small crop: `hflip_prob=0.5` keeps the official behaviour
# (set it to 0. to never flip). RandAugment's ops and magnitudes are drawn
# once per clip. RandomErasing (one box for all frames) fills with the mean
# colour, i.e. the zeros of timm's erasing after normalisation.
train_pipeline = [
    dict(type='DecordInit'),
    dict(type='UniformSample', clip_len=32),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='RandomResizedCrop'),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(
        type='BEVTClipRandAugment',
        num_ops=4,
        magnitude=7,
        hflip_prob=0.5,
        crop=True),
    dict(
        type='RandomErasing',
        erase_prob=0.25,
        mode='const',
        fill_color=(123.675, 116.28, 103.53)),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(type='DecordInit'),
    dict(type='UniformSample', clip_len=32, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
# 1 clip x 3 crops
test_pipeline = [
    dict(type='DecordInit'),
    dict(type='UniformSample', clip_len=32, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='ThreeCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]

train_dataloader = dict(
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_train,
        data_prefix=dict(video=data_root),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_val,
        data_prefix=dict(video=data_root_val),
        pipeline=val_pipeline,
        test_mode=True))
test_dataloader = dict(
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_test,
        data_prefix=dict(video=data_root_val),
        pipeline=test_pipeline,
        test_mode=True))

# top-1, top-5 and mean class accuracy (`acc/top1`, `acc/top5`, `acc/mean1`)
val_evaluator = dict(
    type='AccMetric',
    metric_list=('top_k_accuracy', 'mean_class_accuracy'),
    metric_options=dict(top_k_accuracy=dict(topk=(1, 5))))
test_evaluator = val_evaluator

train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=60, val_begin=1, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# AdamW 5e-4, weight decay 0.05, no layer decay, backbone lr x 0.1 on every
# backbone parameter; no weight decay on norms, biases and relative-position
# tables. (The official custom_keys gave the tables lr_mult 1 and decayed
# the backbone norms and all biases: see the benchmarks README.) No gradient
# clipping. apex O1 officially; fp16 AMP with a dynamic loss scale here.
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    accumulative_counts=8,
    optimizer=dict(
        type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='BEVTSwin3DLayerDecayConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0, backbone_lr_mult=0.1),
    clip_grad=None)

# 2.5-epoch linear warmup from 0.1x (per iteration) multiplying a cosine to 0
# over 60 epochs (per epoch), as the official mmcv schedule
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=2.5,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=60,
        eta_min=0,
        by_epoch=True,
        begin=0,
        end=60)
]

default_hooks = dict(
    checkpoint=dict(interval=5, max_keep_ckpts=3), logger=dict(interval=100))
# EMA of the weights, updated every iteration (as mmcv's EMAHook, whose
# 100-iteration warm-up has no effect at this momentum); the EMA weights are
# the ones evaluated and saved for testing
custom_hooks = [dict(type='EMAHook', momentum=0.0002)]

# Default setting for scaling LR automatically
#   - `enable` means enable scaling LR automatically
#       or not by default.
#   - `base_batch_size` = (8 GPUs) x (1 sample per GPU per iteration);
#       mmengine ignores `accumulative_counts`.
auto_scale_lr = dict(enable=False, base_batch_size=8)
