"""The demo's stage engine: a stage runs once per hash of its inputs, and
each of its tools runs as a subprocess with a progress bar.

A finished stage leaves ``{folder}/.stage.json`` with the hash of what
decides its result (its config, options, the upstream stages' hashes) and
the result; a rerun with the same hash skips it, another hash starts it
again from an empty folder.
"""
import glob
import hashlib
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time
from typing import Callable, Dict, Optional, Sequence

from .progress import ProgressBar

MARKER = '.stage.json'


class ToolError(RuntimeError):
    pass


def header(text: str) -> None:
    print(f'\n{"=" * 72}\n{text}\n{"=" * 72}', flush=True)


def run_stage(folder: str, title: str, inputs: object,
              work: Callable[[str], dict]) -> dict:
    """Print ``title``, then run ``work(folder)`` unless ``folder``'s marker
    holds the hash of ``inputs``; the result, with that hash as
    ``digest``."""
    header(title)
    marker = osp.join(folder, MARKER)
    digest = hashlib.sha256(
        json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
    try:
        with open(marker) as f:
            done = json.load(f)
    except (OSError, ValueError):
        done = {}
    if done.get('hash') == digest:
        print('  done before, skipped')
        return dict(done['result'], digest=digest)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    result = work(folder)
    with open(marker + '.tmp', 'w') as f:
        json.dump(dict(hash=digest, result=result), f, indent=1)
    os.replace(marker + '.tmp', marker)
    return dict(result, digest=digest)


def run_tool(args: Sequence[str],
             log_file: str,
             cwd: str,
             env: Dict[str, str],
             bar: Optional[ProgressBar] = None) -> None:
    """``python *args`` in ``cwd``, its output into ``log_file``; ``bar``
    follows the progress file in the tool's ``--work-dir``.  A failing tool
    raises :class:`ToolError` with the log's tail."""
    cmd = [sys.executable] + [str(a) for a in args]
    work_dir = cmd[cmd.index('--work-dir') + 1] if bar else ''
    with open(log_file, 'w') as log:
        log.write('$ ' + ' '.join(cmd) + '\n')
        log.flush()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            time.sleep(1)
            if bar:
                bar.follow(work_dir)
    if bar:
        bar.follow(work_dir)
        bar.close()
    if proc.returncode != 0:
        with open(log_file) as f:
            tail = ''.join(f.readlines()[-40:])
        raise ToolError(f'{" ".join(cmd)} exited with {proc.returncode} '
                        f'(log: {log_file}):\n{tail}')


def last_metric(work_dir: str, key: str) -> float:
    """``key`` of the last record holding it in mmengine's scalar logs
    (``{work_dir}/{timestamp}/vis_data/scalars.json``)."""
    found = None
    for path in sorted(glob.glob(f'{work_dir}/*/vis_data/scalars.json')):
        with open(path) as f:
            records = [json.loads(line) for line in f if line.strip()]
        found = next((r[key] for r in reversed(records) if key in r), found)
    if found is None:
        raise ToolError(f'no "{key}" metrics under {work_dir}')
    return found
