#!/usr/bin/env bash
# Idempotent install of the DAP environment into a virtual environment.
#
#   bash tools/install.sh            # venv at ./.venv (override with DAP_VENV=/path)
#
# CPU machines get torch 2.13.0 (a local CPU wheel where pip finds one). GPU users: create the venv,
# install the torch build matching your CUDA first, then run this script with DAP_KEEP_TORCH=1;
# mmcv's ops are then compiled against that torch (with CUDA when nvcc is found).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${DAP_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${DAP_TORCH_SPEC:-torch==2.13.0}
MMCV_SPEC=mmcv==2.1.0
TORCHVISION_SPEC=${DAP_TORCHVISION_SPEC:-torchvision==0.16.2}

step() { printf '\n==> [install] %s\n' "$*"; }

# 1. MPI library for mpi4py and `--launcher mpi` (Debian/Ubuntu; skipped when present).
if ! command -v mpirun >/dev/null 2>&1 || ! command -v mpicc >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        step "installing Open MPI from apt (openmpi-bin libopenmpi-dev)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends openmpi-bin libopenmpi-dev >/dev/null
    else
        step "WARNING: no MPI found and cannot apt-get install it; --launcher mpi will not work"
    fi
fi

# 2. Virtual environment.
if [ ! -x "$VENV/bin/python" ]; then
    step "creating virtual environment at $VENV"
    "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"

# Nothing to do when this checkout was installed into this venv with the same requirements and script
# (the stamp is written last, after the stack check passed) and the stack still imports.
STAMP="$VENV/.dap-install-stamp"
WANT="$ROOT $TORCH_SPEC keep=${DAP_KEEP_TORCH:-0} $(cat "$ROOT"/requirements/*.txt "$ROOT/setup.cfg" \
    "$ROOT/setup.py" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"
check_stack() {
    python - <<'PY'
import mmcv, mmdet, mmengine, mmpretrain, torch
import mmdet.models, mmpretrain.models  # noqa: F401  (mmpretrain needs torchvision)
from mmcv.ops import RoIAlign, nms  # noqa: F401  (compiled ops present)
import projects.dap.dap  # noqa: F401
print(f'torch {torch.__version__}, mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, '
      f'mmdet {mmdet.__version__}, mmpretrain {mmpretrain.__version__}')
PY
}
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && check_stack 2>/dev/null; then
    step "environment at $VENV is up to date (delete $STAMP to force a reinstall)"
    exit 0
fi
rm -f "$STAMP"

# pip warns about every package missing from this machine's local mirrors: keep the log readable
pip_quiet() { python -m pip "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2); }
PIP=pip_quiet
export PIP_DISABLE_PIP_VERSION_CHECK=1

# 3. torch.
if [ "${DAP_KEEP_TORCH:-0}" = 1 ] && python -c 'import torch' 2>/dev/null; then
    step "keeping the installed torch $(python -c 'import torch; print(torch.__version__)')"
else
    step "installing $TORCH_SPEC"
    $PIP install -q "$TORCH_SPEC"
fi

# 4. Build requirements for mmcv's ops, then mmcv itself from its source distribution.
step "installing build requirements"
$PIP install -q -r "$ROOT/requirements/build.txt"
if python -c 'import mmcv, mmcv.ops; from mmcv.ops import RoIAlign, nms' 2>/dev/null \
        && [ "$(python -c 'import mmcv; print(mmcv.__version__)')" = "${MMCV_SPEC#mmcv==}" ]; then
    step "$MMCV_SPEC with ops already installed"
else
    step "compiling $MMCV_SPEC ops from source: takes ~10 minutes on 2 cores the first time;"
    step "pip caches the built wheel, so later installs reuse it in seconds"
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} $PIP install --no-build-isolation "$MMCV_SPEC"
fi

# 5. The rest of the stack, the test tools and this project (editable, so projects.dap.dap imports anywhere).
step "installing runtime and test requirements"
$PIP install -q -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt" "$MMCV_SPEC"
step "installing the DAP project (editable)"
$PIP install -q --no-build-isolation --no-deps -e "$ROOT"

# 6. torchvision: mmpretrain imports its Python modules (transforms, box utils). PyPI has no CPU build of a
# torchvision matching torch 2.13 for x86_64 (its wheels link CUDA torch libraries), and the newer ones refuse
# to import when their compiled ops cannot load. torchvision 0.16.2 imports cleanly without its ops, which
# neither mmpretrain nor DAP needs (nms/RoIAlign come from mmcv), so it is installed without its torch pin.
# With your own torch (DAP_KEEP_TORCH=1) install the matching torchvision first; it is kept if it imports.
if python -c 'import torchvision' 2>/dev/null; then
    step "keeping torchvision $(python -c 'import torchvision; print(torchvision.__version__)')"
else
    step "installing torchvision ${TORCHVISION_SPEC} (Python modules only; its compiled ops are not used)"
    $PIP install -q --no-deps "$TORCHVISION_SPEC"
    step "(pip may note that torchvision 0.16.2 asks for torch==2.1.2: expected, see above)"
fi

step "checking the stack"
check_stack
echo "$WANT" > "$STAMP"
step "done: activate with 'source $VENV/bin/activate'"
