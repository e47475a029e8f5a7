# Variant (not from the paper): MaskFeat-style HOG targets instead of DALL-E
# ids, so that no tokenizer weights are needed. The head regresses the
# 108-d HOG feature of each masked 16x16 cell (MSE); the tokenizer view is
# the 224-px crop itself. Otherwise the stage-2 recipe.
_base_ = [
    './bevt_swin-base-p244-w877_bevt-img-pre_32xb8-amp-coslr-150e_'
    'in1k-kinetics400.py'
]

model = dict(
    head=dict(
        _delete_=True,
        type='BEVTRegressionHead',
        in_channels=1024,
        target_dims=108,
        loss_weights=dict(video=1.0, img=1.0)),
    target_generator=dict(
        _delete_=True,
        type='BEVTHOGTargets',
        nbins=9,
        pool=8,
        gaussian_window=16,
        downsample=16))

video_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=16, frame_interval=8, num_clips=1),
    dict(type='DecordDecode'),
    dict(
        type='RandomRescale', scale_range=(256, 320), interpolation='bicubic'),
    dict(type='RandomCrop', size=224),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='BEVTTokenizerView', size=224),  # HOG of the crop itself
    dict(
        type='BEVTTubeMaskGenerator',
        input_size=14,
        num_masking_patches=98,
        min_num_patches=16,
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
    dict(type='BEVTTokenizerView', size=224),
    dict(
        type='BEVTBlockMaskGenerator',
        input_size=14,
        num_masking_patches=98,
        min_num_patches=16),
    dict(type='PackBEVTInputs')
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=video_pipeline)))
train_cfg = dict(other_loaders=[
    dict(
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
                    ann_file={{_base_.image_ann_file}},
                    data_prefix={{_base_.image_data_root}},
                    pipeline=image_pipeline))))
])
