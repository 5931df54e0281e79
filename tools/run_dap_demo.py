"""The main job: all four DAP steps end to end on a generated benchmark.

::

    python tools/run_dap_demo.py [--work-dir work_dirs/dap_demo] [--quick]
        [--seeds N] [--shots 5 10 20] [--workers 2]

Stages (each runs the project's real tools as subprocesses, logs under
``{work_dir}/logs``):

0. data    generate mini-ImageNet and mini-VOC from a seed
           (``projects.dap.dap.demo``);
1. step1   train the classifier (``tools/train.py``, mmpretrain config);
2. step2   CAM pseudo boxes (``tools/generate_pseudo_boxes.py``), scored
           against the hidden true boxes
           (``tools/analysis_tools/eval_pseudo_boxes.py``) and browsed
           (``tools/analysis_tools/browse_pseudo_boxes.py``);
3. step3   DAP pre-training of Faster R-CNN on the pseudo boxes
           (``tools/train.py``);
4. step4   fine-tune DAP and CLS initialisations on mini-VOC, full and
           k-shot, several seeds, two runs at a time: the low-data study's
           engine (``projects/dap/dap/fewshot``, as
           ``tools/fewshot_sweep.py``) makes the k-shot splits, writes each
           run's config with its schedule and runs ``tools/train.py``
           (evaluated on mini-VOC test at the end of each run); its logs
           and report are under ``{work_dir}/step4_finetune``;
5. report  ``{work_dir}/report.md``, ``ap_vs_shots.png``,
           ``cam_examples.png``.

A finished stage (and every finished fine-tuning run) leaves a marker with
the hash of everything that decides its result (resolved configs, options,
the upstream stages' hashes); a rerun skips it, and reruns it and what
depends on it when that hash changes.
"""
from typing import Callable, Dict, List, Optional, Sequence
import argparse
import glob
import hashlib
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

CONFIGS = dict(
    classifier='configs/demo/resnet18-w32_mini-imagenet.py',
    cam='configs/demo/cam-boxes_resnet18-w32_mini-imagenet.py',
    dap='configs/demo/dap_faster-rcnn_r18-w32_fpn_mini-imagenet.py',
    ft_dap='configs/demo/faster-rcnn_r18-w32_fpn_dap_mini-voc.py',
    ft_cls='configs/demo/faster-rcnn_r18-w32_fpn_cls_mini-voc.py',
    ft_dap_few='configs/demo/faster-rcnn_r18-w32_fpn_dap_mini-voc-fewshot.py',
    ft_cls_few='configs/demo/faster-rcnn_r18-w32_fpn_cls_mini-voc-fewshot.py')

#: the default run and the quick one (tests); every number here is either a
#: generator size or a ``--cfg-options`` override of the demo configs
PRESETS = dict(
    default=dict(
        data=dict(images_per_class=250, val_per_class=20, num_trainval=200,
                  num_test=100),
        classifier_epochs=12,
        dap_iters=250,
        finetune_epochs=3,
        fewshot_min_iters=128,
        shots=(5, 10, 20),
        seeds=3),
    quick=dict(
        data=dict(images_per_class=24, val_per_class=4, num_trainval=40,
                  num_test=20),
        classifier_epochs=1,
        dap_iters=12,
        finetune_epochs=1,
        fewshot_min_iters=6,
        shots=(5, ),
        seeds=2))


# ------------------------------------------------------------- printing
def header(text: str) -> None:
    bar = '=' * 72
    print(f'\n{bar}\n{text}\n{bar}', flush=True)


class Progress:
    """A one-line progress bar (a new line every 10% when not a TTY)."""

    def __init__(self, total: int, label: str) -> None:
        self.total = max(int(total), 1)
        self.label = label
        self.start = time.time()
        self.tty = sys.stdout.isatty()
        self._last_decile = -1

    def update(self, done: int, note: str = '') -> None:
        done = min(max(done, 0), self.total)
        frac = done / self.total
        elapsed = time.time() - self.start
        eta = elapsed / frac - elapsed if frac > 0 else 0
        bar = '#' * int(30 * frac) + '.' * (30 - int(30 * frac))
        line = (f'  {self.label} [{bar}] {done}/{self.total} '
                f'{elapsed:5.0f}s elapsed, eta {eta:4.0f}s {note}')
        if self.tty:
            print('\r' + line[:150].ljust(150), end='', flush=True)
        elif int(frac * 10) != self._last_decile:
            self._last_decile = int(frac * 10)
            print(line, flush=True)

    def close(self) -> None:
        if self.tty:
            print(flush=True)


