# Smoke recipe (not from the paper): a nano Video Swin trained from scratch
# on the generated motion clips of `bevt.datasets.synthetic_motion`
# (`make demo` writes them; `BEVT_DATA` points at another copy). It is the
# from-scratch baseline of the demo and the tiny config of the tool tests:
# the smoke fine-tune without pretrained weights, with plain crops, 8 clips
# per iteration, mmaction2's Swin optimizer and 1-view testing.
_base_ = ['./swin-nano-p244-w444_bevt-pre_1xb8-8x2x1-12e_synthetic-motion.py']

model = dict(backbone=dict(init_cfg=None), test_cfg=None)

# no flip: the classes are motions, and a flip turns "left" into "right"
train_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=8, frame_interval=2, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 64)),
    dict(type='RandomCrop', size=64),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
test_pipeline = _base_.val_pipeline

train_dataloader = dict(batch_size=8, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=8)
test_dataloader = dict(batch_size=8, dataset=dict(pipeline=test_pipeline))

optim_wrapper = dict(
    _delete_=True,
    optimizer=dict(
        type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='SwinOptimWrapperConstructor',
    paramwise_cfg=dict(
        absolute_pos_embed=dict(decay_mult=0.),
        relative_position_bias_table=dict(decay_mult=0.),
        norm=dict(decay_mult=0.)),
    clip_grad=dict(max_norm=5, norm_type=2))

# Default setting for scaling LR automatically
#   - `enable` means enable scaling LR automatically
#       or not by default.
#   - `base_batch_size` = (1 GPU) x (8 samples per GPU).
auto_scale_lr = dict(enable=False, base_batch_size=8)
