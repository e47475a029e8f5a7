# A BEVT model small enough to pretrain on a CPU (smoke configs, the demo):
# the nano Video Swin of `swin_nano.py` (same backbone weights, so its
# checkpoints fine-tune it) and a small DALL-E encoder. The tokenizer has no
# weights file, so it stays at random init (it warns): its targets are a
# fixed random quantisation of the pixels, enough to exercise the method.
model = dict(
    type='BEVT',
    backbone=dict(
        type='BEVTSwinTransformer3D',
        arch=dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8]),
        patch_size=(2, 4, 4),
        window_size=(4, 4, 4),
        drop_path_rate=0.1,
        official_image_path=True,
        pretrained=None),
    head=dict(
        type='BEVTMIMHead',
        in_channels=256,
        num_classes=512,
        loss_weights=dict(video=1.0, img=1.0)),
    target_generator=dict(
        type='BEVTDALLETokenizer', encoder=dict(n_hid=32, vocab_size=512)),
    data_preprocessor=dict(
        type='BEVTDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        second_mean=[-31.875, -31.875, -31.875],
        second_std=[318.75, 318.75, 318.75]))
