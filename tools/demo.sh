#!/usr/bin/env bash
# README's first command: install (idempotent), then run the project's main job.
# Until the end-to-end DAP demo lands, the main job is the smallest real training run:
# generate a tiny COCO-format set, train Faster R-CNN R50-FPN 20 iterations on CPU, evaluate.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/tools/install.sh"
# shellcheck disable=SC1091
source "${DAP_VENV:-$ROOT/.venv}/bin/activate"
cd "$ROOT"
CONFIG=configs/quickstart/faster-rcnn_r50_fpn_20i_shapes-coco.py
WORK_DIR=${WORK_DIR:-work_dirs/quickstart}
echo "==> [demo] generating data/shapes_coco"
python tools/misc/make_shapes_coco.py data/shapes_coco
echo "==> [demo] training $CONFIG"
python tools/train.py "$CONFIG" --work-dir "$WORK_DIR" "$@"
echo "==> [demo] evaluating the last checkpoint"
python tools/test.py "$CONFIG" "$WORK_DIR/iter_20.pth" --work-dir "$WORK_DIR"
