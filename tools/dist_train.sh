#!/usr/bin/env bash
# Distributed training with torchrun.
#   tools/dist_train.sh CONFIG GPUS [train.py args...]
# GPUS is the TOTAL number of processes (unlike mmaction2, where it is per
# node): `tools/dist_train.sh configs/bevt/pretrain.py 32` is a 32-GPU run.
# Processes per node: GPUS_PER_NODE (default: the local GPU count capped by
# GPUS, or GPUS on a machine without GPUs, which then runs CPU processes
# with gloo). Nodes: GPUS / GPUS_PER_NODE; run the same command on every
# node with NODE_RANK (0..nodes-1), MASTER_ADDR and PORT set.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG GPUS [train.py args...]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/dist_env.sh"

PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" \
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" \
    --nproc_per_node="$GPUS_PER_NODE" \
    "$HERE/train.py" "$CONFIG" --launcher pytorch "$@"
