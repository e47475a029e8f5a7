# BEVT stage 2, the official recipe (xyzforever/BEVT,
# swin_base_patch244_window877_bevt_in1k_k400.py): joint masked image
# modeling on ImageNet-1K and masked video modeling on Kinetics-400 with one
# Video Swin-B, initialised from the stage-1 image-stream checkpoint.
# Per GPU and iteration: 4 clips of 16x224x224 (stride 8) + 32 images;
# 2 iterations per optimizer step; 32 GPUs: 256 clips + 2048 images a step.
_base_ = [
    '../_base_/models/bevt_swin_base.py',
    '../_base_/datasets/bevt_kinetics400_in1k.py',
    '../_base_/schedules/bevt_adamw_150e.py', '../_base_/default_runtime.py'
]

# stage-1 checkpoint (2D image stream; inflated 2D -> 3D by the official
# rules). The official one is `swin_base_image_stream_pretrain.pth`.
model = dict(
    backbone=dict(
        pretrained='checkpoints/swin_base_image_stream_pretrain.pth',
        pretrained2d=True))

# apex O1 in the official run: fp16 with a dynamic loss scale ('bfloat16' is
# safer where supported: optim_wrapper.dtype='bfloat16'); 2 iterations per
# optimizer step
optim_wrapper = dict(
    type='AmpOptimWrapper', loss_scale='dynamic', accumulative_counts=2)

default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook', interval=10, max_keep_ckpts=3, save_best=None),
    logger=dict(type='LoggerHook', interval=50))
# kNN monitor: before training and after every epoch, kNN top-1 / top-5 of
# the backbone's features on Kinetics-400 (20 training clips per class as
# the bank, 10 validation clips per class as the queries; see
# configs/bevt/README.md; k=20, temperature 0.07: the hook's defaults, as
# DINO); off with one warning if a list is missing
custom_hooks = [
    dict(type='BEVTSkippedFilesHook', max_skip_ratio=0.01),
    dict(type='BEVTKNNHook', interval=1, **_base_.knn_video_sets)
]
randomness = dict(seed=0, diff_rank_seed=True)

# Default setting for scaling LR automatically
#   - `enable` means enable scaling LR automatically
#       or not by default.
#   - `base_batch_size` = (32 GPUs) x (4 clips per GPU per iteration) of the
#       primary (video) loader; mmengine ignores `accumulative_counts`.
auto_scale_lr = dict(enable=False, base_batch_size=128)