_ITER = re.compile(r'(?:Iter\((?:train|test|val)\)|Epoch\((?:test|val)\))'
                   r'\s+\[\s*(\d+)/\s*(\d+)\]')
_EPOCH = re.compile(r'Epoch\(train\)\s+\[\s*(\d+)\]\[\s*(\d+)/\s*(\d+)\]')
_LOSS = re.compile(r'\bloss: ([0-9.]+)')


class ToolError(RuntimeError):
    pass


def run_tool(args: Sequence[str], log_file: str, env: Dict[str, str],
             progress: Optional[Progress] = None,
             max_epochs: Optional[int] = None) -> None:
    """Run one of the project's tools; its output goes to ``log_file``.

    With ``progress`` the mmengine log lines drive the bar.  A failing
    tool raises :class:`ToolError` with the log's tail.
    """
    cmd = [sys.executable] + [str(a) for a in args]
    os.makedirs(osp.dirname(log_file), exist_ok=True)
    with open(log_file, 'w') as log:
        log.write('$ ' + ' '.join(cmd) + '\n')
        log.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                bufsize=1)
        for line in proc.stdout:
            log.write(line)
            if progress is None:
                continue
            loss = _LOSS.search(line)
            note = f'loss {loss.group(1)}' if loss else ''
            m = _ITER.search(line)
            if m:
                progress.total = int(m.group(2))
                progress.update(int(m.group(1)), note)
                continue
            m = _EPOCH.search(line)
            if m and max_epochs:
                epoch, it, n = (int(g) for g in m.groups())
                progress.total = max_epochs * n
                progress.update((epoch - 1) * n + it, note)
        code = proc.wait()
    if progress is not None:
        progress.close()
    if code != 0:
        with open(log_file) as f:
            tail = ''.join(f.readlines()[-40:])
        raise ToolError(f'{" ".join(cmd)} exited with {code} '
                        f'(log: {log_file}):\n{tail}')


# --------------------------------------------------------------- stages
_CONFIGS_LOADED: Dict[str, object] = {}


def config_hash(config: str, options: Sequence[str] = (),
                extra: object = None) -> str:
    """sha256 of a resolved config (after options) plus ``extra``.

    Each config file is parsed once per process (step 4 hashes 24 runs of
    two configs; parsing dominated its start).
    """
    import copy

    from mmengine.config import Config, DictAction

    path = osp.join(REPO, config)
    if path not in _CONFIGS_LOADED:
        _CONFIGS_LOADED[path] = Config.fromfile(path)
    cfg = copy.deepcopy(_CONFIGS_LOADED[path])
    if options:
        parsed = {}
        for opt in options:
            key, value = opt.split('=', 1)
            parsed[key] = DictAction._parse_iterable(value)
        cfg.merge_from_dict(parsed)
    payload = json.dumps(dict(cfg=cfg.to_dict(), extra=extra),
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def plain_hash(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str)
                          .encode()).hexdigest()


class Stage:
    """A unit of work with a marker file ``{dir}/.stage.json``."""

    def __init__(self, directory: str, digest: str) -> None:
        self.dir = directory
        self.digest = digest
        self.marker = osp.join(directory, '.stage.json')

    def done(self) -> bool:
        try:
            with open(self.marker) as f:
                return json.load(f).get('hash') == self.digest
        except (OSError, ValueError):
            return False

    def result(self) -> dict:
        with open(self.marker) as f:
            return json.load(f).get('result', {})

    def start(self) -> None:
        """A changed or unfinished stage starts from an empty folder."""
        if osp.isdir(self.dir):
            shutil.rmtree(self.dir)
        os.makedirs(self.dir)

    def finish(self, result: Optional[dict] = None) -> None:
        tmp = self.marker + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(dict(hash=self.digest, result=result or {}), f,
                      indent=1)
        os.replace(tmp, self.marker)


