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

# the stage-2 pipelines with the tokenizer view at the crop size: the HOG
# of the 224-px crop itself
video_pipeline = [
    dict(step, size=224) if step.type == 'BEVTTokenizerView' else step
    for step in _base_.video_pipeline
]
image_pipeline = [
    dict(step, size=224) if step.type == 'BEVTTokenizerView' else step
    for step in _base_.image_pipeline
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=video_pipeline)))
img_dataloader = dict(
    dataset=dict(dataset=dict(dataset=dict(pipeline=image_pipeline))))
