# A BEVT model small enough to pretrain on a CPU (smoke configs, the demo):
# the stage-2 model of `bevt_swin_base.py` with the nano Video Swin of
# `swin_nano_arch.py` (the backbone of `swin_nano.py`, so its checkpoints
# fine-tune it) and a small DALL-E encoder. The tokenizer has no weights
# file, so it stays at random init (it warns): its targets are a fixed
# random quantisation of the pixels, enough to exercise the method.
_base_ = ['./bevt_swin_base.py', './swin_nano_arch.py']

model = dict(
    backbone=dict(
        arch=dict(_delete_=True, **_base_.nano_arch),
        window_size=_base_.nano_window_size,
        drop_path_rate=0.1),
    head=dict(in_channels=256, num_classes=512),
    target_generator=dict(
        _delete_=True,
        type='BEVTDALLETokenizer',
        encoder=dict(n_hid=32, vocab_size=512)))
