"""tools/test.py with mmdet's options, its outputs read back by mmdet's tools.

The quick-start config (Faster R-CNN R50-FPN, 4 generated val images) is
trained for 2 iterations; ``--out`` is then read by mmdet's own
``analysis_tools/eval_metric.py`` and ``analyze_results.py`` (shipped in the
mmdet package under ``.mim/tools``), ``--show-dir`` images are checked
against the originals, ``--tta`` against the plain predictions.
"""
import glob
import importlib.util
import os.path as osp
import re

import cv2
import numpy as np
import pytest
from conftest import QUICKSTART, REPO, run_tool

TRAIN = osp.join(REPO, 'tools', 'train.py')
TEST = osp.join(REPO, 'tools', 'test.py')


def mmdet_tool(*parts):
    import mmdet
    path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', *parts)
    if not osp.isfile(path):
        pytest.skip(f'this mmdet package does not ship {path}')
    return path


def _metrics(stdout):
    """``coco/bbox_mAP: 0.0010  coco/bbox_mAP_50: ...`` as a dict."""
    return {
        k: float(v)
        for k, v in re.findall(r"(coco/bbox_mAP\w*)'?: (-?[\d.]+)", stdout)
    }


@pytest.fixture(scope='module')
def checkpoint(shapes_workspace, tmp_path_factory):
    work = tmp_path_factory.mktemp('tools_test') / 'train'
    run_tool([
        TRAIN, QUICKSTART, '--work-dir', work, '--cfg-options',
        'train_cfg.max_iters=2', 'train_cfg.val_interval=100',
        'default_hooks.checkpoint.interval=2'
    ],
             cwd=shapes_workspace)
    return work / 'iter_2.pth'


@pytest.fixture(scope='module')
def plain_run(checkpoint, shapes_workspace, tmp_path_factory):
    work = tmp_path_factory.mktemp('tools_test') / 'plain'
    out = work / 'results.pkl'
    proc = run_tool(
        [
            TEST,
            QUICKSTART,
            checkpoint,
            '--work-dir',
            work,
            '--out',
            out,
            '--show-dir',
            'painted',
            # an untrained model's scores are below the hook's default 0.3
            '--cfg-options',
            'default_hooks.visualization.score_thr=0'
        ],
        cwd=shapes_workspace)
    return work, out, proc.stdout


def _load(path):
    # our own tool's output (mmdet's results format), not a user's file
    from mmengine.fileio import load
    return load(str(path))


def test_out_is_what_mmdet_eval_metric_reads(plain_run, shapes_workspace):
    work, out, stdout = plain_run
    results = _load(out)
    assert len(results) == 4  # one per val image, in dataset order
    names = [osp.basename(r['img_path']) for r in results]
    assert names == sorted(names)
    for r in results:
        pred = r['pred_instances']
        n = len(pred['scores'])
        assert tuple(pred['bboxes'].shape) == (n, 4)
        assert len(pred['labels']) == n
    printed = _metrics(stdout)
    assert 'coco/bbox_mAP_50' in printed
    # mmdet's offline evaluation of the pickle gives the printed numbers
    proc = run_tool(
        [mmdet_tool('analysis_tools', 'eval_metric.py'), QUICKSTART, out],
        cwd=shapes_workspace)
    offline = _metrics(proc.stdout)
    assert offline == printed


def test_out_feeds_mmdet_analyze_results(plain_run, shapes_workspace,
                                         tmp_path):
    _, out, _ = plain_run
    show = tmp_path / 'analysis'
    run_tool([
        mmdet_tool('analysis_tools', 'analyze_results.py'), QUICKSTART, out,
        show, '--topk', '2'
    ],
             cwd=shapes_workspace)
    good = sorted(glob.glob(str(show / 'good' / '*')))
    bad = sorted(glob.glob(str(show / 'bad' / '*')))
    # topk 2 of 4 images each way, named <image>_<per-image mAP>.jpg
    assert len(good) == 2 and len(bad) == 2
    assert all(re.search(r'_[\d.]+\.jpg$', p) for p in good + bad)


