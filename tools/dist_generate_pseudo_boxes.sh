#!/usr/bin/env bash
# Pseudo boxes on many GPUs with torchrun:
#   bash tools/dist_generate_pseudo_boxes.sh CONFIG GPUS --checkpoint CKPT [generate_pseudo_boxes.py args]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT (default 29500) set on every node.
# On a machine without CUDA, GPUS processes run on the CPU with the gloo backend.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG GPUS [tools/generate_pseudo_boxes.py arguments]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

exec python -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$HERE/generate_pseudo_boxes.py" "$CONFIG" --launcher pytorch "$@"
