"""The main job: all four DAP steps end to end on a generated benchmark.

    python tools/run_dap_demo.py [--work-dir work_dirs/dap_demo] [--quick]
        [--seeds N] [--shots 5 10 20] [--workers 2]

Stages: data (mini-ImageNet and mini-VOC from a seed), step 1 classifier,
step 2 CAM pseudo boxes, step 3 DAP pre-training, step 4 DAP vs CLS
fine-tuning on mini-VOC (the engine of ``tools/fewshot_sweep.py``), then
``report.md``, ``summary.json``, ``ap_vs_shots.png``, ``cam_examples.png``.
A stage runs the project's tools on its demo config as it stands, with its
data and input paths filled in (``--quick``: and the train lengths of
``configs/demo/presets/quick.py``), saved into the stage's folder; it is
skipped on a rerun until the hash of its config and inputs changes.  What
a stage does is in ``projects/dap/dap/demo/steps.py``.
"""
import argparse
import os
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from projects.dap.dap.demo import presets, report, stages, steps  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Run all four DAP steps on a generated benchmark')
    parser.add_argument(
        '--work-dir', help='default work_dirs/dap_demo[_quick]')
    parser.add_argument('--data-root', help='default data/dap_demo[_quick]')
    parser.add_argument(
        '--quick', action='store_true', help='configs/demo/presets/quick.py')
    parser.add_argument('--seeds', type=int, help='fine-tuning seeds')
    parser.add_argument('--shots', type=int, nargs='+', help='k-shot settings')
    parser.add_argument('--data-seed', type=int, default=0, help='data seed')
    parser.add_argument('--workers', type=int, help='fine-tuning runs at once')
    args = parser.parse_args(argv)
    suffix = '_quick' if args.quick else ''
    args.work_dir = osp.abspath(
        args.work_dir or osp.join(REPO, 'work_dirs', 'dap_demo' + suffix))
    args.data_root = osp.abspath(
        args.data_root or osp.join(REPO, 'data', 'dap_demo' + suffix))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    preset_name = 'quick' if args.quick else 'default'
    preset = presets.load_preset(REPO, preset_name)
    configs = presets.DemoConfigs(REPO, preset)
    root, seed = args.data_root, args.data_seed
    images = osp.join(root, 'mini_imagenet')
    shots = tuple(args.shots or preset.shots)
    seeds = tuple(range(args.seeds or preset.seeds))
    cpus = os.cpu_count() or 1
    workers = max(1, args.workers or min(2, cpus))
    threads = max(1, cpus // workers)
    start = time.time()
    print(f'DAP demo ({preset_name}): work dir {args.work_dir}; {workers} '
          f'fine-tuning runs at a time, {threads} thread(s) each')
    pipe = stages.Pipeline(args.work_dir, REPO)
    try:
        data = pipe.stage(
            'step0_data', '[data] generating mini-ImageNet and mini-VOC '
            f'(seed {seed}) in {root}',
            steps.data_inputs(root, seed, preset.data),
            lambda out: steps.make_data(root, seed, preset.data))

        cls_cfg = configs.build('classifier', images)
        classifier = pipe.stage(
            'step1_classifier', '[step 1/4] training the classifier '
            '(mmpretrain ResNet-18, half width) on mini-ImageNet: '
            'tools/train.py', [cls_cfg.to_dict(), data['digest']],
            lambda out: steps.train(
                pipe, out, cls_cfg, 'classifier.pth', top1=True))
        ckpt = classifier['checkpoint']

        cam_cfg = configs.build('cam', images)
        boxes = pipe.stage(
            'step2_pseudo_boxes', '[step 2/4] CAM pseudo boxes on '
            'mini-ImageNet with the CAM-box hook: '
            'tools/generate_pseudo_boxes.py',
            [cam_cfg.to_dict(), classifier['digest']],
            lambda out: steps.pseudo_boxes(pipe, out, cam_cfg, ckpt, images))

        dap_cfg = configs.build(
            'dap', images + '/', {
                steps.BACKBONE: ckpt,
                'train_dataloader.dataset.box_file': boxes['box_file']
            })
        dap = pipe.stage(
            'step3_dap_pretrain', '[step 3/4] DAP pre-training: Faster R-CNN '
            'on the pseudo boxes (ImageNetPseudoBoxDataset): tools/train.py',
            [dap_cfg.to_dict(), classifier['digest'], boxes['digest']],
            lambda out: steps.train(pipe, out, dap_cfg, 'dap_detector.pth'))

        step4 = time.time()
        voc_root = osp.join(root, 'mini_voc', 'VOCdevkit/')
        results = steps.finetune(pipe, configs, voc_root, ckpt,
                                 dap['checkpoint'], shots, seeds, workers,
                                 threads)
        pipe.timings['finetune'] = time.time() - step4
    except stages.ToolError as e:
        print(f'\nerror: {e}', file=sys.stderr)
        return 1
    pipe.timings['total_before_report'] = time.time() - start

    stages.header('[report] writing the summary')
    facts = report.run_facts(configs.built, preset.data, data['paths'])
    settings = dict(workers=workers, threads=threads, shots=shots, seeds=seeds)
    out = report.write_outputs(args.work_dir, preset_name, classifier, boxes,
                               results, pipe.timings, facts, settings)
    print(f'\n  report: {out}\n\nDAP demo finished in '
          f'{time.time() - start:.0f}s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
