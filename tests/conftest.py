"""Shared fixtures: generated data and a helper that runs tools as a user."""
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
QUICKSTART = osp.join(REPO, 'configs', 'quickstart',
                      'faster-rcnn_r50_fpn_20i_shapes-coco.py')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_tool(args, cwd=None, timeout=600, env=None, check=True):
    """Run ``args`` like a user in a shell; return the CompletedProcess.

    ``args[0]`` ending in ``.py`` is run with this interpreter.  On failure
    the output is shown, so a broken tool explains itself in the test log.
    """
    args = [str(a) for a in args]
    if args[0].endswith('.py'):
        args = [sys.executable] + args
    full_env = dict(os.environ)
    full_env.setdefault('OMP_NUM_THREADS', '1')
    full_env.update(env or {})
    proc = subprocess.run(
        args,
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f'{" ".join(args)} exited {proc.returncode}:\n'
                    f'{proc.stdout[-6000:]}')
    return proc


@pytest.fixture(scope='session')
def shapes_workspace(tmp_path_factory):
    """A folder with ``data/shapes_coco``, as the quick-start config wants."""
    root = tmp_path_factory.mktemp('shapes')
    run_tool([
        osp.join(REPO, 'tools', 'misc', 'make_shapes_coco.py'),
        root / 'data' / 'shapes_coco', '--num-train', '8', '--num-val', '4'
    ])
    return root
