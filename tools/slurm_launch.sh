#!/usr/bin/env bash
# srun for the slurm_*.sh wrappers:
#   bash tools/slurm_launch.sh SCRIPT PARTITION JOB_NAME CONFIG WORK_DIR [script arguments]
# GPUS (default 8), GPUS_PER_NODE (default 8), CPUS_PER_TASK (default 5), SRUN_ARGS from the environment.
# The repo goes first on PYTHONPATH (srun passes the environment on), as mmdet's scripts do, so a plain
# checkout (no `pip install -e .`) runs.
set -euo pipefail
if [ $# -lt 5 ]; then
    echo "usage: $0 SCRIPT PARTITION JOB_NAME CONFIG WORK_DIR [script arguments]" >&2
    exit 2
fi
SCRIPT=$1
PARTITION=$2
JOB_NAME=$3
CONFIG=$4
WORK_DIR=$5
shift 5
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

# shellcheck disable=SC2086
exec srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    python -u "$SCRIPT" "$CONFIG" --work-dir="$WORK_DIR" --launcher slurm "$@"
