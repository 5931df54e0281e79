"""The low-data transfer study: k-shot x seeds x {DAP, CLS}, end to end.

:func:`run_sweep` makes the missing k-shot splits, plans every run
(:mod:`.runs`), skips finished runs, resumes interrupted ones, runs or
prints the rest (:mod:`.launch`), and writes the report (:mod:`.report`)
from the runs' own metric logs.  ``tools/fewshot_sweep.py`` and the demo's
step 4 (``tools/run_dap_demo.py``) are thin callers of it.
"""
import logging
import os
import os.path as osp
import shutil
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from mmengine.logging import MMLogger

from . import report as report_lib
from .launch import command, run_jobs, shell_line
from .runs import (ConfigCache, InitSpec, Run, Status, final_metrics,
                   missing_inputs, plan_runs, record_result,
                   remove_checkpoints, run_status, write_marker,
                   write_run_config)
from .schedule import split_source
from .splits import VOC_CLASSES, make_missing_splits


@dataclass
class SweepSpec:
    work_dir: str
    inits: List[InitSpec]
    shots: Sequence[int]
    seeds: Sequence[int]
    full: bool = False
    #: cfg options for every run (data roots, ...)
    options: Dict[str, object] = field(default_factory=dict)
    launcher: str = 'train'
    gpus: int = 8
    partition: Optional[str] = None
    jobs: int = 1
    env: Optional[Dict[str, str]] = None
    #: print the commands of unfinished runs instead of running them
    dry_run: bool = False
    #: a work dir holding another config's run: 'error' or 'restart'
    on_change: str = 'error'
    keep_checkpoints: bool = True
    title: str = 'Low-data transfer: DAP vs CLS initialisation'
    description: str = ''
    ylabel: str = 'AP50 (%)'
    #: the metric plotted against k (the paper: AP50 on VOC, AP on COCO)
    plot_metric: str = 'AP50'
    full_label: str = 'full data'
    #: log to ``{work_dir}/sweep.log`` only (the caller shows progress)
    quiet: bool = False


@dataclass
class SweepOutcome:
    runs: List[Run]
    results: List[dict]
    missing: List[str]
    failed: List[str]
    report: Dict[str, str]
    commands: List[str]
    counts: Dict[str, int]


class SweepError(RuntimeError):
    pass


def make_splits_for(spec: SweepSpec, cache: ConfigCache,
                    logger: MMLogger) -> None:
    """The k-shot splits the few-shot templates need, made once."""
    if not spec.shots:
        return
    done = set()
    for init in spec.inits:
        options = dict(spec.options)
        options.update(init.options)
        template = cache.load(init.fewshot_config, options)
        _, source = split_source(template)
        if source in done:
            continue
        done.add(source)
        dataset = template.train_dataloader.dataset
        classes = None
        if source.endswith('.txt'):
            classes = (dataset.get('metainfo') or {}).get('classes') or \
                VOC_CLASSES
        reports = make_missing_splits(source, spec.shots, spec.seeds, classes,
                                      (template.get('fewshot')
                                       or {}).get('split_dir'))
        for rep in reports:
            logger.info(f'made split {rep["file"]} (k={rep["shot"]}, seed='
                        f'{rep["seed"]}): {rep["text"]}')


