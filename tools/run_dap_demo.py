"""The main job: all four DAP steps end to end on a generated benchmark.

::

    python tools/run_dap_demo.py [--work-dir work_dirs/dap_demo] [--quick]
        [--seeds N] [--shots 5 10 20] [--workers 2]

Stages, each running the project's tools as subprocesses (logs under
``{work_dir}/logs``): data (mini-ImageNet and mini-VOC from a seed), step 1
classifier (``tools/train.py``), step 2 CAM pseudo boxes
(``tools/generate_pseudo_boxes.py``, scored by
``tools/analysis_tools/eval_pseudo_boxes.py``), step 3 DAP pre-training
(``tools/train.py``), step 4 DAP vs CLS fine-tuning on mini-VOC, full and
k-shot, several seeds, two runs at a time (the engine of
``tools/fewshot_sweep.py``, under ``{work_dir}/step4_finetune``), then
``report.md``, ``summary.json``, ``ap_vs_shots.png``, ``cam_examples.png``.

Each stage trains its demo config (``configs/demo``) as it stands, with the
paths of its data and inputs filled in (and with ``--quick`` the train
lengths of ``configs/demo/presets/quick.py``), saved into the stage's folder:
that file is what runs.  A finished stage leaves a marker with the hash of
its config and inputs; a rerun skips it, and reruns it (and what depends on
it) when the hash changes.
"""
from typing import Callable, Dict, List, Optional, Sequence
import argparse
import glob
import hashlib
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from mmengine.config import Config  # noqa: E402

from projects.dap.dap.demo import (ProgressBar, benchmark,  # noqa: E402
                                   load_preset, report, set_train_length)
from projects.dap.dap.fewshot.runs import (InitSpec,  # noqa: E402
                                           last_checkpoint)
from projects.dap.dap.fewshot.sweep import (SweepError,  # noqa: E402
                                            SweepSpec, run_sweep)

CONFIGS = dict(
    classifier='configs/demo/resnet18-w32_mini-imagenet.py',
    cam='configs/demo/cam-boxes_resnet18-w32_mini-imagenet.py',
    dap='configs/demo/dap_faster-rcnn_r18-w32_fpn_mini-imagenet.py',
    ft_dap='configs/demo/faster-rcnn_r18-w32_fpn_dap_mini-voc.py',
    ft_cls='configs/demo/faster-rcnn_r18-w32_fpn_cls_mini-voc.py',
    ft_dap_few='configs/demo/faster-rcnn_r18-w32_fpn_dap_mini-voc-fewshot.py',
    ft_cls_few='configs/demo/faster-rcnn_r18-w32_fpn_cls_mini-voc-fewshot.py')


class ToolError(RuntimeError):
    pass


def header(text: str) -> None:
    print(f'\n{"=" * 72}\n{text}\n{"=" * 72}', flush=True)


def run_tool(args: Sequence[str], log_file: str, env: Dict[str, str],
             bar: Optional[ProgressBar] = None) -> None:
    """Run a tool of the project, its output into ``log_file``; ``bar``
    follows the progress file in the tool's ``--work-dir``."""
    cmd = [sys.executable] + [str(a) for a in args]
    work_dir = cmd[cmd.index('--work-dir') + 1] if bar else None
    with open(log_file, 'w') as log:
        log.write('$ ' + ' '.join(cmd) + '\n')
        log.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        while proc.poll() is None:
            time.sleep(1)
            if bar:
                bar.follow(work_dir)
    if bar:
        bar.follow(work_dir)
        bar.close()
    if proc.returncode != 0:
        with open(log_file) as f:
            tail = ''.join(f.readlines()[-40:])
        raise ToolError(f'{" ".join(cmd)} exited with {proc.returncode} '
                        f'(log: {log_file}):\n{tail}')


def last_metric(work_dir: str, key: str) -> float:
    """``key`` of the last record holding it in mmengine's scalar logs."""
    found = None
    for path in sorted(glob.glob(f'{work_dir}/*/vis_data/scalars.json')):
        with open(path) as f:
            records = [json.loads(line) for line in f if line.strip()]
        found = next((r[key] for r in reversed(records) if key in r), found)
    if found is None:
        raise ToolError(f'no "{key}" metrics under {work_dir}')
    return found


