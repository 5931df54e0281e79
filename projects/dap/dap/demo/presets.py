"""The demo configs each stage trains, as a preset (``configs/demo/
presets/``) has them.

The default preset trains every demo config as it stands.  A preset's
``train_length`` gives a stage another length: :func:`set_train_length`
writes it into that stage's config before the config is saved and trained,
so the saved file is what runs; ``fewshot_min_iters`` is the k-shot
templates' floor.
"""
import os.path as osp
from typing import Dict, Optional

from mmengine.config import Config

PRESET_DIR = osp.join('configs', 'demo', 'presets')
#: stage key -> the demo config it trains; a preset's ``train_length`` is
#: keyed by the first word (``finetune`` for the four step-4 configs)
CONFIGS = dict(
    classifier='configs/demo/resnet18-w32_mini-imagenet.py',
    cam='configs/demo/cam-boxes_resnet18-w32_mini-imagenet.py',
    dap='configs/demo/dap_faster-rcnn_r18-w32_fpn_mini-imagenet.py',
    finetune_dap='configs/demo/faster-rcnn_r18-w32_fpn_dap_mini-voc.py',
    finetune_cls='configs/demo/faster-rcnn_r18-w32_fpn_cls_mini-voc.py',
    finetune_dap_fewshot='configs/demo/'
    'faster-rcnn_r18-w32_fpn_dap_mini-voc-fewshot.py',
    finetune_cls_fewshot='configs/demo/'
    'faster-rcnn_r18-w32_fpn_cls_mini-voc-fewshot.py')


def load_preset(repo: str, name: str) -> Config:
    """``configs/demo/presets/{name}.py`` under ``repo``."""
    path = osp.join(repo, PRESET_DIR, f'{name}.py')
    if not osp.isfile(path):
        raise FileNotFoundError(f'no demo preset {path}')
    return Config.fromfile(path)


def _scaled(value, factor: float):
    if isinstance(value, (list, tuple)):
        return [_scaled(v, factor) for v in value]
    return max(1, round(value * factor)) if value > 0 else value


def set_train_length(cfg: Config, length: int) -> None:
    """Train ``length`` epochs (epoch loop) or iterations instead of the
    config's N, and keep what the config ties to N at the same fraction:
    ``val_interval`` and the checkpoint interval when they equal N, and the
    ``begin`` / ``end`` / ``T_max`` / ``milestones`` of the LR schedulers
    that count in the loop's unit (rounded, at least 1)."""
    loop = cfg.train_cfg
    by_epoch = 'max_epochs' in loop
    key = 'max_epochs' if by_epoch else 'max_iters'
    old = int(loop[key])
    if length < 1:
        raise ValueError(f'train length must be >= 1, got {length}')
    factor = length / old
    loop[key] = length
    if loop.get('val_interval') == old:
        loop['val_interval'] = length
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if checkpoint is not None and checkpoint.get('interval') == old:
        checkpoint['interval'] = length
    schedulers = cfg.get('param_scheduler') or []
    for sched in [schedulers] if isinstance(schedulers, dict) else schedulers:
        if sched.get('by_epoch', True) != by_epoch:
            continue
        for name in ('begin', 'end', 'T_max', 'milestones'):
            if name in sched:
                sched[name] = _scaled(sched[name], factor)


class DemoConfigs:
    """The stages' configs under ``preset``, each kept in :attr:`built`
    (the report reads its facts from them)."""

    def __init__(self, repo: str, preset: Config) -> None:
        self.repo, self.preset = repo, preset
        self.built: Dict[str, Config] = {}

    def build(self,
              key: str,
              data_root: str,
              options: Optional[dict] = None) -> Config:
        """Stage ``key``'s config with ``data_root`` as its data loaders'
        data root, ``options`` (input paths) merged in, and the preset's
        train length and k-shot floor for it, if it has them."""
        cfg = Config.fromfile(osp.join(self.repo, CONFIGS[key]))
        options = dict(options or {})
        for split in ('train', 'val', 'test'):
            if cfg.get(f'{split}_dataloader'):
                options[f'{split}_dataloader.dataset.data_root'] = data_root
        cfg.merge_from_dict(options)
        lengths = self.preset.get('train_length') or {}
        if key.split('_')[0] in lengths:
            set_train_length(cfg, lengths[key.split('_')[0]])
        min_iters = self.preset.get('fewshot_min_iters')
        if min_iters is not None and cfg.get('fewshot') is not None:
            cfg.fewshot.min_iters = min_iters
        self.built[key] = cfg
        return cfg