def run_sweep(spec: SweepSpec,
              progress: Optional[Callable[[int, int, str],
                                          None]] = None) -> SweepOutcome:
    """Plan, run what is not finished, report.  ``progress(done, total,
    note)`` is called as runs finish (and once at the start)."""
    work_dir = osp.abspath(spec.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    logger = MMLogger.get_instance(
        f'fewshot_sweep_{time.time_ns()}',
        log_file=osp.join(work_dir, 'sweep.log'),
        file_mode='a')
    if spec.quiet:
        for handler in logger.handlers:
            if not isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.WARNING)
    cache = ConfigCache()
    make_splits_for(spec, cache, logger)
    runs = plan_runs(spec.inits, spec.shots, spec.seeds, spec.full, work_dir,
                     spec.options, cache)
    statuses = {run.name: run_status(run) for run in runs}

    changed = [r for r in runs if statuses[r.name].state == 'changed']
    if changed and spec.on_change != 'restart':
        raise SweepError(
            f'{len(changed)} work dirs hold runs of another config (other '
            'checkpoint, options or split?): ' +
            ', '.join(r.work_dir for r in changed[:5]) +
            '. Use another work dir, or restart them (tools/'
            'fewshot_sweep.py --restart-changed).')
    for run in changed:
        logger.info(f'{run.name}: config changed, starting it again')
        shutil.rmtree(run.work_dir)
        statuses[run.name] = Status('new')

    results: Dict[str, dict] = {}
    for run in runs:
        status = statuses[run.name]
        if status.state == 'finished':
            results[run.name] = status.result
            if not spec.keep_checkpoints:
                remove_checkpoints(run)
    todo = [r for r in runs if r.name not in results]
    counts = {
        state: sum(s.state == state for s in statuses.values())
        for state in ('finished', 'resume', 'evaluate', 'new')
    }
    counts['changed'] = len(changed)
    logger.info(
        f'{len(runs)} runs in {work_dir}: {counts["finished"]} finished '
        f'(skipped), {counts["resume"]} to resume, {counts["evaluate"]} '
        f'to evaluate, {counts["new"]} to start')
    for run in runs:
        if run.schedule is not None and run.name not in results:
            logger.info(f'{run.name}: {run.schedule.describe()}')

    jobs = []
    for run in todo:
        status = statuses[run.name]
        write_run_config(run)
        if status.state in ('resume', 'evaluate'):
            logger.info(f'{run.name}: {status.state} from '
                        f'{status.checkpoint}')
        jobs.append((run, status,
                     command(run, status, spec.launcher, spec.gpus,
                             spec.partition)))
    commands = [shell_line(cmd) for _, _, cmd in jobs]
    failed: List[str] = []
    for run, _, _ in jobs:
        os.makedirs(run.work_dir, exist_ok=True)
        write_marker(run)
    if spec.dry_run:
        logger.info(f'--print: {len(commands)} unfinished runs not started')
    elif jobs:
        problems = [
            p for run, status, _ in jobs if status.state == 'new'
            for p in missing_inputs(run)
        ]
        if problems:
            raise SweepError('; '.join(sorted(set(problems))))
        total = len(runs)
        done = [len(results)]
        if progress:
            progress(done[0], total, '')

        def finished(job, error, seconds):
            run, status, _ = job
            done[0] += 1
            if error is None:
                metrics = final_metrics(run)
                if metrics is None:
                    error = (f'{run.name}: the run ended without its final '
                             f'evaluation in {run.work_dir}')
            if error is not None:
                failed.append(error)
                note = f'{run.name} FAILED'
                logger.error(error)
            else:
                results[run.name] = record_result(run, metrics)
                if not spec.keep_checkpoints:
                    remove_checkpoints(run)
                note = (f'{run.name}: AP50 {results[run.name]["AP50"]:.1f} '
                        f'({status.state}, {seconds:.0f}s)')
                logger.info(f'[{done[0]}/{total}] {note}')
            if progress:
                progress(done[0], total, note)

        run_jobs(jobs, spec.jobs, osp.join(work_dir, 'logs'), spec.env,
                 finished)

    ordered = [results[r.name] for r in runs if r.name in results]
    missing = [r.name for r in runs if r.name not in results]
    paths = report_lib.write_report(
        report_lib.group_results(ordered), ordered, work_dir, spec.title,
        spec.description, spec.ylabel, spec.full_label, missing,
        spec.plot_metric)
    logger.info(f'report: {paths["markdown"]} ({len(ordered)} of '
                f'{len(runs)} runs)')
    return SweepOutcome(
        runs=runs,
        results=ordered,
        missing=missing,
        failed=failed,
        report=paths,
        commands=commands,
        counts=counts)
