# The paper's stage-2 pretraining on 32 GPUs:
#   tools/dist_train.sh configs/bevt/pretrain.py 32
# (4 nodes x 8 GPUs: set NODE_RANK, MASTER_ADDR and PORT on every node; see
# the README). It is the official recipe, unchanged.
_base_ = [
    './bevt_swin-base-p244-w877_bevt-img-pre_32xb8-amp-coslr-150e_'
    'in1k-kinetics400.py'
]
