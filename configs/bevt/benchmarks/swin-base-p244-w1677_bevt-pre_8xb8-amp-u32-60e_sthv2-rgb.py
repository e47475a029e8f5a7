# Fine-tune a BEVT-pretrained Video Swin-B on Something-Something v2: the
# official recipe (xyzforever/BEVT, cfg-ssv2; reported 70.6 top-1 with 1x3
# views), in plain mmaction2 modules, so the fine-tuned checkpoint loads in
# mmaction2. 8 GPUs x 1 clip x 8 accumulated iterations = 64 clips per step:
#   tools/dist_train.sh <this config> 8 --seed 0
# The window is 16x7x7: the pretrained 8x7x7 relative-position tables must
# be resized (trilinearly, (15,13,13) -> (31,13,13) per head) by the
# converter, since mmaction2's SwinTransformer3D cannot do it on load:
#   python tools/model_converters/bevt_to_mmaction.py \
#       work_dirs/<stage 2>/epoch_150.pth \
#       checkpoints/bevt_swin-base-w1677_mmaction.pth --window-size 16 7 7
_base_ = [
    './swin-base-p244-w877_bevt-pre_8xb8-amp-32x2x1-60e_kinetics400-rgb.py'
]

model = dict(
    backbone=dict(
        window_size=(16, 7, 7),
        drop_path_rate=0.4,
        init_cfg=dict(
            checkpoint='checkpoints/bevt_swin-base-w1677_mmaction.pth')),
    cls_head=dict(num_classes=174, label_smooth_eps=0.1),
    # the 3 test views go through the backbone 2 at a time (as officially)
    test_cfg=dict(max_testing_views=2))

# dataset settings
data_root = 'data/sthv2/videos'
data_root_val = 'data/sthv2/videos'
ann_file_train = 'data/sthv2/sthv2_train_list_videos.txt'
ann_file_val = 'data/sthv2/sthv2_val_list_videos.txt'
ann_file_test = 'data/sthv2/sthv2_val_list_videos.txt'

# 32 frames, one at random from each of 32 equal segments (the middle one
# in test mode). No `Flip` (SSv2 has left/right classes), but imgaug's
# RandAugment, which the official run used, begins with a horizontal flip
# of p=0.5 and a small crop: `hflip_prob=0.5` keeps the official behaviour
# (set it to 0. to never flip, not the paper's recipe). RandAugment's ops
# and magnitudes are drawn once per clip, as imgaug's deterministic mode did;
# each op's output equals imgaug 0.4.0's (checked op by op); only the random
# stream differs (numpy's instead of imgaug's). RandomErasing (one box for
# all frames) fills with the mean colour, i.e. the zeros of timm's erasing
# after normalisation.
train_pipeline = [
    dict(type='DecordInit'),
    dict(type='UniformSample', clip_len=32),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='RandomResizedCrop'),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(
        type='BEVTClipRandAugment',
        num_ops=4,
        magnitude=7,
        hflip_prob=0.5,
        crop=True),
    dict(
        type='RandomErasing',
        erase_prob=0.25,
        mode='const',
        fill_color=(123.675, 116.28, 103.53)),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
# the Kinetics-400 pipelines with uniform sampling; 1 clip x 3 crops at test
val_pipeline = [
    dict(type='UniformSample', clip_len=32, test_mode=True)
    if step.type == 'SampleFrames' else step for step in _base_.val_pipeline
]
test_pipeline = [
    dict(type='UniformSample', clip_len=32, num_clips=1, test_mode=True)
    if step.type == 'SampleFrames' else step for step in _base_.test_pipeline
]

train_dataloader = dict(
    batch_size=1,
    dataset=dict(
        ann_file=ann_file_train,
        data_prefix=dict(video=data_root),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        ann_file=ann_file_val,
        data_prefix=dict(video=data_root_val),
        pipeline=val_pipeline))
test_dataloader = dict(
    dataset=dict(
        ann_file=ann_file_test,
        data_prefix=dict(video=data_root_val),
        pipeline=test_pipeline))

# AdamW 5e-4, weight decay 0.05, no layer decay, no gradient clipping. The
# official param groups: its custom_keys, longest key first (see the K400
# config): every backbone parameter gets lr x 0.1 and weight decay, norms
# and biases included (`backbone` is longer than `norm`), except the
# relative-position tables, which keep lr_mult 1 and no decay. The
# `...corrected-groups...` variant gives the tables the backbone's 0.1 and
# exempts norms and biases (not the paper's recipe). apex O1 officially;
# fp16 AMP with a dynamic loss scale here.
optim_wrapper = dict(
    accumulative_counts=8,
    optimizer=dict(lr=5e-4, weight_decay=0.05),
    paramwise_cfg=dict(
        _delete_=True,
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.),
            'backbone': dict(lr_mult=0.1),
        }),
    clip_grad=None)

# EMA of the weights, updated every iteration (as mmcv's EMAHook, whose
# 100-iteration warm-up has no effect at this momentum); the EMA weights are
# the ones evaluated and saved for testing
custom_hooks = [dict(type='EMAHook', momentum=0.0002)]

# Default setting for scaling LR automatically
#   - `enable` means enable scaling LR automatically
#       or not by default.
#   - `base_batch_size` = (8 GPUs) x (1 sample per GPU per iteration);
#       mmengine ignores `accumulative_counts`.
auto_scale_lr = dict(enable=False, base_batch_size=8)
