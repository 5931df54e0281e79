"""Evaluate a checkpoint with the config's test loop (mmengine ``Runner``).

The options are those of mmdet 3.x's ``tools/test.py``::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out RESULTS.pkl]
        [--show] [--show-dir DIR] [--wait-time S] [--tta]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]
    bash tools/dist_test.sh CONFIG CHECKPOINT 8 [the same options]

* ``--out``: the predictions of every test image as a pickle, written by
  mmdet's ``DumpDetResults`` metric (mmpretrain configs: mmengine's
  ``DumpResults``), the file mmdet's ``analysis_tools/analyze_results.py``,
  ``eval_metric.py`` and ``confusion_matrix.py`` read;
* ``--show-dir``: images painted with the predictions (and ground truth) by
  the config's visualization hook, under ``{work_dir}/{timestamp}/DIR``;
  ``--show`` opens them in a window instead, ``--wait-time`` seconds each;
* ``--tta``: the config's ``tta_model`` wrapping its ``model``, fed by its
  ``tta_pipeline`` (the config must define both: what runs is what the
  dumped config says).

Everything is applied to the config before the Runner is built, so the
config the Runner dumps into the work dir is the one that ran.
"""
import argparse

from mmengine.config import Config, ConfigDict

from projects.dap.dap.utils.cli import (add_runner_args, build_runner,
                                        load_config, parse_runner_args)

TTA_EXAMPLE = """\
tta_model = dict(type='DetTTAModel',
                 tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5),
                              max_per_img=100))
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(1333, 800), keep_ratio=True)],
        [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
        [dict(type='PackDetInputs', meta_keys=(
            'img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
            'flip', 'flip_direction'))]])]"""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a DAP model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    add_runner_args(parser, work_dir_help='where logs and metrics go')
    parser.add_argument(
        '--out',
        help='dump the predictions to this pickle file (.pkl/.pickle) for '
        'offline analysis (mmdet analysis_tools)')
    parser.add_argument(
        '--show', action='store_true', help='show the painted predictions')
    parser.add_argument(
        '--show-dir',
        help='save the painted predictions under '
        '{work_dir}/{timestamp}/SHOW_DIR')
    parser.add_argument(
        '--wait-time',
        type=float,
        default=2,
        help='seconds each image is shown with --show')
    parser.add_argument(
        '--tta',
        action='store_true',
        help="test the config's tta_model over its tta_pipeline")
    args = parse_runner_args(parser, argv)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error(f'--out must be a .pkl or .pickle file, got {args.out}')
    return args


def _scope(cfg: Config) -> str:
    return cfg.get('default_scope', 'mmdet')


def enable_visualization(cfg: Config, show: bool, show_dir,
                         wait_time: float) -> None:
    """Switch the config's visualization hook on (mmdet's or mmpretrain's
    hook; they name their switches differently)."""
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise ValueError(
            '--show/--show-dir need a visualization hook in default_hooks, '
            "e.g. visualization=dict(type='DetVisualizationHook')")
    if _scope(cfg) == 'mmpretrain':
        hook.enable = True
        hook.show = show
        hook.wait_time = wait_time
        if show_dir:
            hook.out_dir = show_dir
    else:
        hook.draw = True
        if show:
            hook.show = True
            hook.wait_time = wait_time
        if show_dir:
            hook.test_out_dir = show_dir


def add_dump_metric(cfg: Config, out: str) -> None:
    """Append the metric that pickles every prediction to ``out``."""
    dump = dict(
        type='DumpResults'
        if _scope(cfg) == 'mmpretrain' else 'DumpDetResults',
        out_file_path=out)
    evaluator = cfg.test_evaluator
    if isinstance(evaluator, (list, tuple)):
        cfg.test_evaluator = list(evaluator) + [dump]
    elif 'metrics' in evaluator:  # an Evaluator config
        metrics = evaluator.metrics
        evaluator.metrics = (list(metrics) if isinstance(
            metrics, (list, tuple)) else [metrics]) + [dump]
    else:
        cfg.test_evaluator = [evaluator, dump]


def apply_tta(cfg: Config) -> None:
    """Wrap the model in ``tta_model`` and feed it ``tta_pipeline``."""
    missing = [k for k in ('tta_model', 'tta_pipeline') if k not in cfg]
    if missing:
        raise ValueError(
            f'--tta needs {" and ".join(missing)} in the config; e.g. '
            f'(flip test-time augmentation, as mmdet configs have it):\n'
            f'{TTA_EXAMPLE}')
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    data = cfg.test_dataloader.dataset
    while 'dataset' in data:  # wrappers (RepeatDataset, ...)
        data = data.dataset
    if data.get('batch_shapes_cfg') is not None:
        data.batch_shapes_cfg = None  # fixes the output size: not with TTA
    data.pipeline = cfg.tta_pipeline


def build_cfg(args: argparse.Namespace) -> Config:
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.show or args.show_dir:
        enable_visualization(cfg, args.show, args.show_dir, args.wait_time)
    if args.tta:
        apply_tta(cfg)
    if args.out is not None:
        add_dump_metric(cfg, args.out)
    return cfg


def main(argv=None) -> None:
    args = parse_args(argv)
    build_runner(build_cfg(args), args.launcher).test()


if __name__ == '__main__':
    main()
