"""What every DAP command-line tool does the same way around the Runner.

``tools/train.py``, ``tools/test.py`` and ``tools/generate_pseudo_boxes.py``
share their options (``--work-dir``, ``--cfg-options``, ``--launcher``), the
work-dir default (``work_dirs/<config name>``) and how the Runner is built.
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction

from .dist import LAUNCHERS, apply_launcher_to_cfg


def add_runner_args(parser: argparse.ArgumentParser,
                    work_dir_help: str = 'where logs and checkpoints go'
                    ) -> None:
    """Add the options every Runner tool takes (work dir, overrides,
    launcher)."""
    parser.add_argument('--work-dir', help=work_dir_help)
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. optim_wrapper.optimizer.lr=0.01 '
        'train_dataloader.batch_size=4')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none')
    # torch.distributed.launch passes --local-rank (older: --local_rank)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(parser: argparse.ArgumentParser,
                      argv=None) -> argparse.Namespace:
    """Parse, and export ``LOCAL_RANK`` for launchers that only pass it."""
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def load_config(args: argparse.Namespace) -> Config:
    """``args.config`` with ``--cfg-options`` merged and the work dir set."""
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    return cfg


def build_runner(cfg: Config, launcher: str):
    """Initialise the launcher, then build the config's Runner."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    apply_launcher_to_cfg(cfg, launcher)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
