# The official BEVT fine-tune schedule: 60 epochs, validation and
# checkpoints every 5; AdamW (the recipe sets lr, weight decay and param
# groups); a 2.5-epoch linear warmup from 0.1x (per iteration) multiplying a
# cosine to 0 over 60 epochs (per epoch), as the official mmcv schedule.
train_cfg = dict(
    type='BEVTEpochBasedTrainLoop', max_epochs=60, val_begin=1, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(optimizer=dict(type='AdamW', betas=(0.9, 0.999)))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=2.5,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=60,
        eta_min=0,
        by_epoch=True,
        begin=0,
        end=60)
]
