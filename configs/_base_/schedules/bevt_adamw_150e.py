# BEVT stage-2 optimisation (the official recipe): one training step per
# (video batch, image batch) pair, the epoch being the video loader's;
# AdamW 5e-4, weight decay 0.05 (not on norms and relative-position tables;
# biases, mask token, decoders and head are decayed, as officially), clip
# 3.0; 10-epoch linear warmup from 0.1x multiplying a cosine to 0 over all
# 150 epochs, both stepped every iteration. The recipe sets AMP and the
# accumulation. BEVTOptimWrapperConstructor gives each parameter mmengine's
# settings, in one param group per distinct setting (2 instead of 344 for
# Swin-B: fewer optimizer kernels per step); torch's fused AdamW updates
# each group in one kernel (the same update up to float rounding).
train_cfg = dict(
    type='BEVTMultiSourceEpochLoop',
    other_loaders=['img_dataloader'],
    max_epochs=150,
    nonfinite_loss='raise')
val_cfg = None
test_cfg = None

optim_wrapper = dict(
    constructor='BEVTOptimWrapperConstructor',
    optimizer=dict(
        type='AdamW',
        lr=5e-4,
        betas=(0.9, 0.999),
        weight_decay=0.05,
        fused=True),
    paramwise_cfg=dict(
        custom_keys=dict(
            absolute_pos_embed=dict(decay_mult=0.),
            relative_position_bias_table=dict(decay_mult=0.),
            norm=dict(decay_mult=0.))),
    clip_grad=dict(max_norm=3.0, norm_type=2))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=150,
        eta_min=0,
        by_epoch=True,
        begin=0,
        end=150,
        convert_to_iter_based=True)
]
