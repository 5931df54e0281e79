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
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec bash "$HERE/dist_launch.sh" "$GPUS" "$HERE/generate_pseudo_boxes.py" "$CONFIG" --launcher pytorch "$@"
