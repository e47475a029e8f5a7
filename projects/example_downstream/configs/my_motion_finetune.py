# An example downstream config (see ../README.md): a project outside the
# bevt repository inherits a config that ships with bevt through `bevt::`
# (resolved in the installed bevt package) and changes the schedule, the
# head dropout and the data root. Train and test it with mmaction2's own
# tools/train.py and tools/test.py; no `custom_imports` is needed.
_base_ = ('bevt::bevt/smoke/'
          'swin-nano-p244-w444_scratch_1xb8-8x2x1-12e_synthetic-motion.py')

# more dropout before the classifier. To start from BEVT-pretrained
# weights instead of scratch, also give the backbone
# init_cfg=dict(type='Pretrained', checkpoint='<bevt checkpoint>',
#               prefix='backbone.')
model = dict(cls_head=dict(dropout_ratio=0.5))

# dataset settings: our own data root. The base computed its paths from its
# own `data_root`, so every path that depends on it is set again here (the
# pipelines and everything else are inherited).
data_root = '{{$BEVT_DATA:data/my_motion}}'
ann_file_train = f'{data_root}/videos_train.txt'
ann_file_val = f'{data_root}/videos_val.txt'
ann_file_test = f'{data_root}/videos_val.txt'

train_dataloader = dict(
    dataset=dict(
        ann_file=ann_file_train,
        data_prefix=dict(video=f'{data_root}/videos/train')))
val_dataloader = dict(
    dataset=dict(
        ann_file=ann_file_val,
        data_prefix=dict(video=f'{data_root}/videos/val')))
test_dataloader = dict(
    dataset=dict(
        ann_file=ann_file_test,
        data_prefix=dict(video=f'{data_root}/videos/val')))

# 6 epochs instead of 12: the schedule is a list, so it is written out whole
# (lists replace the inherited ones; dicts are merged key by key)
train_cfg = dict(max_epochs=6, val_interval=2)

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=6,
        eta_min=0,
        by_epoch=True,
        begin=0,
        end=6)
]

default_hooks = dict(checkpoint=dict(interval=2))
