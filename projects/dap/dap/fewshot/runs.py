"""The runs of a study: planning their configs and reading their state.

A run is one fine-tuning (init, setting, seed): ``setting`` is ``{k}shot``
or ``full``.  Its config is the init's config with the sweep's options, the
seed (``randomness.seed``) and, for k-shot, the split's schedule written in
(:func:`~.schedule.resolve_fewshot`).  Layout under the sweep's work dir::

    configs/{init}_{setting}_seed{seed}.py   the config the run trains
    {init}_{setting}_seed{seed}/             its mmengine work dir
        sweep_run.json                       digest of the planned config
        result.json                          the final metrics, once known

The state of a run is read from its work dir alone (so runs submitted to a
cluster are found finished by a later call): the final evaluation in
mmengine's metric log, else the last checkpoint (final: evaluate it;
earlier: resume from it), else nothing (start).
"""
import copy
import glob
import hashlib
import json
import math
import os
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config

from .schedule import FewShotSchedule, resolve_fewshot
from .splits import write_atomic

MARKER = 'sweep_run.json'
RESULT = 'result.json'


@dataclass
class InitSpec:
    """One initialisation under comparison (``dap`` or ``cls``)."""

    name: str
    fewshot_config: Optional[str]
    full_config: Optional[str] = None
    #: cfg options for every run of this init (e.g. its checkpoint)
    options: Dict[str, object] = field(default_factory=dict)


@dataclass
class Run:
    init: str
    setting: str
    seed: int
    shot: Optional[int]
    cfg: Config
    config_file: str
    work_dir: str
    digest: str
    schedule: Optional[FewShotSchedule]
    by_epoch: bool
    final_step: int
    metric_keys: Tuple[str, Optional[str]]  # AP50, AP (None: not measured)

    @property
    def name(self) -> str:
        return run_name(self.init, self.setting, self.seed)

    @property
    def final_checkpoint(self) -> str:
        prefix = 'epoch' if self.by_epoch else 'iter'
        return osp.join(self.work_dir, f'{prefix}_{self.final_step}.pth')


@dataclass
class Status:
    #: 'finished', 'evaluate' (final checkpoint, no metrics), 'resume',
    #: 'new' or 'changed' (the work dir holds another config's run)
    state: str
    checkpoint: Optional[str] = None
    result: Optional[dict] = None


def run_name(init: str, setting: str, seed: int) -> str:
    return f'{init}_{setting}_seed{seed}'


_FILE_HASHES: Dict[Tuple[str, int, int], str] = {}


