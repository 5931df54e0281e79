#!/usr/bin/env bash
# Install (idempotent) and run the test suite:  bash tools/run_tests.sh [pytest args]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/tools/install.sh"
# shellcheck disable=SC1091
source "${DAP_VENV:-$ROOT/.venv}/bin/activate"
cd "$ROOT"
exec python -m pytest tests "$@"
