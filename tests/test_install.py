"""tools/install.sh as README's commands run it: idempotent, and a no-op
(after a stack check) when the stamp says this checkout is installed.

Runs only inside the virtual environment the script made (the stamp is
there); elsewhere it would create one, which a test must not do.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
STAMP = VENV / '.dap-install-stamp'

pytestmark = pytest.mark.skipif(
    not STAMP.is_file(),
    reason='not running in a venv made by tools/install.sh')


def install() -> str:
    env = dict(os.environ, DAP_VENV=str(VENV))
    proc = subprocess.run(['bash', str(ROOT / 'tools' / 'install.sh')],
                          env=env,
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    return out


def test_current_install_is_skipped_and_a_stale_stamp_reinstalls():
    stamp = STAMP.read_text()
    out = install()
    assert 'is up to date' in out
    assert 'installing runtime' not in out
    assert 'mmdet 3.3.0' in out  # the stack was still checked

    STAMP.write_text('an older checkout\n')
    try:
        out = install()
        assert 'installing runtime and test requirements' in out
        assert 'compiling mmcv' not in out  # ops present: kept
        assert STAMP.read_text() == stamp  # rewritten after the check
    finally:
        STAMP.write_text(stamp)
