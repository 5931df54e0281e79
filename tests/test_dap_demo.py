"""The main job (tools/run_dap_demo.py) and its generated benchmark."""
import collections
import filecmp
import json
import os
import os.path as osp

import numpy as np
import pytest
from conftest import REPO, run_tool
from PIL import Image

from projects.dap.dap.demo import (DOWNSTREAM_CLASSES, PRETRAIN_CLASSES,
                                   make_mini_imagenet, make_mini_voc,
                                   read_voc_boxes)
from projects.dap.dap.fewshot.stats import compare, mean_sd


def _files(root):
    out = []
    for d, _, names in os.walk(root):
        out += [osp.relpath(osp.join(d, n), root) for n in names]
    return sorted(out)


def test_generator_is_deterministic(tmp_path):
    a, b, c = tmp_path / 'a', tmp_path / 'b', tmp_path / 'c'
    for root, seed in ((a, 3), (b, 3), (c, 4)):
        make_mini_imagenet(
            str(root), images_per_class=2, val_per_class=1, seed=seed)
        make_mini_voc(str(root / 'voc'), num_trainval=3, num_test=2, seed=seed)
    files = _files(a)
    assert files == _files(b) == _files(c)
    _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors
    _, mismatch, _ = filecmp.cmpfiles(a, c, files, shallow=False)
    assert any(f.endswith('.JPEG') for f in mismatch)


def test_mini_imagenet_boxes_and_balance(tmp_path):
    out = make_mini_imagenet(
        str(tmp_path), images_per_class=3, val_per_class=2, seed=0)
    with open(out['train_list']) as f:
        lines = [line.split() for line in f if line.strip()]
    labels = collections.Counter(int(label) for _, label in lines)
    assert labels == {k: 3 for k in range(len(PRETRAIN_CLASSES))}
    for key, label in lines:  # the class folder is the label's class
        assert key.split('/')[0] == PRETRAIN_CLASSES[int(label)]
    with open(out['train_true_boxes']) as f:
        coco = json.load(f)
    assert len(coco['images']) == len(lines)
    sizes = {im['id']: im for im in coco['images']}
    for ann in coco['annotations']:
        im = sizes[ann['image_id']]
        x, y, w, h = ann['bbox']
        assert w > 4 and h > 4
        assert 0 <= x and x + w <= im['width']
        assert 0 <= y and y + h <= im['height']
        with Image.open(tmp_path / 'train' / im['file_name']) as img:
            assert img.size == (im['width'], im['height'])
            assert img.format == 'JPEG'


def test_mini_voc_boxes_and_balance(tmp_path):
    out = make_mini_voc(
        str(tmp_path),
        num_trainval=10,
        num_test=4,
        image_size=(128, 112),
        seed=1)
    counts = collections.Counter()
    for split, n in (('trainval', 10), ('test', 4)):
        with open(out[split]) as f:
            names = f.read().split()
        assert len(names) == n
        for name in names:
            boxes, kinds = read_voc_boxes(
                osp.join(out['year_dir'], 'Annotations', f'{name}.xml'))
            assert 2 <= len(boxes) <= 4
            assert set(kinds) <= set(DOWNSTREAM_CLASSES)
            assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
            assert (boxes[:, 2] <= 128).all() and (boxes[:, 3] <= 112).all()
            assert (boxes[:, 2] > boxes[:, 0]).all()
            counts.update(kinds)
    # round-robin classes: object counts differ by at most one
    assert set(counts) == set(DOWNSTREAM_CLASSES)
    assert max(counts.values()) - min(counts.values()) <= 1


def test_compare_hand_computed():
    results = {
        ('dap', '5shot'): [dict(AP50=40.), dict(AP50=44.)],
        ('cls', '5shot'): [dict(AP50=30.), dict(AP50=31.)],
        ('dap', 'full'): [dict(AP50=70.), dict(AP50=60.)],
        ('cls', 'full'): [dict(AP50=66.), dict(AP50=66.)],
    }
    m, s = mean_sd([40., 44.])
    assert m == 42. and s == pytest.approx(np.sqrt(8.))
    rows = {r['setting']: r for r in compare(results, 'AP50')}
    assert list(rows) == ['5shot', 'full']
    assert rows['5shot']['gap'] == pytest.approx(11.5)
    assert rows['5shot']['beats']  # 11.5 > 2.83 + 0.71
    assert not rows['full']['beats']  # -1 gap


