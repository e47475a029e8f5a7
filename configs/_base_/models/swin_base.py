# Video Swin-B recognizer for fine-tuning BEVT checkpoints in plain mmaction2
# modules (the official fine-tunes' model: Recognizer3D + SwinTransformer3D
# + I3DHead), with the Kinetics-400 settings: window 8x7x7, drop path 0.3,
# 400 classes. The backbone weights come from `init_cfg` (a stage-2
# checkpoint converted by tools/model_converters/bevt_to_mmaction.py).
model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='SwinTransformer3D',
        arch='base',
        pretrained=None,
        pretrained2d=False,
        patch_size=(2, 4, 4),
        window_size=(8, 7, 7),
        mlp_ratio=4.,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.3,
        patch_norm=True),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape='NCTHW'),
    cls_head=dict(
        type='I3DHead',
        in_channels=1024,
        num_classes=400,
        spatial_type='avg',
        dropout_ratio=0.5,
        init_std=0.01,
        average_clips='prob'))
