# BEVT stage-2 data (the official recipe): Kinetics-400 clips for the video
# stream (the primary loader, which defines the epoch) and ImageNet-1K images
# for the image stream (`img_dataloader`, named by the loop's
# `train_cfg.other_loaders`; a child config merges into it key by key).
# Per GPU and iteration: 4 clips of 16x224x224 (stride 8) + 32 images.
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

# unreadable files are replaced by other samples (see BEVTTolerantDataset)
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
# the video loader's settings with 32 images a batch; ImageNet repeated 5
# times, so that the image loader outlasts the video epoch (as the official
# run)
img_dataloader = dict(
    train_dataloader,
    batch_size=32,
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

# kNN monitor sets (BEVTKNNHook in a recipe's custom_hooks): a labelled bank
# and labelled queries, unmasked centre views, balanced subsets of at most
# `max_samples` samples (the classes take turns in list order). Kinetics-400:
# 20 training clips per class as the bank, 10 validation clips per class as
# the queries; ImageNet-1K: 10 training and 5 validation images per class.
# A missing list turns the hook off with one warning.
knn_video_val_root = 'data/kinetics400/videos_val'
knn_video_val_ann_file = 'data/kinetics400/kinetics400_val_list_videos.txt'
knn_image_val_root = 'data/imagenet/val'
knn_image_val_ann_file = 'data/imagenet/meta/val.txt'
knn_video_pipeline = [
    dict(type='DecordInit'),
    dict(
        type='SampleFrames',
        clip_len=16,
        frame_interval=8,
        num_clips=1,
        test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackBEVTInputs')
]
knn_image_pipeline = [
    dict(type='BEVTLoadImage'),
    dict(type='Resize', scale=(-1, 256), interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackBEVTInputs')
]
knn_video_bank = dict(
    batch_size=8,
    num_workers=8,
    max_samples=8000,
    dataset=dict(
        type='VideoDataset',
        ann_file=video_ann_file,
        data_prefix=dict(video=video_data_root),
        pipeline=knn_video_pipeline,
        test_mode=True))
knn_image_bank = dict(
    batch_size=64,
    num_workers=8,
    max_samples=10000,
    dataset=dict(
        type='mmpretrain.ImageNet',
        ann_file=image_ann_file,
        data_prefix=image_data_root,
        pipeline=knn_image_pipeline,
        test_mode=True))
# the queries: the bank's loader on the validation list
knn_video_sets = dict(
    bank=knn_video_bank,
    query=dict(
        knn_video_bank,
        max_samples=4000,
        dataset=dict(
            knn_video_bank['dataset'],
            ann_file=knn_video_val_ann_file,
            data_prefix=dict(video=knn_video_val_root))))
knn_image_sets = dict(
    bank=knn_image_bank,
    query=dict(
        knn_image_bank,
        max_samples=5000,
        dataset=dict(
            knn_image_bank['dataset'],
            ann_file=knn_image_val_ann_file,
            data_prefix=knn_image_val_root)))
