# A Video Swin small enough to train on a CPU (smoke configs and tests): the
# fine-tune recognizer of `swin_base.py` with the nano backbone of
# `swin_nano_arch.py` (embed 32, depths 1-1-2-1, window 4x4x4) and 8
# classes.
_base_ = ['./swin_base.py', './swin_nano_arch.py']

model = dict(
    backbone=dict(
        arch=dict(_delete_=True, **_base_.nano_arch),
        window_size=_base_.nano_window_size,
        drop_path_rate=0.1),
    cls_head=dict(in_channels=256, num_classes=8, dropout_ratio=0.2))
