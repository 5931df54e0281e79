"""The main job (tools/run_dap_demo.py) and its generated benchmark."""
import collections
import filecmp
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from projects.dap.dap.demo import (DOWNSTREAM_CLASSES, PRETRAIN_CLASSES,
                                   make_mini_imagenet, make_mini_voc,
                                   read_voc_boxes)
from projects.dap.dap.fewshot.stats import compare, mean_sd

from conftest import REPO, run_tool


def _files(root):
    out = []
    for d, _, names in os.walk(root):
        out += [osp.relpath(osp.join(d, n), root) for n in names]
    return sorted(out)


def test_generator_is_deterministic(tmp_path):
    a, b, c = tmp_path / 'a', tmp_path / 'b', tmp_path / 'c'
    for root, seed in ((a, 3), (b, 3), (c, 4)):
        make_mini_imagenet(str(root), images_per_class=2, val_per_class=1,
                           seed=seed)
        make_mini_voc(str(root / 'voc'), num_trainval=3, num_test=2,
                      seed=seed)
    files = _files(a)
    assert files == _files(b) == _files(c)
    _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors
    _, mismatch, _ = filecmp.cmpfiles(a, c, files, shallow=False)
    assert any(f.endswith('.JPEG') for f in mismatch)


def test_mini_imagenet_boxes_and_balance(tmp_path):
    out = make_mini_imagenet(str(tmp_path), images_per_class=3,
                             val_per_class=2, seed=0)
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
    out = make_mini_voc(str(tmp_path), num_trainval=10, num_test=4,
                        image_size=(128, 112), seed=1)
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
    args = ['tools/run_dap_demo.py', '--quick', '--work-dir', work,
            '--data-root', data]
    proc = run_tool(args, cwd=REPO, timeout=1200)
    for stage in ('[data]', '[step 1/4]', '[step 2/4]', '[step 3/4]',
                  '[step 4/4]', '[report]'):
        assert stage in proc.stdout
    report = (work / 'report.md').read_text()
    for text in ('GT-known box accuracy', 'DAP AP50', 'CLS AP50',
                 '5-shot', 'full trainval', 'Verdict'):
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
    assert seen == {(i, s, seed) for i in ('dap', 'cls')
                    for s in ('5shot', 'full') for seed in (0, 1)}
    for r in runs:
        assert 0.0 <= r['AP50'] <= 100.0 and 0.0 <= r['AP'] <= 100.0
        assert r['AP'] <= r['AP50'] + 1e-6
    for row in summary['ap50']:
        assert row['dap_n'] == row['cls_n'] == 2
    # a rerun resumes: every stage and run is found finished, nothing runs
    logs = {p: p.stat().st_mtime_ns for p in (work / 'logs').iterdir()}
    proc = run_tool(args, cwd=REPO, timeout=600)
    assert proc.stdout.count('done before, skipped') == 4
    assert {p: p.stat().st_mtime_ns
            for p in (work / 'logs').iterdir()} == logs
