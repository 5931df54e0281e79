"""The demo's presets (``configs/demo/presets/``) and what they change.

The default preset trains every demo config as it stands.  A preset's
``train_length`` gives a stage another length: :func:`set_train_length`
writes it into that stage's config before the config is saved and trained,
so the saved file is what runs.
"""
import os.path as osp

from mmengine.config import Config

PRESET_DIR = osp.join('configs', 'demo', 'presets')


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
