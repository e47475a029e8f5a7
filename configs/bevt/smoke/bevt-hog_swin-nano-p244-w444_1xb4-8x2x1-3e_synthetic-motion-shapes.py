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

# the smoke pipelines with the tokenizer view at the crop size: the HOG of
# the 64-px crop itself
video_pipeline = [
    dict(step, size=64) if step.type == 'BEVTTokenizerView' else step
    for step in _base_.video_pipeline
]
image_pipeline = [
    dict(step, size=64) if step.type == 'BEVTTokenizerView' else step
    for step in _base_.image_pipeline
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=video_pipeline)))
img_dataloader = dict(dataset=dict(dataset=dict(pipeline=image_pipeline)))

# 3 epochs: 1 of warmup, the cosine over all 3
train_cfg = dict(max_epochs=3)
param_scheduler = _base_.param_scheduler
param_scheduler[1].update(T_max=3, end=3)

# kNN monitor (BEVTKNNHook): before the first epoch and after each, the
# mean-pooled features of the centre crop of one clip, 16 training clips
# per motion as the bank and the 16 validation clips per motion as the
# queries (the smoke sets of the base config; k=20, temperature 0.07);
# top-1 at chance is 12.5 %
custom_hooks = _base_.custom_hooks + [
    dict(type='BEVTKNNHook', interval=1, **_base_.knn_video_sets)
]
