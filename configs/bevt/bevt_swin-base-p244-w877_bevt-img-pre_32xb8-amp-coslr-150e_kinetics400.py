# Ablation: the video stream only (masked video modeling on Kinetics-400,
# no image stream), otherwise the stage-2 recipe. The paper reports 76.2
# K400 top-1 for "BEVT video-only" (not verified against the paper).
_base_ = [
    './bevt_swin-base-p244-w877_bevt-img-pre_32xb8-amp-coslr-150e_'
    'in1k-kinetics400.py'
]

# only the video half of the model is used: DDP must allow unused weights
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
img_dataloader = None
train_cfg = dict(
    _delete_=True,
    type='BEVTEpochBasedTrainLoop',
    max_epochs=150,
    val_interval=150)
