"""tools/fewshot_sweep.py: the k-shot x seeds x {DAP, CLS} study, as a user
runs it, on generated mini-VOC (and COCO) data with the demo's tiny
detector.

The report's numbers are recomputed here from the runs' own metric logs;
a run killed mid-way must be resumed (its second mmengine run starts after
the checkpoint), and a call after everything finished must run nothing.
"""
import csv
import json
import math
import os
import os.path as osp
import random
import signal
import statistics
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO, run_tool
from mmengine.config import Config

TOOL = osp.join(REPO, 'tools', 'fewshot_sweep.py')
DEMO = osp.join(REPO, 'configs', 'demo')
FINETUNE = osp.join(REPO, 'configs', 'finetune')
SHOTS, SEEDS, MIN_ITERS, EPOCHS = (1, 2), (0, 1), 8, 10


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """mini-VOC, a random 'DAP' step-3 detector and a 'classifier'."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import projects.dap.dap  # noqa: F401
    from projects.dap.dap.demo import make_mini_voc

    root = tmp_path_factory.mktemp('sweep')
    make_mini_voc(str(root / 'data'), num_trainval=16, num_test=6, seed=0)
    cfg = Config.fromfile(
        osp.join(DEMO, 'dap_faster-rcnn_r18-w32_fpn_mini-imagenet.py'))
    cfg.model.backbone.init_cfg = None
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    state = model.state_dict()
    torch.save(dict(meta={}, state_dict=state), root / 'dap.pth')
    backbone = {
        k: v * 0.5 if v.is_floating_point() else v
        for k, v in state.items() if k.startswith('backbone.')
    }
    torch.save(dict(meta={}, state_dict=backbone), root / 'cls.pth')
    return root


def _args(root, *extra):
    voc = str(root / 'data' / 'VOCdevkit') + '/'
    return [
        TOOL, 'voc07', '--work-dir', root / 'sweep', '--dap-config',
        osp.join(DEMO, 'faster-rcnn_r18-w32_fpn_dap_mini-voc-fewshot.py'),
        '--cls-config',
        osp.join(DEMO, 'faster-rcnn_r18-w32_fpn_cls_mini-voc-fewshot.py'),
        '--dap-checkpoint', root / 'dap.pth', '--cls-checkpoint',
        root / 'cls.pth', '--shots', *SHOTS, '--seeds', *SEEDS,
        '--cfg-options', f'train_dataloader.dataset.data_root={voc}',
        f'val_dataloader.dataset.data_root={voc}',
        f'test_dataloader.dataset.data_root={voc}',
        f'train_cfg.max_epochs={EPOCHS}', f'param_scheduler.1.end={EPOCHS}',
        'param_scheduler.1.milestones=[5]', f'fewshot.min_iters={MIN_ITERS}',
        'fewshot.checkpoint_interval=2', 'default_hooks.logger.interval=1',
        *extra
    ]


def _records(run_dir):
    """(timestamp dir, record) of every metric-log line, oldest first."""
    out = []
    for stamp in sorted(os.listdir(run_dir)):
        path = osp.join(run_dir, stamp, 'vis_data', 'scalars.json')
        if osp.isfile(path):
            with open(path) as f:
                out += [(stamp, json.loads(line)) for line in f
                        if line.strip()]
    return out


def _lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _rewrite_metrics(path, rng):
    """Give every AP50 / AP record in ``path`` new, distinct values."""
    records = _lines(path)
    for record in records:
        if 'pascal_voc/AP50' in record:
            record['pascal_voc/AP50'] = round(rng.uniform(0.2, 0.8), 4)
            record['pascal_voc/mAP'] = round(
                record['pascal_voc/AP50'] * rng.uniform(0.3, 0.6), 4)
    path.write_text(''.join(json.dumps(r) + '\n' for r in records))


def _kill_mid_run(args, sweep):
    """Start the sweep and kill it (and its training) after the first
    intermediate checkpoint of the first run; return that run's dir."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.Popen(
        [sys.executable] + [str(a) for a in args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True)
    run_dir = sweep / 'dap_1shot_seed0'
    marker = run_dir / 'last_checkpoint'
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if marker.is_file() and marker.read_text().strip().endswith(
                    '.pth'):
                break
            time.sleep(0.02)
        else:
            pytest.fail('no checkpoint appeared in the first run')
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return run_dir


