"""Generate DAP pseudo boxes (step 2) from an ImageNet classifier.

An mmengine ``Runner.test`` run over an mmpretrain dataset: every rank
writes shards under the work dir as it goes, rank 0 merges them into the
box file at the end.  A rerun resumes (finished images are skipped); a
rerun with another generation config, checkpoint or image list is refused.
Examples::

    python tools/generate_pseudo_boxes.py \\
        configs/cam_boxes/cam-boxes_resnet101_8xb32_in1k.py \\
        --checkpoint work_dirs/classifier/in1k_r101.pth
    bash tools/dist_generate_pseudo_boxes.sh CONFIG 8 --checkpoint CKPT
    mpirun -n 64 python tools/generate_pseudo_boxes.py CONFIG \\
        --checkpoint CKPT --launcher mpi
    GPUS=64 bash tools/slurm_generate_pseudo_boxes.sh PARTITION JOB CONFIG \\
        WORK_DIR --checkpoint CKPT

All ranks must see the same work dir and output folder (checked at the
start: the run stops before any image if they do not).
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config
from mmengine.logging import print_log

from projects.dap.dap.utils.cli import (add_runner_args, build_runner,
                                        load_config, parse_runner_args)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate DAP CAM pseudo boxes')
    parser.add_argument('config', help='cam_boxes config file')
    parser.add_argument(
        '--checkpoint',
        help='mmpretrain classifier checkpoint (default: model.checkpoint '
        'of the config)')
    add_runner_args(
        parser, work_dir_help='logs and shards go here (keep it to resume)')
    parser.add_argument(
        '--out',
        help='box file to write (a .dapbox directory); default: the '
        'CAMBoxHook out_file of the config, else '
        '{work_dir}/pseudo_boxes.dapbox')
    return parse_runner_args(parser, argv)


def _box_hook(cfg: Config) -> dict:
    hooks = cfg.get('custom_hooks') or []
    found = [
        h for h in hooks if h.get('type') in ('CAMBoxHook', 'dap.CAMBoxHook')
    ]
    if not found:
        hooks.append(dict(type='CAMBoxHook'))
        cfg.custom_hooks = hooks
        return hooks[-1]
    return found[0]


def build_cfg(args: argparse.Namespace) -> Config:
    cfg = load_config(args)
    if cfg.model.get('type') not in ('CAMBoxGenerator', 'dap.CAMBoxGenerator'):
        raise SystemExit(f'{args.config}: model.type must be CAMBoxGenerator '
                         f'(a configs/cam_boxes config), got '
                         f'{cfg.model.get("type")!r}')
    if args.checkpoint is not None:
        cfg.model.checkpoint = args.checkpoint
    if not cfg.model.get('checkpoint'):
        raise SystemExit('no classifier weights: pass --checkpoint CKPT '
                         '(boxes from a random classifier mean nothing)')
    # The classifier is loaded by the model (weights_only); the Runner must
    # not load anything else on top of it.
    cfg.load_from = None
    cfg.resume = False
    hook = _box_hook(cfg)
    if args.out is not None:
        hook['out_file'] = osp.abspath(args.out)
    return cfg


def main(argv=None) -> int:
    from projects.dap.dap.datasets import ImageListError
    from projects.dap.dap.datasets.box_file import BoxFileError
    from projects.dap.dap.engine.hooks import CAMBoxRunError
    from projects.dap.dap.models import CAMBoxConfigError

    args = parse_args(argv)
    cfg = build_cfg(args)
    try:
        build_runner(cfg, args.launcher).test()
    except (BoxFileError, CAMBoxRunError, CAMBoxConfigError,
            ImageListError) as e:
        # Inputs that do not fit: a clear message, nothing computed or lost.
        print_log(f'{type(e).__name__}: {e}', logger='current', level=40)
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
