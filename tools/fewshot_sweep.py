"""The low-data transfer study: k-shot x seeds x {DAP, CLS}, run and reported.

::

    python tools/fewshot_sweep.py {voc07,coco} \\
        --dap-checkpoint work_dirs/dap_r50_in1k/iter_20019.pth \\
        --cls-checkpoint work_dirs/classifier/in1k_r50.pth \\
        [--pretrain in1k] [--shots 5 10 20 50 100] [--seeds 0 1 2] [--full] \\
        [--work-dir work_dirs/fewshot_voc07_in1k] [--cfg-options k=v ...] \\
        [--launcher {train,dist,slurm}] [--jobs N] [--gpus 8] \\
        [--partition P] [--print] [--restart-changed]

Makes the missing k-shot splits (beside the dataset's train list / json),
writes each run's config with its split and schedule into
``{work_dir}/configs/``, trains every (init, k, seed) in its own work dir
``{work_dir}/{init}_{k}shot_seed{seed}`` -- skipping finished runs and
resuming interrupted ones -- and writes ``report.md`` (AP50 and AP, mean
± sd over seeds, paired DAP - CLS difference and wins), ``results.csv``,
``results.json`` and ``ap_vs_shots.png``.  ``--full`` adds full-data runs.
``--print`` only prints the command of every unfinished run (to submit
them yourself); calling the tool again later collects what finished.
The engine is :mod:`projects.dap.dap.fewshot`.
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import DictAction

from projects.dap.dap.fewshot.launch import LAUNCHERS, REPO
from projects.dap.dap.fewshot.runs import InitSpec
from projects.dap.dap.fewshot.splits import DEFAULT_SEEDS, DEFAULT_SHOTS
from projects.dap.dap.fewshot.sweep import SweepError, SweepSpec, run_sweep

FULL_SCHEDULE = dict(voc07='14e_voc07', coco='1x_coco')


def default_config(init: str,
                   pretrain: str,
                   dataset: str,
                   full: bool = False) -> str:
    kind = FULL_SCHEDULE[dataset] if full else f'fewshot_{dataset}'
    return osp.join(REPO, 'configs', 'finetune',
                    f'faster-rcnn_r50_fpn_{init}-{pretrain}_{kind}.py')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Run and report the k-shot x seeds x {DAP, CLS} study')
    parser.add_argument('dataset', choices=sorted(FULL_SCHEDULE))
    parser.add_argument(
        '--pretrain',
        default='in1k',
        choices=['in1k', 'in22k'],
        help='picks the default configs')
    parser.add_argument(
        '--dap-checkpoint',
        help='the step-3 DAP detector (load_from); default: '
        "the DAP config's load_from")
    parser.add_argument(
        '--cls-checkpoint',
        help='the classifier the CLS baseline starts from; '
        "default: the CLS config's backbone checkpoint")
    parser.add_argument(
        '--dap-config',
        help='default: configs/finetune/'
        'faster-rcnn_r50_fpn_dap-{pretrain}_fewshot_'
        '{dataset}.py')
    parser.add_argument('--cls-config', help='default: the CLS counterpart')
    parser.add_argument(
        '--full',
        action='store_true',
        help='also fine-tune on the full data (per seed)')
    parser.add_argument(
        '--dap-full-config',
        help='default: ..._dap-{pretrain}_{14e_voc07,1x_coco}'
        '.py')
    parser.add_argument('--cls-full-config')
    parser.add_argument(
        '--shots', type=int, nargs='+', default=list(DEFAULT_SHOTS))
    parser.add_argument(
        '--seeds',
        type=int,
        nargs='+',
        default=list(DEFAULT_SEEDS),
        help='a seed draws the split and the training '
        'randomness')
    parser.add_argument(
        '--inits', nargs='+', default=['dap', 'cls'], choices=['dap', 'cls'])
    parser.add_argument(
        '--work-dir', help='default work_dirs/fewshot_{dataset}_{pretrain}')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='overrides for every run, e.g. data roots')
    parser.add_argument(
        '--launcher',
        choices=LAUNCHERS,
        default='train',
        help='train: python tools/train.py per run; dist: '
        'tools/dist_train.sh on --gpus GPUs; slurm: '
        'tools/slurm_train.sh on --partition')
    parser.add_argument(
        '--jobs',
        type=int,
        default=1,
        help='runs at a time (train / slurm launchers)')
    parser.add_argument('--gpus', type=int, default=8)
    parser.add_argument('--partition')
    parser.add_argument(
        '--print',
        dest='dry_run',
        action='store_true',
        help='print the unfinished runs\' commands instead '
        'of running them')
    parser.add_argument(
        '--restart-changed',
        action='store_true',
        help='start again the runs whose work dir holds '
        'another config (default: refuse)')
    parser.add_argument(
        '--no-checkpoints',
        action='store_true',
        help='delete a run\'s checkpoints once its metrics '
        'are recorded')
    args = parser.parse_args(argv)
    if args.work_dir is None:
        args.work_dir = osp.join('work_dirs',
                                 f'fewshot_{args.dataset}_{args.pretrain}')
    return args


def build_spec(args: argparse.Namespace) -> SweepSpec:
    inits = []
    for name in args.inits:
        options = {}
        checkpoint = getattr(args, f'{name}_checkpoint')
        if checkpoint:
            if not osp.isfile(checkpoint):
                raise FileNotFoundError(f'--{name}-checkpoint {checkpoint} '
                                        'not found')
            key = 'load_from' if name == 'dap' else \
                'model.backbone.init_cfg.checkpoint'
            options[key] = osp.abspath(checkpoint)
        inits.append(
            InitSpec(
                name=name,
                fewshot_config=getattr(args, f'{name}_config')
                or default_config(name, args.pretrain, args.dataset),
                full_config=getattr(args, f'{name}_full_config')
                or default_config(
                    name, args.pretrain, args.dataset, full=True),
                options=options))
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO, env.get('PYTHONPATH')) if p)
    if args.launcher == 'train' and 'OMP_NUM_THREADS' not in env:
        env['OMP_NUM_THREADS'] = str(
            max(1, (os.cpu_count() or 1) // max(1, args.jobs)))
    # what the paper plots: VOC07 AP50, COCO AP
    plot_metric = 'AP50' if args.dataset == 'voc07' else 'AP'
    metric = 'VOC2007 test AP50' if args.dataset == 'voc07' else \
        'COCO val2017 AP'
    description = (
        f'{args.dataset} k = {args.shots}, seeds {args.seeds}, '
        f'{args.pretrain} pre-training; ' +
        '; '.join(f'{i.name.upper()}: `{osp.relpath(i.fewshot_config)}`' +
                  (f' ({list(i.options.values())[0]})' if i.options else '')
                  for i in inits) + '. Made by `tools/fewshot_sweep.py`.')
    return SweepSpec(
        work_dir=args.work_dir,
        inits=inits,
        shots=args.shots,
        seeds=args.seeds,
        full=args.full,
        options=dict(args.cfg_options),
        launcher=args.launcher,
        gpus=args.gpus,
        partition=args.partition,
        jobs=args.jobs,
        env=env,
        dry_run=args.dry_run,
        on_change='restart' if args.restart_changed else 'error',
        keep_checkpoints=not args.no_checkpoints,
        title=f'Low-data transfer on {args.dataset}: DAP vs CLS',
        description=description,
        ylabel=f'{metric} (%)',
        plot_metric=plot_metric,
        full_label='full trainval'
        if args.dataset == 'voc07' else 'full train2017')


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        outcome = run_sweep(build_spec(args))
    except (OSError, ValueError, SweepError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    if args.dry_run and outcome.commands:
        print('\n'.join(outcome.commands))
    if outcome.failed:
        print(
            f'error: {len(outcome.failed)} runs failed; first:\n'
            f'{outcome.failed[0]}',
            file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
