#!/usr/bin/env bash
# Pseudo boxes (DAP step 2) on Slurm:
#   bash tools/slurm_generate_pseudo_boxes.sh PARTITION JOB_NAME CONFIG WORK_DIR --checkpoint CKPT [generate_pseudo_boxes.py args]
# GPUS (default 8), GPUS_PER_NODE (default 8), CPUS_PER_TASK (default 5), SRUN_ARGS from the environment.
# WORK_DIR and the box file's folder must be on storage every node mounts (checked before any image).
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [tools/generate_pseudo_boxes.py arguments]" >&2
    exit 2
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec bash "$HERE/slurm_launch.sh" "$HERE/generate_pseudo_boxes.py" "$@"