def test_quick_pipeline_end_to_end(tmp_path):
    work, data = tmp_path / 'work', tmp_path / 'data'
    args = [
        'tools/run_dap_demo.py', '--quick', '--work-dir', work, '--data-root',
        data
    ]
    proc = run_tool(args, cwd=REPO, timeout=1200)
    for stage in ('[data]', '[step 1/4]', '[step 2/4]', '[step 3/4]',
                  '[step 4/4]', '[report]'):
        assert stage in proc.stdout
    report = (work / 'report.md').read_text()
    for text in ('GT-known box accuracy', 'DAP AP50', 'CLS AP50', '5-shot',
                 'full trainval', 'Verdict'):
        assert text in report
    for png in ('ap_vs_shots.png', 'cam_examples.png'):
        with Image.open(work / png) as img:
            assert img.size[0] > 100
    summary = json.loads((work / 'summary.json').read_text())
    boxes = summary['pseudo_boxes']
    assert boxes['num_images'] == 8 * 24 and boxes['num_boxes'] > 0
    for key in ('gt_known_acc@0.5', 'recall@0.5', 'precision@0.5',
                'maxboxacc_v2_style'):
        assert 0.0 <= boxes[key] <= 1.0
    assert 0.0 <= summary['classifier']['val_top1'] <= 100.0
    runs = summary['results']
    seen = {(r['init'], r['setting'], r['seed']) for r in runs}
    assert seen == {(i, s, seed)
                    for i in ('dap', 'cls')
                    for s in ('5shot', 'full')
                    for seed in (0, 1)}
    for r in runs:
        assert 0.0 <= r['AP50'] <= 100.0 and 0.0 <= r['AP'] <= 100.0
        assert r['AP'] <= r['AP50'] + 1e-6
    for row in summary['ap50']:
        assert row['dap_n'] == row['cls_n'] == 2
    # each stage trained the config it saved: the quick preset's lengths
    from mmengine.config import Config
    step1 = Config.fromfile(
        str(work / 'step1_classifier' / 'resnet18-w32_mini-imagenet.py'))
    assert step1.train_cfg.max_epochs == 1
    assert step1.train_dataloader.dataset.data_root == str(data /
                                                           'mini_imagenet')
    progress = json.loads(
        (work / 'step3_dap_pretrain' / 'progress.json').read_text())
    assert progress['done'] == progress['total'] == 12
    assert '12 iterations at batch 8' in report
    assert '8 classes' in report and '5 classes -- 3 seen' in report
    # a rerun resumes: every stage and run is found finished, nothing runs
    logs = {p: p.stat().st_mtime_ns for p in (work / 'logs').iterdir()}
    proc = run_tool(args, cwd=REPO, timeout=600)
    assert proc.stdout.count('done before, skipped') == 4
    assert {p: p.stat().st_mtime_ns for p in (work / 'logs').iterdir()} == logs


# ------------------------------------------------------ presets and configs
def _demo_cfg(name):
    from mmengine.config import Config
    return Config.fromfile(osp.join(REPO, 'configs', 'demo', name))


