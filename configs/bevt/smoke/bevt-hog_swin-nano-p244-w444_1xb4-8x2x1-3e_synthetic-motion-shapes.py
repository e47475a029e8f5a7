# Demo recipe (not from the paper): BEVT joint pretraining of the nano Video
# Swin on the generated motion clips and shape images, with MaskFeat HOG
# targets (`BEVTHOGTargets` + `BEVTRegressionHead`) instead of DALL-E ids.
# A DALL-E tokenizer needs a weights file to give useful targets (a
# random-init one maps almost every patch to the same id); HOG needs none,
# so `make demo` pretrains with it. Otherwise the two-stream smoke recipe:
# 8 frames of 64 px, 64-px images, 4 x 4 targets of 16 px (the 108-d HOG of
# the 64-px crop itself), half of the 16 cells masked, tubes over 2-4 of
# the 4 temporal slots.
_base_ = [
    './bevt_swin-nano-p244-w444_1xb4-8x2x1-4e_synthetic-motion-shapes.py'
]

model = dict(
    head=dict(
        _delete_=True,
        type='BEVTRegressionHead',
        in_channels=256,
        target_dims=108,
        loss_weights=dict(video=1.0, img=1.0)),
    target_generator=dict(
        _delete_=True,
        type='BEVTHOGTargets',
        nbins=9,
        pool=8,
        gaussian_window=16,
        downsample=16))

data_root = '{{$BEVT_DATA:data/synthetic}}'
video_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=8, frame_interval=2, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='RandomRescale', scale_range=(64, 80), interpolation='bicubic'),
    dict(type='RandomCrop', size=64),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='BEVTTokenizerView', size=64),  # HOG of the crop itself
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
    dict(type='BEVTTokenizerView', size=64),
    dict(
        type='BEVTBlockMaskGenerator',
        input_size=4,
        num_masking_patches=8,
        min_num_patches=2),
    dict(type='PackBEVTInputs')
]

train_dataloader = dict(dataset=dict(dataset=dict(pipeline=video_pipeline)))
image_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='BEVTTolerantDataset',
        dataset=dict(
            type='mmpretrain.CustomDataset',
            ann_file=f'{data_root}/images_train.txt',
            data_prefix=f'{data_root}/images/train',
            pipeline=image_pipeline)))
train_cfg = dict(max_epochs=3, other_loaders=[image_dataloader])

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
        T_max=3,
        eta_min=0,
        by_epoch=True,
        begin=0,
        end=3,
        convert_to_iter_based=True)
]
