# Sourced by slurm_train.sh / slurm_test.sh: checks GPUS (total tasks),
# GPUS_PER_NODE (tasks and GPUs per node; default: GPUS capped at 8) and
# CPUS_PER_TASK before srun asks for the nodes.
GPUS=${GPUS:-8}
if ! [[ "$GPUS" =~ ^[1-9][0-9]*$ ]]; then
    echo "GPUS must be a positive integer, got '$GPUS'" >&2
    exit 2
fi
GPUS_PER_NODE=${GPUS_PER_NODE:-$(( GPUS < 8 ? GPUS : 8 ))}
if ! [[ "$GPUS_PER_NODE" =~ ^[1-9][0-9]*$ ]]; then
    echo "GPUS_PER_NODE must be a positive integer, got '$GPUS_PER_NODE'" >&2
    exit 2
fi
if [ $(( GPUS % GPUS_PER_NODE )) -ne 0 ]; then
    echo "GPUS ($GPUS) must be a multiple of GPUS_PER_NODE" \
         "($GPUS_PER_NODE): every node runs GPUS_PER_NODE tasks" >&2
    exit 2
fi
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
if ! [[ "$CPUS_PER_TASK" =~ ^[1-9][0-9]*$ ]]; then
    echo "CPUS_PER_TASK must be a positive integer, got '$CPUS_PER_TASK'" >&2
    exit 2
fi
SRUN_ARGS=${SRUN_ARGS:-""}