def test_default_demo_trains_its_configs_as_they_stand():
    """The default run's settings, each stated once in a demo config (the
    numbers the README's results were made with)."""
    from projects.dap.dap.demo import load_preset
    preset = load_preset(REPO, 'default')
    assert 'train_length' not in preset
    assert preset.get('fewshot_min_iters') is None
    assert preset.shots == (5, 10, 20) and preset.seeds == 3
    cls = _demo_cfg('resnet18-w32_mini-imagenet.py')
    assert cls.train_cfg.max_epochs == cls.train_cfg.val_interval == 12
    assert cls.param_scheduler[1].T_max == 12
    assert cls.randomness.seed == 0
    dap = _demo_cfg('dap_faster-rcnn_r18-w32_fpn_mini-imagenet.py')
    assert dap.train_cfg.max_iters == 250
    assert dap.param_scheduler[0].end == 50  # warm-up: the first fifth
    assert dap.default_hooks.checkpoint.interval == 250
    for init in ('dap', 'cls'):
        ft = _demo_cfg(f'faster-rcnn_r18-w32_fpn_{init}_mini-voc.py')
        assert ft.train_cfg.max_epochs == ft.train_cfg.val_interval == 3
        assert ft.param_scheduler[1].end == 3
        assert ft.param_scheduler[1].milestones == [2]
        few = _demo_cfg(f'faster-rcnn_r18-w32_fpn_{init}_mini-voc-fewshot.py')
        assert few.fewshot.min_iters == 128
        assert few.fewshot.checkpoint_interval == 500  # the real block's


def test_demo_detector_block_is_shared_by_steps_3_and_4():
    dap = _demo_cfg('dap_faster-rcnn_r18-w32_fpn_mini-imagenet.py').model
    ft = _demo_cfg('faster-rcnn_r18-w32_fpn_dap_mini-voc.py').model
    for part in ('neck', 'rpn_head', 'data_preprocessor', 'train_cfg',
                 'test_cfg'):
        assert dap[part] == ft[part], part
    assert dap.neck.in_channels == ft.neck.in_channels == [32, 64, 128, 256]
    assert dap.backbone.depth == ft.backbone.depth == 18
    assert dap.roi_head.bbox_head.num_classes == 8
    assert ft.roi_head.bbox_head.num_classes == 5
    assert dap.backbone.init_cfg.type == 'Pretrained'


def test_set_train_length_hand_computed():
    from mmengine.config import Config

    from projects.dap.dap.demo import set_train_length
    cfg = Config(
        dict(
            train_cfg=dict(max_epochs=10, val_interval=2),
            default_hooks=dict(checkpoint=dict(interval=10)),
            param_scheduler=[
                dict(type='LinearLR', by_epoch=False, begin=0, end=50),
                dict(
                    type='MultiStepLR',
                    by_epoch=True,
                    begin=0,
                    end=10,
                    milestones=[5, 8]),
                dict(type='CosineAnnealingLR', T_max=10, begin=1)
            ]))
    set_train_length(cfg, 4)
    assert cfg.train_cfg.max_epochs == 4
    assert cfg.train_cfg.val_interval == 2  # not tied to the length
    assert cfg.default_hooks.checkpoint.interval == 4
    linear, step, cosine = cfg.param_scheduler
    assert linear.end == 50  # iterations: another unit
    assert step.begin == 0 and step.end == 4
    assert step.milestones == [2, 3]  # 5 * 0.4, round(8 * 0.4)
    assert cosine.T_max == 4 and cosine.begin == 1  # max(1, round(0.4))
    iters = Config(
        dict(
            train_cfg=dict(type='IterBasedTrainLoop', max_iters=250),
            param_scheduler=dict(type='LinearLR', by_epoch=False, end=50)))
    set_train_length(iters, 12)
    assert iters.train_cfg.max_iters == 12
    assert iters.param_scheduler.end == 2  # round(50 * 12 / 250)
    with pytest.raises(ValueError):
        set_train_length(iters, 0)