def file_digest(path: str) -> str:
    """sha256 of a file (memoised by path, size and mtime)."""
    try:
        stat = os.stat(path)
    except OSError:
        return f'missing:{path}'
    key = (osp.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        digest = hashlib.sha256()
        with open(path, 'rb') as f:
            for block in iter(lambda: f.read(1 << 22), b''):
                digest.update(block)
        _FILE_HASHES[key] = digest.hexdigest()
    return _FILE_HASHES[key]


def input_weights(cfg) -> List[str]:
    """The weight files a run starts from (DAP detector, classifier)."""
    paths = [cfg.get('load_from')]
    init_cfg = cfg.model.get('backbone', {}).get('init_cfg') or {}
    if isinstance(init_cfg, dict):
        paths.append(init_cfg.get('checkpoint'))
    return [p for p in paths if p and '://' not in p]


def config_digest(cfg: Config) -> str:
    """Identity of a run: its config and the content of the weights it
    starts from (a re-made checkpoint at the same path is another run)."""
    payload = json.dumps(
        dict(
            cfg=cfg.to_dict(),
            weights=[file_digest(p) for p in input_weights(cfg)]),
        sort_keys=True,
        default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def metric_keys(cfg) -> Tuple[str, Optional[str]]:
    """The AP50 and AP keys the config's evaluator logs.

    VOC's ``pascal_voc/mAP`` is the mean over the evaluator's IoU
    thresholds: AP only when they are more than 0.5 alone.
    """
    evaluator = cfg.get('val_evaluator')
    kind = evaluator.get('type', '') if isinstance(evaluator, dict) else ''
    if kind.endswith('VOCMetric'):
        thrs = evaluator.get('iou_thrs', 0.5)
        many = isinstance(thrs, (list, tuple)) and len(thrs) > 1
        return 'pascal_voc/AP50', 'pascal_voc/mAP' if many else None
    if kind.endswith('CocoMetric'):
        return 'coco/bbox_mAP_50', 'coco/bbox_mAP'
    raise ValueError(f'val_evaluator {evaluator!r}: the sweep reads AP50 and '
                     'AP of one VOCMetric or CocoMetric')


class ConfigCache:
    """Each config file parsed once (mmdet bases make parsing slow)."""

    def __init__(self) -> None:
        self._parsed: Dict[str, Config] = {}

    def load(self, path: str, options: Dict[str, object]) -> Config:
        path = osp.abspath(path)
        if path not in self._parsed:
            if not osp.isfile(path):
                raise FileNotFoundError(f'config {path} not found')
            self._parsed[path] = Config.fromfile(path)
        base = self._parsed[path]
        cfg = Config(copy.deepcopy(base.to_dict()), filename=base.filename)
        if options:
            cfg.merge_from_dict(copy.deepcopy(dict(options)))
        return cfg


def plan_run(cache: ConfigCache, init: InitSpec, setting: str, seed: int,
             sweep_dir: str, options: Dict[str, object]) -> Run:
    """The config of one run, with its schedule and where it goes."""
    name = run_name(init.name, setting, seed)
    work_dir = osp.join(sweep_dir, name)
    merged = dict(options)
    merged.update(init.options)
    merged['randomness.seed'] = int(seed)
    if setting == 'full':
        # fewshot.* options are for the templates (min_iters, ...)
        merged = {
            k: v
            for k, v in merged.items() if not k.startswith('fewshot.')
        }
        if not init.full_config:
            raise ValueError(f'no full-data config for init {init.name}')
        cfg = cache.load(init.full_config, merged)
        if cfg.get('fewshot') is not None:
            raise ValueError(f'{init.full_config} is a few-shot template, '
                             'not a full-data config')
        schedule = None
        shot = None
    else:
        shot = int(setting[:-len('shot')])
        template = cache.load(init.fewshot_config, merged)
        cfg, schedule = resolve_fewshot(template, shot, seed)
    cfg.work_dir = work_dir
    loop = cfg.train_cfg
    by_epoch = 'max_epochs' in loop
    final_step = int(loop['max_epochs'] if by_epoch else loop['max_iters'])
    if cfg.get('default_hooks', {}).get('logger') is not None:
        # final metrics are logged with step = epoch or iteration
        cfg.default_hooks.logger.log_metric_by_epoch = by_epoch
    return Run(
        init=init.name,
        setting=setting,
        seed=int(seed),
        shot=shot,
        cfg=cfg,
        config_file=osp.join(sweep_dir, 'configs', f'{name}.py'),
        work_dir=work_dir,
        digest=config_digest(cfg),
        schedule=schedule,
        by_epoch=by_epoch,
        final_step=final_step,
        metric_keys=metric_keys(cfg))


def plan_runs(inits: Sequence[InitSpec],
              shots: Sequence[int],
              seeds: Sequence[int],
              full: bool,
              sweep_dir: str,
              options: Optional[Dict[str, object]] = None,
              cache: Optional[ConfigCache] = None) -> List[Run]:
    """Every (init, setting, seed), settings in order, inits interleaved
    (DAP and CLS of a seed run next to each other)."""
    cache = cache or ConfigCache()
    settings = [f'{int(k)}shot' for k in shots] + (['full'] if full else [])
    return [
        plan_run(cache, init, setting, seed, sweep_dir, options or {})
        for setting in settings for seed in seeds for init in inits
    ]


def missing_inputs(run: Run) -> List[str]:
    """The weights a new run would load but which do not exist."""
    return [
        f'{run.init}: {path} (the weights its config starts from) not '
        'found' for path in input_weights(run.cfg) if not osp.isfile(path)
    ]


def write_run_config(run: Run) -> None:
    """The run's config file (rewritten only when its text changes).

    Not passed through yapf (a second per config on a busy CPU; the text
    loads back to the same config), the Runner dumps a formatted copy.
    """
    text = Config(
        run.cfg.to_dict(), filename=run.cfg.filename,
        format_python_code=False).pretty_text
    try:
        with open(run.config_file) as f:
            if f.read() == text:
                return
    except OSError:
        pass
    write_atomic(run.config_file, text)


def write_marker(run: Run) -> None:
    write_atomic(
        osp.join(run.work_dir, MARKER),
        json.dumps(
            dict(
                name=run.name, digest=run.digest, config_file=run.config_file),
            indent=1))


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _records(path: str):
    """The dict lines of an mmengine json log (other lines skipped)."""
    try:
        with open(path) as f:
            lines = f.readlines()
    except OSError:
        return
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record


def final_metrics(run: Run) -> Optional[dict]:
    """The metrics of the run's final evaluation, from its logs.

    The training's evaluation at the final step (``vis_data/scalars.json``,
    step = final epoch / iteration), else a ``tools/test.py`` evaluation
    of the final checkpoint in the work dir (``{timestamp}/{timestamp}.json``
    when the final checkpoint exists).  The newest run of mmengine wins.
    """
    key = run.metric_keys[0]
    found = None
    for stamp in sorted(glob.glob(osp.join(run.work_dir, '*', ''))):
        stamp = stamp.rstrip(os.sep)
        for record in _records(osp.join(stamp, 'vis_data', 'scalars.json')):
            if key in record and record.get('step') == run.final_step:
                found = record
        if osp.isfile(run.final_checkpoint):
            test_log = osp.join(stamp, osp.basename(stamp) + '.json')
            for record in _records(test_log):
                if key in record and 'step' not in record:
                    found = record
    return found


def last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint mmengine's ``last_checkpoint`` file names (written
    after the checkpoint is complete), if it exists."""
    try:
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            path = f.read().strip()
    except OSError:
        return None
    if path and not osp.isabs(path):
        path = osp.join(work_dir, path)
    return path if path and osp.isfile(path) else None


def make_result(run: Run, metrics: dict) -> dict:
    """The run's row: AP50 and AP in %, and what it trained."""
    ap50_key, ap_key = run.metric_keys
    ap = 100 * float(metrics[ap_key]) if ap_key and ap_key in metrics \
        else math.nan
    return dict(
        init=run.init,
        setting=run.setting,
        shot=run.shot,
        seed=run.seed,
        AP50=100 * float(metrics[ap50_key]),
        AP=ap,
        max_iters=run.schedule.max_iters if run.schedule else None,
        num_images=run.schedule.num_images if run.schedule else None,
        max_epochs=run.final_step if run.by_epoch else None,
        work_dir=run.work_dir,
        digest=run.digest)


def record_result(run: Run, metrics: dict) -> dict:
    result = make_result(run, metrics)
    write_atomic(osp.join(run.work_dir, RESULT), json.dumps(result, indent=1))
    return result


def run_status(run: Run) -> Status:
    """Where the run stands, from its work dir."""
    if not osp.isdir(run.work_dir):
        return Status('new')
    marker = _read_json(osp.join(run.work_dir, MARKER))
    if marker is not None and marker.get('digest') != run.digest:
        return Status('changed')
    result = _read_json(osp.join(run.work_dir, RESULT))
    if result is not None and result.get('digest') == run.digest:
        return Status('finished', result=result)
    metrics = final_metrics(run)
    if metrics is not None:
        return Status('finished', result=record_result(run, metrics))
    ckpt = last_checkpoint(run.work_dir)
    if ckpt is None:
        return Status('new')
    if osp.abspath(ckpt) == osp.abspath(run.final_checkpoint):
        return Status('evaluate', checkpoint=ckpt)
    return Status('resume', checkpoint=ckpt)


def remove_checkpoints(run: Run) -> None:
    """Free the disk once the metrics are recorded (the demo's choice)."""
    for path in glob.glob(osp.join(run.work_dir, '*.pth')):
        os.remove(path)
    if osp.isfile(osp.join(run.work_dir, 'last_checkpoint')):
        os.remove(osp.join(run.work_dir, 'last_checkpoint'))


_STEP = re.compile(r'(?:iter|epoch)_(\d+)\.pth$')


def checkpoint_step(path: str) -> Optional[int]:
    match = _STEP.search(path or '')
    return int(match.group(1)) if match else None