class Demo:
    """The whole pipeline with its settings."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.preset_name = 'quick' if args.quick else 'default'
        self.preset = load_preset(REPO, self.preset_name)
        self.work_dir = osp.abspath(args.work_dir)
        self.logs = osp.join(self.work_dir, 'logs')
        self.data_root = osp.abspath(args.data_root or osp.join(
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

    def config(self, key: str, paths: dict, stage: str = '') -> Config:
        """Demo config ``key`` with ``paths`` merged in and the preset's
        train length of ``stage``, if it has one."""
        cfg = Config.fromfile(osp.join(REPO, CONFIGS[key]))
        cfg.merge_from_dict(paths)
        lengths = self.preset.get('train_length') or {}
        if stage in lengths:
            set_train_length(cfg, lengths[stage])
        self.configs[key] = cfg
        return cfg

    def stage(self, key: str, folder: str, title: str, inputs: object,
              work: Callable[[str], dict]) -> dict:
        """``work(folder)`` unless ``folder``'s marker holds the hash of
        ``inputs``; returns its result, with that hash."""
        header(title)
        start, folder = time.time(), osp.join(self.work_dir, folder)
        marker = osp.join(folder, '.stage.json')
        digest = hashlib.sha256(json.dumps(
            inputs, sort_keys=True, default=str).encode()).hexdigest()
        try:
            with open(marker) as f:
                done = json.load(f)
        except (OSError, ValueError):
            done = {}
        if done.get('hash') == digest:
            print('  done before, skipped')
            result = done['result']
        else:  # a changed or unfinished stage starts from an empty folder
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
            result = work(folder)
            with open(marker + '.tmp', 'w') as f:
                json.dump(dict(hash=digest, result=result), f, indent=1)
            os.replace(marker + '.tmp', marker)
        self.timings[key] = time.time() - start
        return dict(result, digest=digest)

    def train(self, key: str, cfg: Config, upstream: List[str], folder: str,
              title: str, label: str, checkpoint: str,
              metric: str = '') -> dict:
        """A stage that saves ``cfg`` into ``folder``, trains it with
        tools/train.py and keeps its last checkpoint as ``checkpoint``."""
        log = osp.join(self.logs, f'{folder}.log')

        def work(out):
            config = osp.join(out, osp.basename(CONFIGS[key]))
            cfg.dump(config)
            run_tool(['tools/train.py', config, '--work-dir', out], log,
                     self.env(), ProgressBar(1, label))
            ckpt = last_checkpoint(out)
            if ckpt is None:
                raise ToolError(f'no checkpoint in {out}')
            result = dict(checkpoint=osp.join(out, checkpoint))
            shutil.copyfile(ckpt, result['checkpoint'])
            if metric:
                result['val_top1'] = last_metric(out, metric)
                print(f'  val top-1 accuracy {result["val_top1"]:.1f}%')
            print(f'  -> {result["checkpoint"]}')
            return result

        return self.stage(folder[:5], folder, title,
                          [cfg.to_dict()] + upstream, work)

    def make_data(self, folder: str) -> dict:
        start = time.time()
        shutil.rmtree(self.data_root, ignore_errors=True)
        paths = benchmark.make_demo_data(self.data_root, seed=self.data_seed,
                                         **self.preset.data)
        print(f'  {self.preset.data} written in {time.time() - start:.0f}s')
        return dict(paths=paths)

    def pseudo_boxes(self, folder: str, cfg: Config, ckpt: str) -> dict:
        config = osp.join(folder, osp.basename(CONFIGS['cam']))
        cfg.dump(config)
        box_file = osp.join(folder, 'pseudo_boxes.dapbox')
        truth = osp.join(self.images, 'meta', 'train_boxes.json')
        quality = osp.join(folder, 'quality.json')
        for name, args, bar in (
                ('generate_pseudo_boxes', [
                    'tools/generate_pseudo_boxes.py', config, '--checkpoint',
                    ckpt, '--work-dir', folder, '--out', box_file
                ], ProgressBar(1, 'CAM boxes')),
                ('eval_pseudo_boxes', [
                    'tools/analysis_tools/eval_pseudo_boxes.py', box_file,
                    truth, '--out', quality
                ], None),
                ('browse', [
                    'tools/analysis_tools/browse_pseudo_boxes.py', box_file,
                    '--data-root', osp.join(self.images, 'train'),
                    '--out-dir', osp.join(folder, 'browse'), '--num', '8',
                    '--random', '--config', config, '--checkpoint', ckpt
                ], None)):
            run_tool(args, osp.join(self.logs, f'step2_{name}.log'),
                     self.env(), bar)
        with open(quality) as f:
            q = json.load(f)
        print(f'  {q["num_images"]} images, {q["boxes_per_image"]:.2f} '
              f'boxes/image; GT-known acc@0.5 {100 * q["gt_known_acc@0.5"]:.1f}'
              f'%, recall@0.5 {100 * q["recall@0.5"]:.1f}%, precision@0.5 '
              f'{100 * q["precision@0.5"]:.1f}%')
        return dict(box_file=box_file, quality=q, true_boxes=truth,
                    checkpoint=ckpt, config=config,
                    images=osp.join(self.images, 'train'))

    def finetune(self, classifier: dict, dap: dict) -> List[dict]:
        """Step 4: the low-data study's engine (the code path of
        tools/fewshot_sweep.py) over the demo's fine-tuning configs, saved
        with their paths under ``step4_finetune/inits``."""
        start, work_dir = time.time(), osp.join(self.work_dir,
                                                'step4_finetune')
        os.makedirs(osp.join(work_dir, 'inits'), exist_ok=True)
        paths = {f'{split}_dataloader.dataset.data_root': self.voc_root
                 for split in ('train', 'val', 'test')}
        weights = dict(dap={'load_from': dap['checkpoint']},
                       cls={'model.backbone.init_cfg.checkpoint':
                            classifier['checkpoint']})
        min_iters = self.preset.get('fewshot_min_iters')
        inits = []
        for init in ('dap', 'cls'):
            files = []
            for key in (f'ft_{init}_few', f'ft_{init}'):
                cfg = self.config(key, dict(paths, **weights[init]),
                                  'finetune')
                if key.endswith('few') and min_iters is not None:
                    cfg.fewshot.min_iters = min_iters
                files.append(osp.join(work_dir, 'inits',
                                      osp.basename(CONFIGS[key])))
                cfg.dump(files[-1])
            inits.append(InitSpec(init, *files))
        runs = (len(self.shots) + 1) * len(self.seeds) * len(inits)
        header(f'[step 4/4] fine-tuning DAP and CLS inits on mini-VOC: '
               f'{runs} runs (k={list(self.shots)} + full, seeds '
               f'{list(self.seeds)}), {self.workers} at a time: '
               "the low-data sweep (tools/fewshot_sweep.py's engine) runs "
               'tools/train.py, evaluated on mini-VOC test')
        spec = SweepSpec(
            work_dir=work_dir, inits=inits, shots=self.shots,
            seeds=self.seeds, full=True, launcher='train', jobs=self.workers,
            env=self.env(self.threads), on_change='restart',
            keep_checkpoints=False, quiet=True,
            title='DAP demo, step 4: DAP vs CLS on mini-VOC',
            description='Made by the demo through the engine of '
            '`tools/fewshot_sweep.py`.', ylabel='mini-VOC test AP50 (%)',
            full_label='full trainval')
        bar = ProgressBar(runs, 'fine-tune runs')
        try:
            outcome = run_sweep(spec, lambda done, _, note: bar.update(
                done, note))
        except (SweepError, OSError, ValueError) as e:
            raise ToolError(f'step 4: {e}') from None
        bar.close()
        if outcome.counts['finished'] == runs:
            print('  every run had finished before: nothing to run')
        if outcome.failed:
            raise ToolError(f'{len(outcome.failed)} fine-tuning runs failed;'
                            f' first:\n{outcome.failed[0]}')
        self.timings['step4'] = time.time() - start
        return outcome.results

    def run(self) -> str:
        start = time.time()
        print(f'DAP demo ({self.preset_name}): work dir {self.work_dir}; '
              f'{self.workers} fine-tuning runs at a time, '
              f'{self.threads} thread(s) each')
        os.makedirs(self.logs, exist_ok=True)
        with open(benchmark.__file__, 'rb') as f:
            code = hashlib.sha256(f.read()).hexdigest()
        data = self.stage(
            'data', 'step0_data', '[data] generating mini-ImageNet and '
            f'mini-VOC (seed {self.data_seed}) in {self.data_root}',
            dict(data=self.preset.data, seed=self.data_seed, code=code,
                 root=self.data_root), self.make_data)
        classifier = self.train(
            'classifier', self.config('classifier', {
                f'{split}_dataloader.dataset.data_root': self.images
                for split in ('train', 'val', 'test')}, 'classifier'),
            [data['digest']], 'step1_classifier', '[step 1/4] training the '
            'classifier (mmpretrain ResNet-18, half width) on mini-ImageNet: '
            'tools/train.py', 'classifier', 'classifier.pth', 'accuracy/top1')
        cam = self.config('cam',
                          {'test_dataloader.dataset.data_root': self.images})
        boxes = self.stage(
            'step2', 'step2_pseudo_boxes', '[step 2/4] CAM pseudo boxes on '
            'mini-ImageNet with the CAM-box hook: '
            'tools/generate_pseudo_boxes.py',
            [cam.to_dict(), classifier['digest']],
            lambda out: self.pseudo_boxes(out, cam, classifier['checkpoint']))
        dap = self.train(
            'dap', self.config('dap', {
                'model.backbone.init_cfg.checkpoint':
                classifier['checkpoint'],
                'train_dataloader.dataset.data_root': self.images + '/',
                'train_dataloader.dataset.box_file': boxes['box_file']
            }, 'dap'), [classifier['digest'], boxes['digest']],
            'step3_dap_pretrain', '[step 3/4] DAP pre-training: Faster R-CNN '
            'on the pseudo boxes (ImageNetPseudoBoxDataset): tools/train.py',
            'DAP', 'dap_detector.pth')
        results = self.finetune(classifier, dap)
        self.timings['total_before_report'] = time.time() - start
        header('[report] writing the summary')
        out = report.write_outputs(
            self.work_dir, self.preset_name, classifier, boxes, results,
            self.timings, report.run_facts(self.configs, self.preset.data,
                                           data['paths']),
            dict(workers=self.workers, threads=self.threads,
                 shots=self.shots, seeds=self.seeds))
        print(f'\n  report: {out}\n\nDAP demo finished in '
              f'{time.time() - start:.0f}s')
        return out


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Run all four DAP steps on a generated benchmark')
    parser.add_argument('--work-dir', help='default work_dirs/dap_demo (or '
                        'work_dirs/dap_demo_quick with --quick)')
    parser.add_argument('--data-root', help='where the benchmark is '
                        'generated (default data/dap_demo or '
                        'data/dap_demo_quick)')
    parser.add_argument('--quick', action='store_true',
                        help='configs/demo/presets/quick.py: a tiny setting '
                        'for tests (a few minutes)')
    parser.add_argument('--seeds', type=int,
                        help='fine-tuning seeds per setting')
    parser.add_argument('--shots', type=int, nargs='+',
                        help='k-shot settings (images per class)')
    parser.add_argument('--data-seed', type=int, default=0,
                        help='seed of the generated benchmark')
    parser.add_argument('--workers', type=int, help='fine-tuning runs at a '
                        'time (default: 2 when there are 2+ CPU cores)')
    args = parser.parse_args(argv)
    if args.work_dir is None:
        args.work_dir = osp.join(REPO, 'work_dirs', 'dap_demo_quick'
                                 if args.quick else 'dap_demo')
    return args


def main(argv=None) -> int:
    try:
        Demo(parse_args(argv)).run()
    except ToolError as e:
        print(f'\nerror: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