def test_show_dir_paints_gt_and_predictions(plain_run, shapes_workspace):
    work, _, _ = plain_run
    painted = sorted(glob.glob(str(work / '*' / 'painted' / '*.jpg')))
    assert len(painted) == 4, painted
    for path in painted:
        name = osp.basename(path)
        src = cv2.imread(
            str(shapes_workspace / 'data' / 'shapes_coco' / 'val' / name))
        img = cv2.imread(path)
        h, w = src.shape[:2]
        # ground truth on the left, predictions on the right
        assert img.shape == (h, 2 * w, 3), (img.shape, src.shape)
        for half in (img[:, :w], img[:, w:]):
            diff = np.abs(half.astype(int) - src.astype(int)).max(axis=2)
            assert (diff > 60).mean() > 0.005, name  # boxes were drawn


def test_tta_wraps_the_model_and_changes_predictions(checkpoint, plain_run,
                                                     shapes_workspace,
                                                     tmp_path):
    work = tmp_path / 'tta'
    out = tmp_path / 'tta.pkl'
    proc = run_tool([
        TEST, QUICKSTART, checkpoint, '--work-dir', work, '--out', out, '--tta'
    ],
                    cwd=shapes_workspace)
    assert 'coco/bbox_mAP_50' in proc.stdout
    dumped = glob.glob(str(work / '*.py'))  # the config that ran
    assert dumped and "type='DetTTAModel'" in open(dumped[0]).read()
    plain = _load(plain_run[1])
    tta = _load(out)
    assert [r['img_path'] for r in tta] == [r['img_path'] for r in plain]
    # merged plain + flipped detections: not the plain run's boxes
    assert any(
        len(a['pred_instances']['scores']) != len(b['pred_instances']
                                                  ['scores'])
        or not np.allclose(a['pred_instances']['bboxes'].numpy(),
                           b['pred_instances']['bboxes'].numpy())
        for a, b in zip(tta, plain))
    assert all(len(r['pred_instances']['scores']) <= 100 for r in tta)


def _tool():
    spec = importlib.util.spec_from_file_location('dap_test_tool', TEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_config_changes_are_explicit_and_checked(tmp_path, capsys):
    from mmengine.config import Config
    tool = _tool()
    cfg = Config(
        dict(
            model=dict(type='FasterRCNN'),
            test_dataloader=dict(
                dataset=dict(type='CocoDataset', pipeline=[])),
            test_evaluator=dict(type='CocoMetric'),
            default_hooks=dict(
                visualization=dict(type='DetVisualizationHook'))))
    with pytest.raises(
            ValueError, match='--tta needs tta_model and '
            'tta_pipeline'):
        tool.apply_tta(cfg)
    tool.add_dump_metric(cfg, 'r.pkl')
    assert cfg.test_evaluator == [
        dict(type='CocoMetric'),
        dict(type='DumpDetResults', out_file_path='r.pkl')
    ]
    tool.enable_visualization(cfg, False, 'vis', 2)
    assert cfg.default_hooks.visualization == dict(
        type='DetVisualizationHook', draw=True, test_out_dir='vis')

    # mmpretrain configs (step 1): its hook's and dump metric's names
    cls = Config(
        dict(
            default_scope='mmpretrain',
            test_evaluator=[dict(type='Accuracy')],
            default_hooks=dict(
                visualization=dict(type='VisualizationHook', enable=False))))
    tool.add_dump_metric(cls, 'c.pkl')
    assert cls.test_evaluator[-1] == dict(
        type='DumpResults', out_file_path='c.pkl')
    tool.enable_visualization(cls, True, None, 0.5)
    assert cls.default_hooks.visualization.enable is True
    assert cls.default_hooks.visualization.wait_time == 0.5

    with pytest.raises(SystemExit):
        tool.parse_args([QUICKSTART, 'x.pth', '--out', 'res.json'])
    assert 'must be a .pkl' in capsys.readouterr().err
