"""The demo's stage engine: a stage runs once per hash of its inputs, and
each of its tools runs as a subprocess with a progress bar; a
:class:`Pipeline` runs the stages in one work dir and times them.

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


def tool_env(repo: str, threads: int = 0) -> Dict[str, str]:
    """The environment of a tool: ``repo`` importable and ``threads``
    (default: every CPU) OpenMP / MKL threads."""
    env = dict(os.environ)
    env['PYTHONPATH'] = repo + os.pathsep + env.get('PYTHONPATH', '')
    for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        env[var] = str(threads or os.cpu_count() or 1)
    # spinning OpenMP threads starve each other on a busy machine
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    return env


class Pipeline:
    """Stages in folders of ``work_dir``, the project's tools run from
    ``repo``, their logs in ``{work_dir}/logs``; :attr:`timings` holds each
    stage's wall time under its folder's name without the step
    (``step1_classifier``: ``classifier``)."""

    def __init__(self, work_dir: str, repo: str) -> None:
        self.work_dir, self.repo = work_dir, repo
        self.logs = osp.join(work_dir, 'logs')
        self.timings: Dict[str, float] = {}
        os.makedirs(self.logs, exist_ok=True)

    def stage(self, folder: str, title: str, inputs: object,
              work: Callable[[str], dict]) -> dict:
        """:func:`run_stage` in ``{work_dir}/{folder}``, timed."""
        start = time.time()
        result = run_stage(
            osp.join(self.work_dir, folder), title, inputs, work)
        self.timings[folder.split('_', 1)[1]] = time.time() - start
        return result

    def tool(self,
             name: str,
             args: Sequence[str],
             bar: Optional[ProgressBar] = None) -> None:
        """:func:`run_tool` with its log in ``logs/{name}.log``."""
        run_tool(args, osp.join(self.logs, f'{name}.log'), self.repo,
                 tool_env(self.repo), bar)


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