def test_sweep_runs_resumes_skips_and_reports(workspace):
    args = _args(workspace, '--jobs', '2')
    sweep = workspace / 'sweep'
    killed = _kill_mid_run(_args(workspace, '--jobs', '1'), sweep)
    ckpt = killed.joinpath('last_checkpoint').read_text().strip()
    steps_before = {r['step'] for _, r in _records(killed) if 'loss' in r}
    assert not ckpt.endswith(f'iter_{MIN_ITERS}.pth'), 'killed too late'

    out = run_tool(args, cwd=REPO, timeout=900).stdout
    assert '1 to resume' in out and f'resume from {ckpt}' in out

    # the killed run went on from its checkpoint: a second mmengine run
    # whose first training step follows the checkpoint's
    saved = int(ckpt.rsplit('_', 1)[1][:-len('.pth')])
    stamps = sorted({s for s, _ in _records(killed)})
    assert len(stamps) == 2
    second = [
        r['step'] for s, r in _records(killed)
        if s == stamps[1] and 'loss' in r
    ]
    assert second and min(second) == saved + 1, (second, steps_before)
    assert max(second) == MIN_ITERS

    # every run: the dumped config is the computed schedule, evaluated once
    # at its last iteration
    computed = set()
    for init in ('dap', 'cls'):
        for k in SHOTS:
            for seed in SEEDS:
                name = f'{init}_{k}shot_seed{seed}'
                run_dir = sweep / name
                split = (
                    workspace / 'data' / 'VOCdevkit' / 'VOC2007' /
                    'ImageSets' / 'Main' / f'trainval_{k}shot_seed{seed}.txt')
                num = len(split.read_text().split())
                iters = max(MIN_ITERS, math.ceil(EPOCHS * num / 4))
                dumped = Config.fromfile(str(run_dir / f'{name}.py'))
                assert dumped.train_cfg == dict(
                    type='IterBasedTrainLoop',
                    max_iters=iters,
                    val_interval=iters)
                assert dumped.param_scheduler[1]['milestones'] == [
                    round(5 * iters / EPOCHS)
                ]
                computed.add(iters)
                assert dumped.train_dataloader.dataset.ann_file == \
                    f'VOC2007/ImageSets/Main/trainval_{k}shot_seed{seed}.txt'
                assert dumped.randomness.seed == seed
                final = [
                    r for _, r in _records(run_dir) if 'pascal_voc/AP50' in r
                ]
                assert len(final) == 1 and final[0]['step'] == iters

    # (the 2-shot splits train longer than the floor: the formula ran)
    assert max(computed) > MIN_ITERS

    # a second call finds everything finished and runs nothing
    logs = {p: p.stat().st_mtime_ns for p in (sweep / 'logs').iterdir()}
    stamps = {p for p in sweep.glob('*/2*')}
    out = run_tool(args, cwd=REPO, timeout=300).stdout
    assert '8 finished (skipped)' in out
    assert {
        p: p.stat().st_mtime_ns
        for p in (sweep / 'logs').iterdir()
    } == logs
    assert {p for p in sweep.glob('*/2*')} == stamps

    # killed during the final evaluation (final checkpoint, no metrics):
    # the next call evaluates that checkpoint, to the same numbers
    run_dir = sweep / 'cls_2shot_seed1'
    before = json.loads((run_dir / 'result.json').read_text())
    (run_dir / 'result.json').unlink()
    for path in run_dir.glob('*/vis_data/scalars.json'):
        kept = [
            line for line in path.read_text().splitlines()
            if 'pascal_voc/AP50' not in line
        ]
        path.write_text('\n'.join(kept) + '\n')
    out = run_tool(args, cwd=REPO, timeout=300).stdout
    assert '1 to evaluate' in out and 'tools/test.py' in (
        sweep / 'logs' / 'cls_2shot_seed1.log').read_text()
    after = json.loads((run_dir / 'result.json').read_text())
    assert after['AP50'] == pytest.approx(before['AP50'], abs=1e-6)
    assert after['AP'] == pytest.approx(before['AP'], abs=1e-6)

    # the report's numbers: distinct metrics written into every run's
    # metric file (trained for a few iterations, these detectors score 0),
    # the records collected again, and the report recomputed here
    rng = random.Random(0)
    for path in sweep.glob('*/2*/2*.json'):  # tools/test.py's record
        _rewrite_metrics(path, rng)
    for path in sweep.glob('*/2*/vis_data/scalars.json'):
        _rewrite_metrics(path, rng)
    for path in sweep.glob('*/result.json'):
        path.unlink()
    out = run_tool(args, cwd=REPO, timeout=300).stdout
    assert '8 finished (skipped)' in out
    runs = {}
    for init in ('dap', 'cls'):
        for k in SHOTS:
            for seed in SEEDS:
                run_dir = sweep / f'{init}_{k}shot_seed{seed}'
                # the training's metric log, or tools/test.py's record
                files = list(run_dir.glob('2*/vis_data/scalars.json')) + \
                    list(run_dir.glob('2*/2*.json'))
                final = [
                    r for p in files for r in _lines(p)
                    if 'pascal_voc/AP50' in r
                ]
                assert len(final) == 1
                runs[(init, k, seed)] = (100 * final[0]['pascal_voc/AP50'],
                                         100 * final[0]['pascal_voc/mAP'])
    assert len({v for v in runs.values()}) == 8

    # the report, recomputed independently
    summary = json.loads((sweep / 'results.json').read_text())
    table = (sweep / 'report.md').read_text()
    for metric, index, rows in (('AP50', 0, summary['ap50']), ('AP', 1,
                                                               summary['ap'])):
        assert [r['setting'] for r in rows] == ['1shot', '2shot']
        for row, k in zip(rows, SHOTS):
            for init in ('dap', 'cls'):
                vals = [runs[(init, k, s)][index] for s in SEEDS]
                assert row[init][0] == pytest.approx(statistics.mean(vals))
                assert row[init][1] == pytest.approx(statistics.stdev(vals))
            diffs = [
                runs[('dap', k, s)][index] - runs[('cls', k, s)][index]
                for s in SEEDS
            ]
            assert row['paired'][0] == pytest.approx(statistics.mean(diffs))
            assert row['paired'][1] == pytest.approx(statistics.stdev(diffs))
            assert row['paired_wins'] == sum(d > 0 for d in diffs)
            cells = (f'{statistics.mean(diffs):+.1f} ± '
                     f'{statistics.stdev(diffs):.1f} '
                     f'({sum(d > 0 for d in diffs)}/2)')
            assert cells in table, (metric, cells)
    with open(sweep / 'results.csv') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    for row in rows:
        ap50, ap = runs[(row['init'], int(row['shot']), int(row['seed']))]
        assert float(row['AP50']) == pytest.approx(ap50)
        assert float(row['AP']) == pytest.approx(ap)

    # a re-made DAP checkpoint at the same path is another study: refused,
    # nothing deleted
    torch.save(dict(meta={}, state_dict={}), workspace / 'dap.pth')
    proc = run_tool(args, cwd=REPO, check=False)
    assert proc.returncode == 1 and 'another config' in proc.stdout
    assert (sweep / 'dap_1shot_seed0' / 'result.json').is_file()


