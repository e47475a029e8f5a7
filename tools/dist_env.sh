# Sourced by dist_train.sh / dist_test.sh: derives the torchrun layout from
# GPUS (total processes) and the environment.
if ! [[ "$GPUS" =~ ^[1-9][0-9]*$ ]]; then
    echo "GPUS must be a positive integer, got '$GPUS'" >&2
    exit 2
fi
if [ -z "${GPUS_PER_NODE:-}" ]; then
    LOCAL_GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
    if [ "${LOCAL_GPUS:-0}" -gt 0 ]; then
        GPUS_PER_NODE=$(( LOCAL_GPUS < GPUS ? LOCAL_GPUS : GPUS ))
    else
        GPUS_PER_NODE=$GPUS
    fi
fi
if ! [[ "$GPUS_PER_NODE" =~ ^[1-9][0-9]*$ ]]; then
    echo "GPUS_PER_NODE must be a positive integer, got '$GPUS_PER_NODE'" >&2
    exit 2
fi
if [ $(( GPUS % GPUS_PER_NODE )) -ne 0 ]; then
    echo "GPUS ($GPUS) must be a multiple of GPUS_PER_NODE ($GPUS_PER_NODE)" >&2
    exit 2
fi
NNODES=$(( GPUS / GPUS_PER_NODE ))
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PORT=${PORT:-29500}
if ! [[ "$NODE_RANK" =~ ^[0-9]+$ ]] || [ "$NODE_RANK" -ge "$NNODES" ]; then
    echo "NODE_RANK must be in 0..$(( NNODES - 1 )) for $NNODES node(s)," \
         "got '$NODE_RANK'" >&2
    exit 2
fi
if ! [[ "$PORT" =~ ^[0-9]+$ ]] || [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]
then
    echo "PORT must be a TCP port (1..65535), got '$PORT'" >&2
    exit 2
fi
if [ "$NNODES" -gt 1 ] && [ "$MASTER_ADDR" = "127.0.0.1" ]; then
    echo "warning: $NNODES nodes but MASTER_ADDR is 127.0.0.1;" \
         "set MASTER_ADDR to node 0's address on every node" >&2
fi
echo "torchrun: $NNODES node(s) x $GPUS_PER_NODE process(es)," \
     "node_rank=$NODE_RANK master=$MASTER_ADDR:$PORT" >&2
