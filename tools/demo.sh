#!/usr/bin/env bash
# README's first command: install (idempotent), then run the project's main
# job -- all four DAP steps end to end on a benchmark generated from a seed
# (tools/run_dap_demo.py; report in work_dirs/dap_demo/report.md).
# Extra arguments go to run_dap_demo.py (e.g. --quick, --seeds 5).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/tools/install.sh"
# shellcheck disable=SC1091
source "${DAP_VENV:-$ROOT/.venv}/bin/activate"
cd "$ROOT"
python tools/run_dap_demo.py "$@"