@pytest.mark.parametrize(
    'read_only', [False, True], ids=['beside-the-json', 'split_dir'])
def test_print_mode_coco_splits_and_commands(tmp_path, read_only):
    """COCO: the splits are made beside the json (or, for a read-only
    dataset copy, in fewshot.split_dir), the run configs get the computed
    schedule, and nothing runs with --print."""
    from test_transfer import make_coco
    root = make_coco(tmp_path / 'coco')
    train = osp.join(root, 'annotations', 'train.json')
    ckpt = tmp_path / 'x.pth'
    torch.save({}, ckpt)
    split_dir = str(tmp_path / 'splits')
    out = run_tool(
        [
            TOOL, 'coco', '--work-dir', tmp_path / 'sweep', '--shots', '1',
            '--seeds', '0', '1', '--dap-checkpoint', ckpt, '--cls-checkpoint',
            ckpt, '--launcher', 'dist', '--gpus', '2', '--print',
            '--cfg-options', f'train_dataloader.dataset.data_root={root}',
            'train_dataloader.dataset.ann_file=annotations/train.json',
            'fewshot.min_iters=3'
        ] + ([f'fewshot.split_dir={split_dir}'] if read_only else []),
        cwd=REPO).stdout
    lines = [line for line in out.splitlines() if line.startswith('bash ')]
    assert len(lines) == 4
    made = sorted(os.listdir(osp.join(root, 'annotations')))
    if read_only:  # nothing written into the dataset
        assert made == ['train.json', 'val.json']
    for seed in (0, 1):
        split = osp.join(
            split_dir if read_only else osp.join(root, 'annotations'),
            f'train_1shot_seed{seed}.json')
        with open(split) as f:
            num = len(json.load(f)['images'])
        for init in ('dap', 'cls'):
            name = f'{init}_1shot_seed{seed}'
            cfg = Config.fromfile(
                str(tmp_path / 'sweep' / 'configs' / f'{name}.py'))
            iters = max(3, math.ceil(12 * num / 16))
            assert cfg.train_cfg.max_iters == iters
            assert cfg.param_scheduler[1]['milestones'] == [
                round(8 * iters / 12),
                round(11 * iters / 12)
            ]
            assert cfg.train_dataloader.dataset.ann_file == (
                split
                if read_only else f'annotations/train_1shot_seed{seed}.json')
            assert any(f'dist_train.sh {name}' in line
                       or f'configs/{name}.py 2 --work-dir' in line
                       for line in lines)
    assert osp.isfile(train)
    assert not (tmp_path / 'sweep' / 'dap_1shot_seed0' /
                'result.json').exists()


