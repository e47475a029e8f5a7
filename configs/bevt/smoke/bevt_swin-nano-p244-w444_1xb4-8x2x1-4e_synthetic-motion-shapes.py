# Smoke recipe (not from the paper): BEVT joint pretraining of the nano
# Video Swin on the generated motion clips and shape images of
# `bevt.datasets.synthetic_motion` (`make demo` writes them; `BEVT_DATA`
# points at another copy). The stage-2 recipe scaled down to a CPU: 8 frames
# of 64 px (4 x 4 x 4 tokens), 64-px images (4 x 4 tokens), 32-px tokenizer
# views, half of the 16 cells masked, tubes over 2-4 of the 4 slots; the
# stage-2 optimisation at lr 1e-3 over 4 epochs, without AMP (a CPU).
_base_ = [
    '../../_base_/models/bevt_swin_nano.py',
    '../../_base_/schedules/bevt_adamw_150e.py',
    '../../_base_/default_runtime.py'
]

# dataset settings
data_root = '{{$BEVT_DATA:data/synthetic}}'
video_ann_file = f'{data_root}/videos_train.txt'
image_ann_file = f'{data_root}/images_train.txt'

video_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=8, frame_interval=2, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='RandomRescale', scale_range=(64, 80), interpolation='bicubic'),
    dict(type='RandomCrop', size=64),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='BEVTTokenizerView', size=32, interpolation='lanczos'),
    dict(
        type='BEVTTubeMaskGenerator',
        input_size=4,
        num_masking_patches=8,
        min_num_patches=2,
        clip_len=8,
        temporal_patch=2,
        tube_range=(0.5, 1.0)),
    dict(type='PackBEVTInputs')
]
image_pipeline = [
    dict(type='BEVTLoadImage'),
    dict(type='RandomRescale', scale_range=(64, 80), interpolation='bicubic'),
    dict(
        type='ColorJitter',
        brightness=0.4,
        contrast=0.4,
        saturation=0.4,
        hue=0),
    dict(type='RandomCrop', size=64),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='BEVTTokenizerView', size=32, interpolation='lanczos'),
    dict(
        type='BEVTBlockMaskGenerator',
        input_size=4,
        num_masking_patches=8,
        min_num_patches=2),
    dict(type='PackBEVTInputs')
]

train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='BEVTTolerantDataset',
        dataset=dict(
            type='VideoDataset',
            ann_file=video_ann_file,
            data_prefix=dict(video=f'{data_root}/videos/train'),
            pipeline=video_pipeline)))
img_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='BEVTTolerantDataset',
        dataset=dict(
            type='mmpretrain.CustomDataset',
            ann_file=image_ann_file,
            data_prefix=f'{data_root}/images/train',
            pipeline=image_pipeline)))

# 4 epochs: 1 of warmup, the cosine over all 4
train_cfg = dict(max_epochs=4)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = _base_.param_scheduler
param_scheduler[0].end = 1
param_scheduler[1].update(T_max=4, end=4)

default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=2, save_best=None),
    logger=dict(type='LoggerHook', interval=5))
custom_hooks = [
    dict(type='BEVTSkippedFilesHook', max_skip_ratio=0.2, min_samples=100),
    # each rank writes the digest of its weights (DDP check)
    dict(type='BEVTParamsDigestHook')
]
randomness = dict(seed=0, diff_rank_seed=True)

# Default setting for scaling LR automatically
#   - `enable` means enable scaling LR automatically
#       or not by default.
#   - `base_batch_size` = (1 process) x (4 clips per iteration) of the
#       primary (video) loader.
auto_scale_lr = dict(enable=False, base_batch_size=4)
