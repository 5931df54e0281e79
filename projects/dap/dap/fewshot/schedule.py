"""The k-shot fine-tuning schedule of one split, written into its config.

A few-shot config (``configs/finetune/*_fewshot_*.py``) is a template:
the full-data config plus a ``fewshot`` block (``min_iters``,
``checkpoint_interval``, ``max_keep_ckpts``).  For a split (k, seed)
:func:`resolve_fewshot` returns a *new* config that trains on the split
with a schedule scaled to the split's size; ``tools/fewshot_sweep.py``
writes that config to a file and trains it, so the config mmengine dumps
into the work dir is the schedule that ran.  Nothing rewrites a config at
run time: the runner refuses a template that was not resolved
(:func:`check_resolved`).

The rule: the template's epoch schedule (E epochs, LR steps at epochs m_i,
reference batch B = ``auto_scale_lr.base_batch_size``) becomes

    max_iters = max(min_iters, ceil(E * N / B)),  LR steps at m_i / E,

N = images in the split, same LR; evaluation (and the last checkpoint) at
``max_iters``.  So each image is seen about as often as in the full
schedule, with a floor because a 5-shot split would otherwise train for a
few dozen iterations.
"""
import copy
import json
import math
import os.path as osp
from dataclasses import asdict, dataclass
from typing import List, Optional, Tuple

from mmengine.config import Config

from .splits import split_file

#: keys of a resolved ``fewshot`` block besides the template's
RESOLVED_KEYS = ('shot', 'seed', 'source', 'split', 'num_images', 'max_iters')


@dataclass(frozen=True)
class FewShotSchedule:
    """The numbers of one split's schedule (all derived, nothing chosen)."""

    shot: int
    seed: int
    source: str  # the full-data ann_file the split was drawn from
    split: str  # the split's ann_file (as the dataset sees it)
    path: str  # the split file on disk
    num_images: int
    epochs: int
    batch: int
    min_iters: int
    max_iters: int
    milestones: List[List[int]]
    checkpoint_interval: int

    def describe(self) -> str:
        return (f'k={self.shot}, seed={self.seed}: {self.num_images} images '
                f'({self.path}); {self.max_iters} iterations = max('
                f'{self.min_iters}, ceil({self.epochs} epochs x '
                f'{self.num_images} / batch {self.batch})), LR steps at '
                f'{self.milestones}, evaluation at {self.max_iters}')

    def to_dict(self) -> dict:
        return asdict(self)


def train_dataset(cfg) -> dict:
    """The train set's dict, through wrappers (RepeatDataset, ...)."""
    dataset = cfg['train_dataloader']['dataset']
    while 'ann_file' not in dataset and 'dataset' in dataset:
        dataset = dataset['dataset']
    if 'ann_file' not in dataset:
        raise ValueError('fewshot: the train dataset must be one dataset '
                         'with an `ann_file` (no ConcatDataset)')
    return dataset


def _on_disk(dataset: dict, ann_file: str) -> str:
    if osp.isabs(ann_file) or not dataset.get('data_root'):
        return ann_file
    return osp.join(dataset['data_root'], ann_file)


def split_source(cfg) -> Tuple[str, str]:
    """(source ann_file, its path on disk) of a few-shot template."""
    dataset = train_dataset(cfg)
    source = (cfg.get('fewshot') or {}).get('source') or dataset['ann_file']
    return source, _on_disk(dataset, source)


def count_split_images(path: str) -> int:
    """Images in a VOC ImageSets list (.txt) or a COCO json."""
    if path.endswith('.json'):
        with open(path) as f:
            return len(json.load(f)['images'])
    with open(path) as f:
        return sum(1 for line in f if line.strip())


def _scale(value, epochs: int, iters: int):
    if isinstance(value, (list, tuple)):
        return [_scale(v, epochs, iters) for v in value]
    return int(round(value * iters / epochs))