def test_quick_preset_gives_the_quick_schedules():
    from projects.dap.dap.demo import load_preset, set_train_length
    quick = load_preset(REPO, 'quick')
    assert quick.shots == (5, ) and quick.seeds == 2
    cls = _demo_cfg('resnet18-w32_mini-imagenet.py')
    set_train_length(cls, quick.train_length.classifier)
    assert cls.train_cfg.max_epochs == cls.param_scheduler[1].T_max == 1
    assert cls.param_scheduler[0].end == 30
    dap = _demo_cfg('dap_faster-rcnn_r18-w32_fpn_mini-imagenet.py')
    set_train_length(dap, quick.train_length.dap)
    assert dap.train_cfg.max_iters == 12 and dap.param_scheduler[0].end == 2
    ft = _demo_cfg('faster-rcnn_r18-w32_fpn_dap_mini-voc.py')
    set_train_length(ft, quick.train_length.finetune)
    assert ft.train_cfg.max_epochs == ft.train_cfg.val_interval == 1
    assert ft.param_scheduler[1].milestones == [1]
    assert ft.param_scheduler[1].end == 1
    assert ft.param_scheduler[0].end == 50
    with pytest.raises(FileNotFoundError):
        load_preset(REPO, 'no-such-preset')


# ------------------------------------------------------------- progress
class _Runner:

    def __init__(self, work_dir, max_iters=5, test_batches=3):
        self.work_dir, self.iter, self.max_iters = work_dir, 0, max_iters
        self.test_dataloader = [None] * test_batches


def test_progress_file_hook_writes_done_and_total(tmp_path):
    import torch

    from projects.dap.dap.demo import ProgressFileHook, read_progress
    runner = _Runner(str(tmp_path))
    hook = ProgressFileHook(interval=2)
    assert read_progress(str(tmp_path)) is None
    seen = []
    for it in range(5):
        runner.iter = it
        hook.after_train_iter(
            runner, it, outputs=dict(loss=torch.tensor(0.25 * it)))
        state = read_progress(str(tmp_path))
        seen.append(None if state is None else state['done'])
    # every second iteration, and the last one
    assert seen == [None, 2, 2, 4, 5]
    assert read_progress(str(tmp_path)) == dict(done=5, total=5, loss=1.0)
    for batch in range(3):
        ProgressFileHook().after_test_iter(runner, batch)
    assert read_progress(str(tmp_path)) == dict(done=3, total=3, loss=None)
    with pytest.raises(ValueError):
        ProgressFileHook(interval=0)


# ---------------------------------------------------------------- report
def test_report_facts_come_from_the_configs_and_data(tmp_path):
    from projects.dap.dap.demo import report, set_train_length
    paths = make_mini_imagenet(
        str(tmp_path / 'in'), images_per_class=1, val_per_class=1, seed=0)
    paths.update(
        make_mini_voc(
            str(tmp_path / 'voc'), num_trainval=12, num_test=1, seed=0))
    configs = {
        key: _demo_cfg(name)
        for key, name in (('classifier', 'resnet18-w32_mini-imagenet.py'),
                          ('dap',
                           'dap_faster-rcnn_r18-w32_fpn_mini-imagenet.py'),
                          ('finetune_dap',
                           'faster-rcnn_r18-w32_fpn_dap_mini-voc.py'),
                          ('finetune_dap_fewshot',
                           'faster-rcnn_r18-w32_fpn_dap_mini-voc-fewshot.py'))
    }
    set_train_length(configs['dap'], 40)
    configs['finetune_dap'].train_dataloader.batch_size = 2
    data = dict(
        images_per_class=1, val_per_class=1, num_trainval=12, num_test=1)
    facts = report.run_facts(configs, data, paths)
    counts = [
        len(
            read_voc_boxes(
                osp.join(paths['year_dir'], 'Annotations',
                         f'trainval_{i:05d}.xml'))[0]) for i in range(12)
    ]
    assert 2 <= min(counts) < max(counts) <= 4  # the generator's 2-4
    assert facts['objects'] == dict(
        imagenet='1', voc=f'{min(counts)}-{max(counts)}')
    assert (facts['pretrain_classes'], facts['downstream_classes'],
            facts['seen_classes']) == (8, 5, 3)
    assert (facts['classifier_epochs'], facts['classifier_batch']) == (12, 32)
    assert (facts['dap_iters'], facts['dap_batch']) == (40, 8)
    assert (facts['finetune_epochs'], facts['finetune_batch']) == (3, 2)
    assert (facts['fewshot_min_iters'], facts['fewshot_batch']) == (128, 4)


