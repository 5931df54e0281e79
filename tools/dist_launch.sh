#!/usr/bin/env bash
# torchrun for the dist_*.sh wrappers:  bash tools/dist_launch.sh PROCS_PER_NODE SCRIPT [args]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT (default 29500) set on every node.
# On a machine without CUDA the processes run on the CPU with the gloo backend.
# The repo goes first on PYTHONPATH, so a plain checkout (no `pip install -e .`) runs.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 PROCS_PER_NODE SCRIPT [script arguments]" >&2
    exit 2
fi
PROCS=$1
SCRIPT=$2
shift 2
# the repo first on PYTHONPATH (as mmdet's scripts do): `projects.dap.dap`
# imports from this checkout, installed or not
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
exec python -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$PROCS" \
    --master_port="${PORT:-29500}" \
    "$SCRIPT" "$@"
