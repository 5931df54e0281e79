"""How a run is started: its command line and a local pool of processes.

Launchers: ``train`` runs ``python tools/train.py`` (one process per run,
``jobs`` at a time; CPU or one GPU), ``dist`` runs ``tools/dist_train.sh``
on ``gpus`` local GPUs, ``slurm`` runs ``tools/slurm_train.sh`` (srun,
``jobs`` submitted at a time).  Any of them can be printed instead of run.
A run with an earlier checkpoint resumes from it (``--resume PATH``: an
explicit path, because ``--resume`` alone with no checkpoint would start
from nothing instead of the pre-trained weights); a run whose final
checkpoint has no metrics yet is evaluated by ``tools/test.py``.
"""
import os
import os.path as osp
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .runs import Run, Status

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))))
LAUNCHERS = ('train', 'dist', 'slurm')


def _tool(name: str) -> str:
    return osp.join(REPO, 'tools', name)


def command(run: Run,
            status: Status,
            launcher: str = 'train',
            gpus: int = 8,
            partition: Optional[str] = None) -> List[str]:
    """The command that trains (or resumes, or evaluates) ``run``."""
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher must be one of {LAUNCHERS}')
    cfg, work = run.config_file, run.work_dir
    if status.state == 'evaluate':
        ckpt = status.checkpoint
        if launcher == 'train':
            return [
                sys.executable,
                _tool('test.py'), cfg, ckpt, '--work-dir', work
            ]
        if launcher == 'dist':
            return [
                'bash',
                _tool('dist_test.sh'), cfg, ckpt,
                str(gpus), '--work-dir', work
            ]
        return [
            'srun', '-p',
            _partition(partition), f'--job-name={run.name}', '--ntasks=1',
            '--gres=gpu:1', 'python', '-u',
            _tool('test.py'), cfg, ckpt, '--work-dir', work, '--launcher',
            'slurm'
        ]
    extra = ['--resume', status.checkpoint] if status.state == 'resume' \
        else []
    if launcher == 'train':
        return [sys.executable,
                _tool('train.py'), cfg, '--work-dir', work] + extra
    if launcher == 'dist':
        return [
            'bash',
            _tool('dist_train.sh'), cfg,
            str(gpus), '--work-dir', work
        ] + extra
    return [
        'bash',
        _tool('slurm_train.sh'),
        _partition(partition), run.name, cfg, work
    ] + extra


def _partition(partition: Optional[str]) -> str:
    if not partition:
        raise ValueError('the slurm launcher needs a partition')
    return partition


def shell_line(cmd: Sequence[str]) -> str:
    """The command as one shell line, paths relative to the current
    directory where that is shorter."""

    def short(arg: str) -> str:
        if osp.isabs(arg):
            rel = osp.relpath(arg)
            return rel if not rel.startswith('..') else arg
        return arg

    args = list(cmd)
    if args and args[0] == sys.executable:
        args[0] = 'python'
    return ' '.join(shlex.quote(short(a)) for a in args)


Job = Tuple[Run, Status, List[str]]


def run_jobs(jobs: Sequence[Job],
             workers: int,
             log_dir: str,
             env: Optional[Dict[str, str]] = None,
             on_done: Optional[Callable[[Job, Optional[str], float],
                                        None]] = None) -> None:
    """Run ``jobs`` ``workers`` at a time; each one's output is appended to
    ``{log_dir}/{run}.log``.  ``on_done(job, error, seconds)`` is called in
    the calling thread's order of completion (error: None or the log's
    tail)."""
    os.makedirs(log_dir, exist_ok=True)

    def work(job: Job) -> Tuple[Optional[str], float]:
        run, status, cmd = job
        log_file = osp.join(log_dir, f'{run.name}.log')
        start = time.time()
        with open(log_file, 'a') as log:
            log.write(f'\n$ {shell_line(cmd)}\n')
            log.flush()
            code = subprocess.call(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        if code == 0:
            return None, time.time() - start
        with open(log_file) as f:
            tail = ''.join(f.readlines()[-30:])
        return (f'{shell_line(cmd)} exited with {code} (log: {log_file}):\n'
                f'{tail}'), time.time() - start

    with ThreadPoolExecutor(max(1, int(workers))) as pool:
        futures = {pool.submit(work, job): job for job in jobs}
        for future in as_completed(futures):
            error, seconds = future.result()
            if on_done is not None:
                on_done(futures[future], error, seconds)