def compute_schedule(cfg, shot: int, seed: int) -> FewShotSchedule:
    """The schedule of split (``shot``, ``seed``) of template ``cfg``.

    Reads only the split file (to count its images); ``cfg`` is not
    changed.  A missing split is a ``FileNotFoundError`` that says how to
    make it.
    """
    few = cfg.get('fewshot')
    if few is None:
        raise ValueError('not a few-shot config: it has no `fewshot` block')
    dataset = train_dataset(cfg)
    source, _ = split_source(cfg)
    split = split_file(source, shot, seed, few.get('split_dir'))
    path = _on_disk(dataset, split)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'few-shot split {path} (k={shot}, seed={seed}) not found; '
            'tools/fewshot_sweep.py makes it (or tools/dataset_converters/'
            'make_fewshot_splits.py)')
    num_images = count_split_images(path)
    train_cfg = cfg['train_cfg']
    if 'max_epochs' not in train_cfg:
        raise ValueError('fewshot: the template schedule must be '
                         'epoch-based (train_cfg.max_epochs)')
    epochs = int(train_cfg['max_epochs'])
    batch = int((cfg.get('auto_scale_lr') or {}).get('base_batch_size', 16))
    min_iters = int(few.get('min_iters') or 0)
    iters = max(min_iters, math.ceil(epochs * num_images / batch))
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    milestones = [
        _scale(s['milestones'], epochs, iters) for s in schedulers
        if s.get('by_epoch', True) and 'milestones' in s
    ]
    interval = int(few.get('checkpoint_interval') or iters)
    return FewShotSchedule(
        shot=int(shot),
        seed=int(seed),
        source=source,
        split=split,
        path=path,
        num_images=num_images,
        epochs=epochs,
        batch=batch,
        min_iters=min_iters,
        max_iters=iters,
        milestones=milestones,
        checkpoint_interval=min(interval, iters))


def apply_schedule(cfg, schedule: FewShotSchedule) -> Config:
    """A copy of template ``cfg`` that trains ``schedule``.

    Train set -> the split; ``IterBasedTrainLoop`` of ``max_iters`` with
    evaluation at the end; epoch-based LR schedulers -> iterations at the
    same fractions; an ``InfiniteSampler`` (over a finite sampler mmengine
    restarts the dataloader and sleeps 2 s after every pass of a small
    split); checkpoints and metric logs by iteration.  The resolved
    ``fewshot`` block records the split and its numbers.
    """
    cfg = Config(copy.deepcopy(cfg.to_dict()), filename=cfg.filename)
    epochs, iters = schedule.epochs, schedule.max_iters
    train_dataset(cfg)['ann_file'] = schedule.split
    cfg.train_cfg = dict(
        type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)
    sampler = cfg.train_dataloader.get('sampler') or {}
    if sampler.get('type', 'DefaultSampler') in ('DefaultSampler',
                                                 'mmengine.DefaultSampler'):
        cfg.train_dataloader.sampler = dict(
            type='InfiniteSampler', shuffle=sampler.get('shuffle', True))
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for sched in schedulers:
        if not sched.get('by_epoch', True):
            if 'end' in sched:
                sched['end'] = min(sched['end'], iters)
            continue
        for key in ('milestones', 'begin', 'end', 'T_max', 'step_size'):
            if key in sched:
                sched[key] = _scale(sched[key], epochs, iters)
        sched['by_epoch'] = False
        sched.pop('convert_to_iter_based', None)
    cfg.param_scheduler = schedulers
    hooks = cfg.setdefault('default_hooks', {})
    if hooks.get('checkpoint') is not None:
        hooks['checkpoint'].update(
            by_epoch=False, interval=schedule.checkpoint_interval)
        if cfg.fewshot.get('max_keep_ckpts'):
            hooks['checkpoint']['max_keep_ckpts'] = int(
                cfg.fewshot.max_keep_ckpts)
    if hooks.get('logger') is not None:
        # the final metrics are logged with step = iteration
        hooks['logger']['log_metric_by_epoch'] = False
    log_processor = cfg.get('log_processor') or dict(type='LogProcessor')
    log_processor['by_epoch'] = False
    cfg.log_processor = log_processor
    cfg.fewshot.update({k: getattr(schedule, k) for k in RESOLVED_KEYS})
    return cfg


def resolve_fewshot(cfg, shot: int,
                    seed: int) -> Tuple[Config, FewShotSchedule]:
    """:func:`compute_schedule` then :func:`apply_schedule`."""
    schedule = compute_schedule(cfg, shot, seed)
    return apply_schedule(cfg, schedule), schedule


def check_resolved(cfg) -> Optional[str]:
    """Why ``cfg`` cannot be trained as it is (None when it can)."""
    few = cfg.get('fewshot')
    if few is None or few.get('max_iters') is not None:
        return None
    return ('this is a few-shot template: its split and schedule are '
            'computed per (k, seed) and written into a run config by '
            'tools/fewshot_sweep.py (one run: --shots K --seeds S); see '
            'projects/dap/README.md, step 4')