def test_stage_runs_once_per_hash_of_its_inputs(tmp_path, capsys):
    from projects.dap.dap.demo.stages import run_stage
    calls = []

    def work(folder):
        calls.append(folder)
        with open(osp.join(folder, 'out.txt'), 'w') as f:
            f.write(str(len(calls)))
        return dict(n=len(calls))

    folder = str(tmp_path / 'stage')
    first = run_stage(folder, '[one]', dict(cfg=1), work)
    assert first['n'] == 1 and '[one]' in capsys.readouterr().out
    again = run_stage(folder, '[one]', dict(cfg=1), work)
    assert again == first and len(calls) == 1
    assert 'done before, skipped' in capsys.readouterr().out
    (tmp_path / 'stage' / 'stale.txt').write_text('from the old run')
    changed = run_stage(folder, '[one]', dict(cfg=2), work)
    assert changed['n'] == 2 and changed['digest'] != first['digest']
    assert 'skipped' not in capsys.readouterr().out
    # a changed stage starts from an empty folder
    assert sorted(os.listdir(folder)) == ['.stage.json', 'out.txt']
    # an unfinished stage (no marker) runs again
    os.remove(osp.join(folder, '.stage.json'))
    assert run_stage(folder, '[one]', dict(cfg=2), work)['n'] == 3


def test_demo_configs_fill_paths_and_apply_the_preset():
    from projects.dap.dap.demo import DemoConfigs, load_preset
    quick = DemoConfigs(REPO, load_preset(REPO, 'quick'))
    few = quick.build('finetune_dap_fewshot', '/d/voc/',
                      {'load_from': '/w/dap.pth'})
    assert few.load_from == '/w/dap.pth'
    assert few.train_dataloader.dataset.data_root == '/d/voc/'
    assert few.test_dataloader.dataset.data_root == '/d/voc/'
    assert few.fewshot.min_iters == 6  # the preset's floor, not 128
    assert few.train_cfg.max_epochs == 1  # train_length.finetune
    full = quick.build('finetune_cls', '/d/voc/')
    assert full.get('fewshot') is None and full.train_cfg.max_epochs == 1
    cam = quick.build('cam', '/d/in')  # no train length for step 2
    assert cam.test_dataloader.dataset.data_root == '/d/in'
    assert list(quick.built) == ['finetune_dap_fewshot', 'finetune_cls', 'cam']
    assert quick.built['cam'] is cam
    default = DemoConfigs(REPO, load_preset(REPO, 'default'))
    cls = default.build('classifier', '/d/in')
    assert cls.train_cfg.max_epochs == cls.param_scheduler[1].T_max == 12
    few = default.build('finetune_cls_fewshot', '/d/')
    assert few.fewshot.min_iters == 128


def test_pipeline_times_stages_and_logs_tools(tmp_path, monkeypatch):
    from projects.dap.dap.demo import stages
    monkeypatch.setenv('OMP_WAIT_POLICY', 'ACTIVE')
    env = stages.tool_env('/repo', threads=3)
    assert env['PYTHONPATH'].split(os.pathsep)[0] == '/repo'
    assert env['OMP_NUM_THREADS'] == env['MKL_NUM_THREADS'] == '3'
    assert env['OMP_WAIT_POLICY'] == 'ACTIVE'  # the caller's choice wins
    pipe = stages.Pipeline(str(tmp_path / 'work'), REPO)
    assert osp.isdir(tmp_path / 'work' / 'logs')
    out = pipe.stage('step2_pseudo_boxes', '[two]', {}, lambda f: dict(f=f))
    assert out['f'] == str(tmp_path / 'work' / 'step2_pseudo_boxes')
    assert list(pipe.timings) == ['pseudo_boxes']
    code = 'import os, sys; print(os.environ["OMP_NUM_THREADS"]); sys.exit(3)'
    with pytest.raises(stages.ToolError, match='exited with 3'):
        pipe.tool('probe', ['-c', code])
    log = (tmp_path / 'work' / 'logs' / 'probe.log').read_text()
    assert log.splitlines()[-1] == str(os.cpu_count())