def test_template_is_refused_by_the_runner(tmp_path):
    """Training a few-shot template without its split's schedule fails
    with the way to run it, before any step."""
    from test_transfer import _toy_runner
    runner = _toy_runner(tmp_path / 'w', fewshot=dict(min_iters=10))
    with pytest.raises(ValueError, match='fewshot_sweep.py'):
        runner.train()


def test_report_hand_computed(tmp_path):
    """Full-data rows, an unpaired seed and a missing AP, by hand."""
    from projects.dap.dap.fewshot.report import (group_results, results_table,
                                                 verdict, write_report)
    from projects.dap.dap.fewshot.stats import compare
    nan = float('nan')
    runs = [
        dict(init='dap', setting='5shot', seed=0, AP50=40., AP=20.),
        dict(init='dap', setting='5shot', seed=1, AP50=44., AP=24.),
        dict(init='dap', setting='5shot', seed=2, AP50=45., AP=nan),
        dict(init='cls', setting='5shot', seed=0, AP50=41., AP=10.),
        dict(init='cls', setting='5shot', seed=1, AP50=35., AP=12.),
        dict(init='dap', setting='full', seed=0, AP50=70., AP=nan),
        dict(init='cls', setting='full', seed=0, AP50=66., AP=nan),
    ]
    grouped = group_results(runs)
    rows = {r['setting']: r for r in compare(grouped, 'AP50')}
    assert list(rows) == ['5shot', 'full']
    five = rows['5shot']
    assert five['dap'][0] == pytest.approx(43.)  # (40 + 44 + 45) / 3
    assert five['dap'][1] == pytest.approx(math.sqrt(7.))  # (9+1+4)/2
    assert five['cls'] == pytest.approx((38., math.sqrt(18.)))
    # paired over seeds 0, 1 only: -1 and +9
    assert five['paired'] == pytest.approx((4., math.sqrt(50.)))
    assert (five['paired_wins'], five['paired_n']) == (1, 2)
    assert not five['beats']  # 5 < 2.65 + 4.24 is false: 5 < 6.89
    ap = {r['setting']: r for r in compare(grouped, 'AP')}
    assert ap['5shot']['dap'] == pytest.approx((22., math.sqrt(8.)))
    assert ap['5shot']['beats']  # 11 > 2.83 + 1.41
    assert math.isnan(ap['full']['dap'][0])
    table = results_table(grouped, 'full trainval')
    assert ('| 5-shot | 2 | 38.0 ± 4.2 | 43.0 ± 2.6 | +5.0 | +4.0 ± 7.1 '
            '(1/2) | 11.0 ± 1.4 | 22.0 ± 2.8 | +11.0 ✓ |') in table
    assert ('| full trainval | 1 | 66.0 ± 0.0 | 70.0 ± 0.0 | +4.0 ✓ | '
            '+4.0 ± 0.0 (1/1) | n/a | n/a | n/a |') in table
    assert 'on 0 of 1 low-data settings; not on: 5shot' in verdict(grouped)
    paths = write_report(
        grouped,
        runs,
        str(tmp_path),
        'T',
        'd',
        'AP50 (%)',
        'full trainval',
        missing=['dap_10shot_seed0'])
    text = open(paths['markdown']).read()
    assert table in text and 'dap_10shot_seed0' in text
    from PIL import Image
    with Image.open(paths['plot']) as img:
        assert img.size[0] > 100
