# BEVT stage-2 model (official recipe): one Video Swin-B shared by the image
# and the video stream, the two fusion decoders, one 8192-way MIM head shared
# by both streams, and a frozen DALL-E dVAE encoder as the tokenizer.
model = dict(
    type='BEVT',
    backbone=dict(
        type='BEVTSwinTransformer3D',
        arch='base',
        patch_size=(2, 4, 4),
        window_size=(8, 7, 7),
        drop_path_rate=0.3,
        # the official image path (its two attention quirks); False gives
        # standard Swin behaviour for the image stream
        official_image_path=True,
        # stage-1 image-stream checkpoint, inflated 2D -> 3D; None = random
        pretrained=None,
        pretrained2d=True),
    head=dict(
        type='BEVTMIMHead',
        in_channels=1024,
        num_classes=8192,
        loss_weights=dict(video=1.0, img=1.0)),
    target_generator=dict(
        type='BEVTDALLETokenizer',
        # float16 on CUDA, as the official DALL-E's convolutions (OpenAI's
        # Conv2d casts to half), float32 on CPU; channels-last convolutions,
        # compiled with torch.compile (docs/performance.md)
        dtype='auto',
        channels_last=True,
        compile=True,
        # mmpretrain's converted DALL-E encoder (`dalle_encoder.pth`, or
        # tools/model_converters/dalle_openai.py on OpenAI's encoder.pkl)
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/dalle_encoder.pth')),
    data_preprocessor=dict(
        type='BEVTDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        # DALL-E map-pixels: x / 255 * 0.8 + 0.1
        second_mean=[-31.875, -31.875, -31.875],
        second_std=[318.75, 318.75, 318.75]))
