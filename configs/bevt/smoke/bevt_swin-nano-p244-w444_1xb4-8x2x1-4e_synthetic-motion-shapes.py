# Smoke recipe (not from the paper): BEVT joint pretraining of the nano
# Video Swin on the generated motion clips and shape images of
# `bevt.datasets.synthetic_motion` (`make demo` writes them; `BEVT_DATA`
# points at another copy). The stage-2 recipe scaled down to a CPU: 8 frames
# of 64 px (4 x 4 x 4 tokens), 64-px images (4 x 4 tokens), 32-px tokenizer
# views, half of the 16 cells masked, tubes over 2-4 of the 4 slots; the
# stage-2 optimisation at lr 1e-3 over 4 epochs, without AMP (a CPU).
_base_ = [
    '../../_base_/models/bevt_swin_nano.py',
    '../../_base_/datasets/bevt_kinetics400_in1k.py',
    '../../_base_/schedules/bevt_adamw_150e.py',
    '../../_base_/default_runtime.py'
]

# dataset settings
data_root = '{{$BEVT_DATA:data/synthetic}}'
video_ann_file = f'{data_root}/videos_train.txt'
image_ann_file = f'{data_root}/images_train.txt'

# the stage-2 pipelines (and the kNN monitor's) with these sizes
smoke_sizes = dict(
    SampleFrames=dict(clip_len=8, frame_interval=2),
    RandomRescale=dict(scale_range=(64, 80)),
    RandomCrop=dict(size=64),
    BEVTTokenizerView=dict(size=32),
    BEVTTubeMaskGenerator=dict(
        input_size=4, num_masking_patches=8, min_num_patches=2, clip_len=8),
    BEVTBlockMaskGenerator=dict(
        input_size=4, num_masking_patches=8, min_num_patches=2),
    Resize=dict(scale=(-1, 64)),
    CenterCrop=dict(crop_size=64))
video_pipeline = [
    dict(step, **smoke_sizes.get(step.type, {}))
    for step in _base_.video_pipeline
]
image_pipeline = [
    dict(step, **smoke_sizes.get(step.type, {}))
    for step in _base_.image_pipeline
]
knn_video_pipeline = [
    dict(step, **smoke_sizes.get(step.type, {}))
    for step in _base_.knn_video_pipeline
]

train_dataloader = dict(
    num_workers=2,
    dataset=dict(
        dataset=dict(
            ann_file=video_ann_file,
            data_prefix=dict(video=f'{data_root}/videos/train'),
            pipeline=video_pipeline)))
# the shape images once per epoch, 8 a batch
img_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(
        dataset=dict(
            _delete_=True,
            type='mmpretrain.CustomDataset',
            ann_file=image_ann_file,
            data_prefix=f'{data_root}/images/train',
            pipeline=image_pipeline)))
# kNN monitor sets (a recipe's BEVTKNNHook): the training clips as the bank,
# the validation clips as the queries, at most 128 of each
knn_loader = dict(batch_size=16, num_workers=2, max_samples=128)
knn_video_sets = dict(
    bank=dict(
        knn_loader,
        dataset=dict(
            ann_file=video_ann_file,
            data_prefix=dict(video=f'{data_root}/videos/train'),
            pipeline=knn_video_pipeline)),
    query=dict(
        knn_loader,
        dataset=dict(
            ann_file=f'{data_root}/videos_val.txt',
            data_prefix=dict(video=f'{data_root}/videos/val'),
            pipeline=knn_video_pipeline)))

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
