"""Train a DAP model (classifier, DAP pre-training or fine-tuning).

Every run goes through mmengine's ``Runner``; the config decides what is
trained (``default_scope`` mmpretrain or mmdet).  Examples::

    python tools/train.py configs/dap/dap_faster-rcnn_r50_fpn_1e_in1k.py
    bash tools/dist_train.sh CONFIG 8 --cfg-options train_cfg.max_iters=100
    mpirun -n 8 python tools/train.py CONFIG --launcher mpi
"""
import argparse
import logging

from mmengine.config import Config
from mmengine.logging import print_log

from projects.dap.dap.utils.cli import (add_runner_args, build_runner,
                                        load_config, parse_runner_args)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a DAP model')
    parser.add_argument('config', help='train config file path')
    add_runner_args(parser)
    parser.add_argument(
        '--amp', action='store_true', help='mixed precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the LR by the actual batch size over '
        'auto_scale_lr.base_batch_size')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or from the latest checkpoint in '
        'the work dir when no path is given')
    return parse_runner_args(parser, argv)


def build_cfg(args: argparse.Namespace) -> Config:
    cfg = load_config(args)
    if args.amp:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper == 'AmpOptimWrapper':
            print_log(
                'AMP is already enabled in the config.',
                logger='current',
                level=logging.WARNING)
        else:
            if wrapper != 'OptimWrapper':
                raise ValueError(f'--amp needs OptimWrapper, got {wrapper}')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        if not cfg.get('auto_scale_lr', {}).get('base_batch_size'):
            raise RuntimeError('--auto-scale-lr needs `auto_scale_lr` with '
                               '`base_batch_size` in the config')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = build_cfg(args)
    build_runner(cfg, args.launcher).train()


if __name__ == '__main__':
    main()
