# BEVT stage 1: masked image modeling with the image stream only.
# PROPOSED recipe, not from the authors: the official stage-1 code was never
# released. It uses the image branch of the stage-2 recipe (2D path through
# the shared Video Swin-B blocks, image fusion decoder, 98-patch block masks,
# the stage-2 image pipeline, DALL-E targets) and BEiT's optimisation
# (mmpretrain beit-base 8xb256: AdamW 1.5e-3 at batch 2048, weight decay
# 0.05, 10 warmup epochs, clip 3.0), for the paper's 800 epochs.
# 32 GPUs x 64 images = 2048 images per step.
_base_ = [
    './bevt_swin-base-p244-w877_bevt-img-pre_32xb8-amp-coslr-150e_'
    'in1k-kinetics400.py'
]

model = dict(backbone=dict(pretrained=None))  # random init
# only the image half of the model is used: DDP must allow unused weights
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)

# the image stream is the only (primary) loader: the stage-2 image data,
# ImageNet once per epoch
train_dataloader = dict(
    batch_size=64,
    num_workers=10,
    dataset=dict(
        dataset=dict(
            _delete_=True,
            type='mmpretrain.ImageNet',
            ann_file=_base_.image_ann_file,
            data_prefix=_base_.image_data_root,
            pipeline=_base_.image_pipeline)))
img_dataloader = None
train_cfg = dict(
    _delete_=True,
    type='BEVTEpochBasedTrainLoop',
    max_epochs=800,
    val_interval=800)

optim_wrapper = dict(
    accumulative_counts=1,
    optimizer=dict(lr=1.5e-3, betas=(0.9, 0.999), weight_decay=0.05))
param_scheduler = _base_.param_scheduler
param_scheduler[0].update(start_factor=1e-4)
param_scheduler[1].update(T_max=790, eta_min=1e-5, begin=10, end=800)
default_hooks = dict(checkpoint=dict(interval=50))
# kNN monitor on ImageNet-1K (10 training images per class as the bank, 5
# validation images per class as the queries; k=20, temperature 0.07), every
# 10 epochs
custom_hooks = [
    dict(type='BEVTSkippedFilesHook', max_skip_ratio=0.01),
    dict(type='BEVTKNNHook', interval=10, **_base_.knn_image_sets)
]

# Default setting for scaling LR automatically
#   - `enable` means enable scaling LR automatically
#       or not by default.
#   - `base_batch_size` = (32 GPUs) x (64 images per GPU).
auto_scale_lr = dict(enable=False, base_batch_size=2048)