def last_checkpoint(work_dir: str) -> str:
    path = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(path):
        with open(path) as f:
            ckpt = f.read().strip()
        if osp.isfile(ckpt):
            return ckpt
    found = sorted(glob.glob(osp.join(work_dir, '*.pth')),
                   key=osp.getmtime)
    if not found:
        raise ToolError(f'no checkpoint in {work_dir}')
    return found[-1]


def read_metrics(work_dir: str, key: str) -> dict:
    """The last metrics line holding ``key`` in mmengine's json logs."""
    found = None
    for path in sorted(glob.glob(osp.join(work_dir, '*', '*.json')) +
                       glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and key in record:
                    found = record
    if found is None:
        raise ToolError(f'no "{key}" metrics under {work_dir}')
    return found


class Demo:
    """The whole pipeline with its settings."""

    def __init__(self, args: argparse.Namespace) -> None:
        preset = dict(PRESETS['quick' if args.quick else 'default'])
        self.preset_name = 'quick' if args.quick else 'default'
        self.preset = preset
        self.work_dir = osp.abspath(args.work_dir)
        self.data_root = osp.abspath(args.data_root or osp.join(
            REPO, 'data', 'dap_demo_quick' if args.quick else 'dap_demo'))
        self.shots = tuple(args.shots or preset['shots'])
        self.seeds = tuple(range(args.seeds or preset['seeds']))
        self.data_seed = args.data_seed
        cpus = os.cpu_count() or 1
        self.workers = max(1, args.workers or min(2, cpus))
        self.threads = max(1, cpus // self.workers)
        self.logs = osp.join(self.work_dir, 'logs')
        self.timings: Dict[str, float] = {}
        os.makedirs(self.logs, exist_ok=True)

    # ---------------------------------------------------------- helpers
    def env(self, threads: int) -> Dict[str, str]:
        env = dict(os.environ)
        env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
        for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
            env[var] = str(threads)
        # spinning OpenMP threads starve each other on a busy machine
        env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
        return env

    @property
    def mini_imagenet(self) -> str:
        return osp.join(self.data_root, 'mini_imagenet')

    @property
    def voc_year(self) -> str:
        return osp.join(self.data_root, 'mini_voc', 'VOCdevkit', 'VOC2007')

    def _data_options(self) -> List[str]:
        rel = osp.relpath(self.data_root, REPO)
        return [rel]

    # ----------------------------------------------------------- stages
    def stage_data(self) -> Stage:
        from projects.dap.dap.demo import benchmark
        with open(benchmark.__file__, 'rb') as f:
            code = hashlib.sha256(f.read()).hexdigest()
        stage = Stage(osp.join(self.work_dir, 'step0_data'), plain_hash(
            dict(data=self.preset['data'], seed=self.data_seed, code=code,
                 root=self.data_root)))
        header('[data] generating mini-ImageNet and mini-VOC '
               f'(seed {self.data_seed}) in {self.data_root}')
        if stage.done():
            print('  done before, skipped')
            return stage
        stage.start()
        t = time.time()
        if osp.isdir(self.data_root):
            shutil.rmtree(self.data_root)
        paths = benchmark.make_demo_data(self.data_root, seed=self.data_seed,
                                         **self.preset['data'])
        print(f'  {self.preset["data"]} written in {time.time() - t:.0f}s')
        stage.finish(dict(paths=paths))
        return stage

    def stage_classifier(self, upstream: Stage) -> Stage:
        options = [
            f'train_dataloader.dataset.data_root={self.mini_imagenet}',
            f'val_dataloader.dataset.data_root={self.mini_imagenet}',
            f'test_dataloader.dataset.data_root={self.mini_imagenet}',
            f'train_cfg.max_epochs={self.preset["classifier_epochs"]}',
            f'train_cfg.val_interval={self.preset["classifier_epochs"]}',
            f'param_scheduler.1.T_max={self.preset["classifier_epochs"]}',
            'randomness.seed=0',
        ]
        stage = Stage(osp.join(self.work_dir, 'step1_classifier'),
                      config_hash(CONFIGS['classifier'], options,
                                  upstream.digest))
        header('[step 1/4] training the classifier (mmpretrain ResNet-18, '
               'half width) on mini-ImageNet: tools/train.py')
        if stage.done():
            print(f'  done before, skipped ({stage.result()})')
            return stage
        stage.start()
        run_tool(['tools/train.py', CONFIGS['classifier'], '--work-dir',
                  stage.dir, '--cfg-options', *options],
                 osp.join(self.logs, 'step1_classifier.log'),
                 self.env(os.cpu_count() or 1),
                 Progress(1, 'classifier'),
                 max_epochs=self.preset['classifier_epochs'])
        ckpt = osp.join(stage.dir, 'classifier.pth')
        shutil.copyfile(last_checkpoint(stage.dir), ckpt)
        acc = read_metrics(stage.dir, 'accuracy/top1')['accuracy/top1']
        print(f'  val top-1 accuracy {acc:.1f}% -> {ckpt}')
        stage.finish(dict(checkpoint=ckpt, val_top1=acc))
        return stage

    def stage_pseudo_boxes(self, upstream: Stage) -> Stage:
        ckpt = upstream.result()['checkpoint']
        options = [f'test_dataloader.dataset.data_root={self.mini_imagenet}']
        stage = Stage(osp.join(self.work_dir, 'step2_pseudo_boxes'),
                      config_hash(CONFIGS['cam'], options, upstream.digest))
        header('[step 2/4] CAM pseudo boxes on mini-ImageNet with the '
               'CAM-box hook: tools/generate_pseudo_boxes.py')
        if stage.done():
            print('  done before, skipped')
            return stage
        stage.start()
        box_file = osp.join(stage.dir, 'pseudo_boxes.dapbox')
        env = self.env(os.cpu_count() or 1)
        run_tool(['tools/generate_pseudo_boxes.py', CONFIGS['cam'],
                  '--checkpoint', ckpt, '--work-dir', stage.dir, '--out',
                  box_file, '--cfg-options', *options],
                 osp.join(self.logs, 'step2_generate_pseudo_boxes.log'), env,
                 Progress(1, 'CAM boxes'))
        true_boxes = osp.join(self.mini_imagenet, 'meta', 'train_boxes.json')
        quality = osp.join(stage.dir, 'quality.json')
        run_tool(['tools/analysis_tools/eval_pseudo_boxes.py', box_file,
                  true_boxes, '--out', quality],
                 osp.join(self.logs, 'step2_eval_pseudo_boxes.log'), env)
        run_tool(['tools/analysis_tools/browse_pseudo_boxes.py', box_file,
                  '--data-root', osp.join(self.mini_imagenet, 'train'),
                  '--out-dir', osp.join(stage.dir, 'browse'), '--num', '8',
                  '--random', '--config', CONFIGS['cam'], '--checkpoint',
                  ckpt], osp.join(self.logs, 'step2_browse.log'), env)
        with open(quality) as f:
            q = json.load(f)
        print(f'  {q["num_images"]} images, {q["boxes_per_image"]:.2f} '
              'boxes/image; GT-known acc@0.5 '
              f'{100 * q["gt_known_acc@0.5"]:.1f}%, recall@0.5 '
              f'{100 * q["recall@0.5"]:.1f}%, precision@0.5 '
              f'{100 * q["precision@0.5"]:.1f}%')
        stage.finish(dict(box_file=box_file, quality=q,
                          true_boxes=true_boxes, checkpoint=ckpt))
        return stage

    def stage_dap(self, classifier: Stage, boxes: Stage) -> Stage:
        iters = self.preset['dap_iters']
        options = [
            f'model.backbone.init_cfg.checkpoint='
            f'{classifier.result()["checkpoint"]}',
            f'train_dataloader.dataset.data_root={self.mini_imagenet}/',
            f'train_dataloader.dataset.box_file='
            f'{boxes.result()["box_file"]}',
            f'train_cfg.max_iters={iters}',
            f'param_scheduler.0.end={max(1, iters // 5)}',
            f'default_hooks.checkpoint.interval={iters}',
            'randomness.seed=0',
        ]
        stage = Stage(osp.join(self.work_dir, 'step3_dap_pretrain'),
                      config_hash(CONFIGS['dap'], options,
                                  [classifier.digest, boxes.digest]))
        header('[step 3/4] DAP pre-training: Faster R-CNN on the pseudo '
               'boxes (ImageNetPseudoBoxDataset): tools/train.py')
        if stage.done():
            print('  done before, skipped')
            return stage
        stage.start()
        run_tool(['tools/train.py', CONFIGS['dap'], '--work-dir', stage.dir,
                  '--cfg-options', *options],
                 osp.join(self.logs, 'step3_dap_pretrain.log'),
                 self.env(os.cpu_count() or 1), Progress(iters, 'DAP'))
        ckpt = osp.join(stage.dir, 'dap_detector.pth')
        shutil.copyfile(last_checkpoint(stage.dir), ckpt)
        print(f'  -> {ckpt}')
        stage.finish(dict(checkpoint=ckpt))
        return stage

    def finetune_spec(self, classifier: Stage, dap: Stage):
        """Step 4 as a sweep of the low-data study's engine (the code path
        of tools/fewshot_sweep.py): the demo's configs, data and
        schedule."""
        from projects.dap.dap.fewshot.runs import InitSpec
        from projects.dap.dap.fewshot.sweep import SweepSpec
        voc_root = osp.dirname(self.voc_year) + '/'
        epochs = self.preset['finetune_epochs']
        options = {
            'train_dataloader.dataset.data_root': voc_root,
            'val_dataloader.dataset.data_root': voc_root,
            'test_dataloader.dataset.data_root': voc_root,
            'train_cfg.max_epochs': epochs,
            'train_cfg.val_interval': epochs,
            'param_scheduler.1.end': epochs,
            'param_scheduler.1.milestones': [max(1, (2 * epochs) // 3)],
            'default_hooks.checkpoint.interval': epochs,
            'fewshot.min_iters': self.preset['fewshot_min_iters'],
        }
        inits = [
            InitSpec('dap', osp.join(REPO, CONFIGS['ft_dap_few']),
                     osp.join(REPO, CONFIGS['ft_dap']),
                     {'load_from': dap.result()['checkpoint']}),
            InitSpec('cls', osp.join(REPO, CONFIGS['ft_cls_few']),
                     osp.join(REPO, CONFIGS['ft_cls']),
                     {'model.backbone.init_cfg.checkpoint':
                      classifier.result()['checkpoint']}),
        ]
        return SweepSpec(
            work_dir=osp.join(self.work_dir, 'step4_finetune'), inits=inits,
            shots=self.shots, seeds=self.seeds, full=True, options=options,
            launcher='train', jobs=self.workers, env=self.env(self.threads),
            on_change='restart', keep_checkpoints=False, quiet=True,
            title='DAP demo, step 4: DAP vs CLS on mini-VOC',
            description='Made by the demo through the engine of '
            '`tools/fewshot_sweep.py`.', ylabel='mini-VOC test AP50 (%)',
            full_label='full trainval')

    def stage_finetune(self, classifier: Stage, dap: Stage) -> List[dict]:
        from projects.dap.dap.fewshot.sweep import SweepError, run_sweep
        spec = self.finetune_spec(classifier, dap)
        runs = (len(self.shots) + 1) * len(self.seeds) * len(spec.inits)
        header(f'[step 4/4] fine-tuning DAP and CLS inits on mini-VOC: '
               f'{runs} runs (k={list(self.shots)} + full, seeds '
               f'{list(self.seeds)}), {self.workers} at a time: '
               'the low-data sweep (tools/fewshot_sweep.py\'s engine) runs '
               'tools/train.py, evaluated on mini-VOC test')
        progress = Progress(runs, 'fine-tune runs')
        try:
            outcome = run_sweep(spec, progress=lambda done, total, note:
                                progress.update(done, note))
        except (SweepError, OSError, ValueError) as e:
            raise ToolError(f'step 4: {e}') from None
        progress.close()
        if outcome.counts['finished'] == runs:
            print('  every run had finished before: nothing to run')
        if outcome.failed:
            raise ToolError(f'{len(outcome.failed)} fine-tuning runs failed;'
                            f' first:\n{outcome.failed[0]}')
        return outcome.results

    def stage_report(self, classifier: Stage, boxes: Stage, dap: Stage,
                     results: List[dict]) -> str:
        from projects.dap.dap.demo import report
        from projects.dap.dap.fewshot import report as study
        from projects.dap.dap.fewshot.stats import compare
        header('[report] writing the summary')
        grouped = study.group_results(results)
        plot = osp.join(self.work_dir, 'ap_vs_shots.png')
        study.plot_ap_vs_shots(grouped, plot, 'AP50',
                               'mini-VOC test AP50 (%)', 'full trainval')
        cams = osp.join(self.work_dir, 'cam_examples.png')
        box_res = boxes.result()
        report.draw_cam_examples(
            box_res['box_file'], osp.join(REPO, CONFIGS['cam']),
            box_res['checkpoint'], osp.join(self.mini_imagenet, 'train'),
            box_res['true_boxes'], cams)
        text = report.render_report(
            preset=self.preset_name,
            classifier=classifier.result(),
            quality=box_res['quality'],
            trivial=report.trivial_box_accuracy(box_res['true_boxes']),
            results=grouped,
            timings=self.timings,
            settings=dict(workers=self.workers, threads=self.threads,
                          data=self.preset['data'], shots=self.shots,
                          seeds=self.seeds,
                          classifier_epochs=self.preset[
                              'classifier_epochs'],
                          dap_iters=self.preset['dap_iters'],
                          finetune_epochs=self.preset['finetune_epochs'],
                          fewshot_min_iters=self.preset[
                              'fewshot_min_iters']))
        out = osp.join(self.work_dir, 'report.md')
        with open(out, 'w') as f:
            f.write(text)
        summary = dict(
            classifier=classifier.result(), pseudo_boxes=box_res['quality'],
            ap50=compare(grouped, 'AP50'),
            ap=compare(grouped, 'AP'), results=results,
            timings=self.timings)
        with open(osp.join(self.work_dir, 'summary.json'), 'w') as f:
            json.dump(summary, f, indent=1, default=str)
        print(study.results_table(grouped, 'full trainval'))
        print(f'\n  report: {out}\n  plot:   {plot}\n  CAMs:   {cams}')
        return out

    def timed(self, name: str, fn: Callable, *args):
        t = time.time()
        out = fn(*args)
        self.timings[name] = time.time() - t
        return out

    def run(self) -> str:
        start = time.time()
        print(f'DAP demo ({self.preset_name}): work dir {self.work_dir}; '
              f'{self.workers} fine-tuning runs at a time, '
              f'{self.threads} thread(s) each')
        data = self.timed('data', self.stage_data)
        classifier = self.timed('step1', self.stage_classifier, data)
        boxes = self.timed('step2', self.stage_pseudo_boxes, classifier)
        dap = self.timed('step3', self.stage_dap, classifier, boxes)
        results = self.timed('step4', self.stage_finetune, classifier, dap)
        self.timings['total_before_report'] = time.time() - start
        out = self.stage_report(classifier, boxes, dap, results)
        print(f'\nDAP demo finished in {time.time() - start:.0f}s')
        return out


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Run all four DAP steps on a generated benchmark')
    parser.add_argument('--work-dir', default=None,
                        help='default work_dirs/dap_demo (or '
                        'work_dirs/dap_demo_quick with --quick)')
    parser.add_argument('--data-root', default=None,
                        help='where the benchmark is generated (default '
                        'data/dap_demo or data/dap_demo_quick)')
    parser.add_argument('--quick', action='store_true',
                        help='a tiny setting for tests (a few minutes)')
    parser.add_argument('--seeds', type=int, default=None,
                        help='fine-tuning seeds per setting')
    parser.add_argument('--shots', type=int, nargs='+', default=None,
                        help='k-shot settings (images per class)')
    parser.add_argument('--data-seed', type=int, default=0,
                        help='seed of the generated benchmark')
    parser.add_argument('--workers', type=int, default=None,
                        help='fine-tuning runs at a time (default: 2 when '
                        'there are 2+ CPU cores)')
    args = parser.parse_args(argv)
    if args.work_dir is None:
        args.work_dir = osp.join(
            REPO, 'work_dirs', 'dap_demo_quick' if args.quick else
            'dap_demo')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        Demo(args).run()
    except ToolError as e:
        print(f'\nerror: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
