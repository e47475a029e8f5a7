# NOT the paper's recipe: the official Something-Something v2 fine-tune with
# corrected param groups. The official custom_keys (see the parent config)
# give the relative-position tables the full lr instead of the backbone's
# 0.1 and weight-decay every backbone norm and every bias, which is what
# produced the paper's 70.6. Here `BEVTSwin3DLayerDecayConstructor` gives
# every backbone parameter lr x 0.1 (tables included) and no weight decay
# to norms, biases and tables. Otherwise the official recipe.
_base_ = ['./swin-base-p244-w1677_bevt-pre_8xb8-amp-u32-60e_sthv2-rgb.py']

optim_wrapper = dict(
    constructor='BEVTSwin3DLayerDecayConstructor',
    paramwise_cfg=dict(
        _delete_=True, layer_decay_rate=1.0, backbone_lr_mult=0.1))
