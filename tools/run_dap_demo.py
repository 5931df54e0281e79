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
skipped on a rerun until the hash of its config and inputs changes.
"""
import argparse
import hashlib
import json
import os
import os.path as osp
import shutil
import sys
import time
from typing import Callable, Dict, List

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from mmengine.config import Config  # noqa: E402

from projects.dap.dap import demo  # noqa: E402
from projects.dap.dap.demo import report, stages  # noqa: E402
from projects.dap.dap.fewshot import runs, sweep  # noqa: E402

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

BACKBONE = 'model.backbone.init_cfg.checkpoint'  # the classifier's weights
SETTINGS = ('workers', 'threads', 'shots', 'seeds')  # in the report
#: step 4's sweep (tools/fewshot_sweep.py's options): what the demo runs
STEP4 = dict(
    full=True,
    on_change='restart',
    keep_checkpoints=False,
    quiet=True,
    title='DAP demo, step 4: DAP vs CLS on mini-VOC',
    description='Made by the demo through the engine of '
    '`tools/fewshot_sweep.py`.',
    ylabel='mini-VOC test AP50 (%)',
    full_label='full trainval')


class Demo:
    """The whole pipeline with its settings."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.preset_name = 'quick' if args.quick else 'default'
        self.preset = demo.load_preset(REPO, self.preset_name)
        self.work_dir = osp.abspath(args.work_dir)
        self.logs = osp.join(self.work_dir, 'logs')
        self.data_root = osp.abspath(
            args.data_root or osp.join(
                REPO, 'data', 'dap_demo_quick' if args.quick else 'dap_demo'))
        self.images = osp.join(self.data_root, 'mini_imagenet')
        self.voc_root = osp.join(self.data_root, 'mini_voc', 'VOCdevkit/')
        self.shots = tuple(args.shots or self.preset.shots)
        self.seeds = tuple(range(args.seeds or self.preset.seeds))
        self.data_seed = args.data_seed
        cpus = os.cpu_count() or 1
        self.workers = max(1, args.workers or min(2, cpus))
        self.threads = max(1, cpus // self.workers)
        self.timings: Dict[str, float] = {}
        self.configs: Dict[str, Config] = {}

    def env(self, threads: int = 0) -> Dict[str, str]:
        env = dict(os.environ)
        env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
        for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
            env[var] = str(threads or os.cpu_count() or 1)
        # spinning OpenMP threads starve each other on a busy machine
        env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
        return env

    def config(self, key: str, root: str, options: dict) -> Config:
        """Demo config ``key`` with ``root`` as its data loaders' data root,
        ``options`` (input paths) merged in and the preset's train length
        for it, if it has one."""
        cfg = Config.fromfile(osp.join(REPO, CONFIGS[key]))
        options = dict(options)
        for split in ('train', 'val', 'test'):
            if cfg.get(f'{split}_dataloader'):
                options[f'{split}_dataloader.dataset.data_root'] = root
        cfg.merge_from_dict(options)
        lengths = self.preset.get('train_length') or {}
        if key.split('_')[0] in lengths:
            demo.set_train_length(cfg, lengths[key.split('_')[0]])
        self.configs[key] = cfg
        return cfg

    def stage(self, folder: str, title: str, inputs: object,
              work: Callable[[str], dict]) -> dict:
        """:func:`stages.run_stage` in ``folder``, timed."""
        start = time.time()
        result = stages.run_stage(
            osp.join(self.work_dir, folder), title, inputs, work)
        self.timings[folder.split('_', 1)[1]] = time.time() - start
        return result

    def train(self, folder: str, title: str, cfg: Config, upstream: list,
              checkpoint: str) -> dict:
        """A stage that saves ``cfg`` into ``folder``, trains it with
        tools/train.py and keeps its last checkpoint as ``checkpoint``."""

        def work(out):
            config = osp.join(out, osp.basename(cfg.filename))
            cfg.dump(config)
            stages.run_tool(['tools/train.py', config, '--work-dir', out],
                            osp.join(self.logs, f'{folder}.log'), REPO,
                            self.env(), demo.ProgressBar(1, folder))
            last = runs.last_checkpoint(out)
            if last is None:
                raise stages.ToolError(f'no checkpoint in {out}')
            result = dict(checkpoint=osp.join(out, checkpoint))
            shutil.copyfile(last, result['checkpoint'])
            if folder == 'step1_classifier':
                result['val_top1'] = stages.last_metric(out, 'accuracy/top1')
                print(f'  val top-1 accuracy {result["val_top1"]:.1f}%')
            print(f'  -> {result["checkpoint"]}')
            return result

        return self.stage(folder, title, [cfg.to_dict()] + upstream, work)

    def make_data(self, folder: str) -> dict:
        shutil.rmtree(self.data_root, ignore_errors=True)
        print(f'  {self.preset.data}')
        make = demo.benchmark.make_demo_data
        return dict(
            paths=make(self.data_root, self.data_seed, **self.preset.data))

    def pseudo_boxes(self, out: str, cfg: Config, ckpt: str) -> dict:
        """Step 2: CAM boxes, their score against the true boxes, and a
        few browsed."""

        def tool(name, args, bar=None):
            stages.run_tool(args, osp.join(self.logs, f'step2_{name}.log'),
                            REPO, self.env(), bar)

        config = osp.join(out, osp.basename(cfg.filename))
        cfg.dump(config)
        boxes = osp.join(out, 'pseudo_boxes.dapbox')
        truth = osp.join(self.images, 'meta', 'train_boxes.json')
        images = osp.join(self.images, 'train')
        tool('generate_pseudo_boxes', [
            'tools/generate_pseudo_boxes.py', config, '--checkpoint', ckpt,
            '--work-dir', out, '--out', boxes
        ], demo.ProgressBar(1, 'CAM boxes'))
        tool('eval_pseudo_boxes', [
            'tools/analysis_tools/eval_pseudo_boxes.py', boxes, truth, '--out',
            osp.join(out, 'quality.json')
        ])
        tool('browse', [
            'tools/analysis_tools/browse_pseudo_boxes.py', boxes,
            '--data-root', images, '--out-dir',
            osp.join(out, 'browse'), '--num', '8', '--random', '--config',
            config, '--checkpoint', ckpt
        ])
        with open(osp.join(out, 'quality.json')) as f:
            q = json.load(f)
        print(f'  {q["num_images"]} images, {q["boxes_per_image"]:.2f} '
              'boxes/image; GT-known acc@0.5 '
              f'{100 * q["gt_known_acc@0.5"]:.1f}%, recall@0.5 '
              f'{100 * q["recall@0.5"]:.1f}%, precision@0.5 '
              f'{100 * q["precision@0.5"]:.1f}%')
        return dict(
            box_file=boxes,
            quality=q,
            true_boxes=truth,
            checkpoint=ckpt,
            config=config,
            images=images)

    def finetune(self, classifier: dict, dap: dict) -> List[dict]:
        """Step 4: the low-data study's engine (the code path of
        tools/fewshot_sweep.py) over the demo's fine-tuning configs, saved
        with their paths under ``step4_finetune/inits``."""
        start = time.time()
        work_dir = osp.join(self.work_dir, 'step4_finetune')
        os.makedirs(osp.join(work_dir, 'inits'), exist_ok=True)
        weights = dict(
            dap={'load_from': dap['checkpoint']},
            cls={BACKBONE: classifier['checkpoint']})
        min_iters = self.preset.get('fewshot_min_iters')
        inits = []
        for init in ('dap', 'cls'):
            files = []
            for key in (f'finetune_{init}_fewshot', f'finetune_{init}'):
                cfg = self.config(key, self.voc_root, weights[init])
                if key.endswith('fewshot') and min_iters is not None:
                    cfg.fewshot.min_iters = min_iters
                files.append(
                    osp.join(work_dir, 'inits', osp.basename(cfg.filename)))
                cfg.dump(files[-1])
            inits.append(runs.InitSpec(init, *files))
        total = (len(self.shots) + 1) * len(self.seeds) * len(inits)
        stages.header(
            f'[step 4/4] fine-tuning DAP and CLS inits on mini-VOC: '
            f'{total} runs (k={list(self.shots)} + full, seeds '
            f'{list(self.seeds)}), {self.workers} at a time, through '
            "tools/fewshot_sweep.py's engine")
        env = self.env(self.threads)
        spec = sweep.SweepSpec(
            work_dir,
            inits,
            self.shots,
            self.seeds,
            jobs=self.workers,
            env=env,
            **STEP4)
        bar = demo.ProgressBar(total, 'fine-tune runs')
        try:
            outcome = sweep.run_sweep(spec,
                                      lambda n, _, note: bar.update(n, note))
        except (sweep.SweepError, OSError, ValueError) as e:
            raise stages.ToolError(f'step 4: {e}') from None
        bar.close()
        if outcome.counts['finished'] == total:
            print('  every run had finished before: nothing to run')
        if outcome.failed:
            raise stages.ToolError(f'{len(outcome.failed)} fine-tuning runs '
                                   f'failed; first:\n{outcome.failed[0]}')
        self.timings['finetune'] = time.time() - start
        return outcome.results

    def run(self) -> str:
        start = time.time()
        print(f'DAP demo ({self.preset_name}): work dir {self.work_dir}; '
              f'{self.workers} fine-tuning runs at a time, '
              f'{self.threads} thread(s) each')
        os.makedirs(self.logs, exist_ok=True)
        with open(demo.benchmark.__file__, 'rb') as f:
            inputs = dict(code=hashlib.sha256(f.read()).hexdigest())
        inputs.update(data=self.preset.data, seed=self.data_seed)
        inputs.update(root=self.data_root)
        data = self.stage(
            'step0_data', '[data] generating mini-ImageNet and mini-VOC '
            f'(seed {self.data_seed}) in {self.data_root}', inputs,
            self.make_data)
        classifier = self.train(
            'step1_classifier', '[step 1/4] training the classifier '
            '(mmpretrain ResNet-18, half width) on mini-ImageNet: '
            'tools/train.py', self.config('classifier', self.images, {}),
            [data['digest']], 'classifier.pth')
        ckpt = classifier['checkpoint']
        cam = self.config('cam', self.images, {})
        boxes = self.stage(
            'step2_pseudo_boxes', '[step 2/4] CAM pseudo boxes on '
            'mini-ImageNet with the CAM-box hook: '
            'tools/generate_pseudo_boxes.py',
            [cam.to_dict(), classifier['digest']],
            lambda out: self.pseudo_boxes(out, cam, ckpt))
        dap = self.train(
            'step3_dap_pretrain', '[step 3/4] DAP pre-training: Faster R-CNN '
            'on the pseudo boxes (ImageNetPseudoBoxDataset): tools/train.py',
            self.config(
                'dap', self.images + '/', {
                    BACKBONE: ckpt,
                    'train_dataloader.dataset.box_file': boxes['box_file']
                }), [classifier['digest'], boxes['digest']],
            'dap_detector.pth')
        results = self.finetune(classifier, dap)
        self.timings['total_before_report'] = time.time() - start
        stages.header('[report] writing the summary')
        facts = report.run_facts(self.configs, self.preset.data, data['paths'])
        settings = {k: getattr(self, k) for k in SETTINGS}
        out = report.write_outputs(self.work_dir, self.preset_name, classifier,
                                   boxes, results, self.timings, facts,
                                   settings)
        print(f'\n  report: {out}\n\nDAP demo finished in '
              f'{time.time() - start:.0f}s')
        return out


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
    if args.work_dir is None:
        args.work_dir = osp.join(
            REPO, 'work_dirs', 'dap_demo_quick' if args.quick else 'dap_demo')
    return args


def main(argv=None) -> int:
    try:
        Demo(parse_args(argv)).run()
    except stages.ToolError as e:
        print(f'\nerror: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
