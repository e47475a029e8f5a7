# BEVT stage 2, the official recipe (xyzforever/BEVT,
# swin_base_patch244_window877_bevt_in1k_k400.py): joint masked image
# modeling on ImageNet-1K and masked video modeling on Kinetics-400 with one
# Video Swin-B, initialised from the stage-1 image-stream checkpoint.
# Per GPU and iteration: 4 clips of 16x224x224 (stride 8) + 32 images;
# 2 iterations per optimizer step; 32 GPUs: 256 clips + 2048 images a step.
_base_ = ['../_base_/models/bevt_swin_base.py', '../_base_/default_runtime.py']

# stage-1 checkpoint (2D image stream; inflated 2D -> 3D by the official
# rules). The official one is `swin_base_image_stream_pretrain.pth`.
model = dict(
    backbone=dict(
        pretrained='checkpoints/swin_base_image_stream_pretrain.pth',
        pretrained2d=True))

# dataset settings
video_data_root = 'data/kinetics400/videos_train'
video_ann_file = 'data/kinetics400/kinetics400_train_list_videos.txt'
image_data_root = 'data/imagenet/train'
image_ann_file = 'data/imagenet/meta/train.txt'

# no colour jitter for video (as the official pipeline)
video_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=16, frame_interval=8, num_clips=1),
    dict(type='DecordDecode'),
    dict(
        type='RandomRescale', scale_range=(256, 320), interpolation='bicubic'),
    dict(type='RandomCrop', size=224),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='BEVTTokenizerView', size=112, interpolation='lanczos'),
    dict(
        type='BEVTTubeMaskGenerator',
        input_size=14,
        num_masking_patches=98,
        min_num_patches=16,
        max_num_patches=None,
        clip_len=16,
        temporal_patch=2,
        tube_range=(0.5, 1.0)),
    dict(type='PackBEVTInputs')
]
image_pipeline = [
    dict(type='BEVTLoadImage'),
    dict(
        type='RandomRescale', scale_range=(256, 320), interpolation='bicubic'),
    dict(
        type='ColorJitter',
        brightness=0.4,
        contrast=0.4,
        saturation=0.4,
        hue=0),
    dict(type='RandomCrop', size=224),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='BEVTTokenizerView', size=112, interpolation='lanczos'),
    dict(
        type='BEVTBlockMaskGenerator',
        input_size=14,
        num_masking_patches=98,
        min_num_patches=16,
        max_num_patches=None),
    dict(type='PackBEVTInputs')
]

# the primary (video) loader defines the epoch; unreadable files are
# replaced by other samples (see BEVTTolerantDataset)
train_dataloader = dict(
    batch_size=4,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='BEVTTolerantDataset',
        dataset=dict(
            type='VideoDataset',
            ann_file=video_ann_file,
            data_prefix=dict(video=video_data_root),
            pipeline=video_pipeline)))
# ImageNet repeated 5 times, so that the image loader outlasts the video
# epoch (as the official run)
image_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='BEVTTolerantDataset',
        dataset=dict(
            type='RepeatDataset',
            times=5,
            dataset=dict(
                type='mmpretrain.ImageNet',
                ann_file=image_ann_file,
                data_prefix=image_data_root,
                pipeline=image_pipeline))))

train_cfg = dict(
    type='BEVTMultiSourceEpochLoop',
    other_loaders=[image_dataloader],
    max_epochs=150,
    nonfinite_loss='raise')
val_cfg = None
test_cfg = None

# AdamW 5e-4, weight decay 0.05 (not on norms and relative-position tables;
# biases, mask token, decoders and head are decayed, as officially); apex O1
# in the official run: fp16 with a dynamic loss scale ('bfloat16' is safer
# where supported: optim_wrapper.dtype='bfloat16'). BEVTOptimWrapperConstructor
# gives each parameter mmengine's settings, in one param group per distinct
# setting (2 instead of 344 for Swin-B: fewer optimizer kernels per step);
# torch's fused AdamW updates each group in one kernel (the same update up to
# float rounding; CUDA and CPU)
optim_wrapper = dict(
    type='AmpOptimWrapper',
    constructor='BEVTOptimWrapperConstructor',
    loss_scale='dynamic',
    accumulative_counts=2,
    optimizer=dict(
        type='AdamW',
        lr=5e-4,
        betas=(0.9, 0.999),
        weight_decay=0.05,
        fused=True),
    paramwise_cfg=dict(
        custom_keys=dict(
            absolute_pos_embed=dict(decay_mult=0.),
            relative_position_bias_table=dict(decay_mult=0.),
            norm=dict(decay_mult=0.))),
    clip_grad=dict(max_norm=3.0, norm_type=2))

# 10-epoch linear warmup from 0.1x multiplying a cosine to 0 over all 150
# epochs, both stepped every iteration (the official schedule)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=150,
        eta_min=0,
        by_epoch=True,
        begin=0,
        end=150,
        convert_to_iter_based=True)
]

default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook', interval=10, max_keep_ckpts=3, save_best=None),
    logger=dict(type='LoggerHook', interval=50))
custom_hooks = [dict(type='BEVTSkippedFilesHook', max_skip_ratio=0.01)]
env_cfg = dict(dist_cfg=dict(backend='nccl'))
randomness = dict(seed=0, diff_rank_seed=True)

# Default setting for scaling LR automatically
#   - `enable` means enable scaling LR automatically
#       or not by default.
#   - `base_batch_size` = (32 GPUs) x (4 clips per GPU per iteration) of the
#       primary (video) loader; mmengine ignores `accumulative_counts`.
auto_scale_lr = dict(enable=False, base_batch_size=128)
