"""tools/analysis_tools/eval_pseudo_boxes.py against hand-computed numbers."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
from conftest import REPO, run_tool

from projects.dap.dap.datasets.box_file import write_box_file

TOOL = osp.join(REPO, 'tools', 'analysis_tools', 'eval_pseudo_boxes.py')

# key -> (boxes, scores) ; None = failed image
PRED = {
    'n01/a.JPEG': ([[0, 0, 50, 50], [50, 50, 100, 100]], [1.0, 0.8]),
    'n01/b.JPEG': ([[0, 0, 60, 40]], [1.0]),
    'n02/c.JPEG': ([[10, 10, 30, 30]], [1.0]),
    'n02/d.JPEG': None,
    'n03/e.JPEG': ([[0, 0, 5, 5]], [1.0]),  # no GT: not scored
    'p/x.JPEG': ([[0, 0, 10, 10]], [1.0]),  # GT p/x.JPEG (full path)
    'r/x.JPEG': ([[0, 0, 10, 10]], [1.0]),  # x.JPEG is ambiguous: no GT
}
# GT name -> boxes (xyxy)
GT = {
    'a.JPEG': [[0, 0, 50, 50]],
    'b.png': [[0, 0, 40, 40], [70, 70, 90, 90]],
    'c.JPEG': [[0, 0, 40, 40]],
    'd.JPEG': [[0, 0, 10, 10]],
    'p/x.JPEG': [[0, 0, 10, 10]],
    'q/x.JPEG': [[50, 50, 60, 60]],
    'z.JPEG': [[0, 0, 1, 1]],  # not in the box file
}
# By hand over the 5 matched images a, b, c, d (failed), p/x:
#   top box IoU: a 1.0, b 1600/2400 = 0.667, c 400/1600 = 0.25, d miss,
#   p/x 1.0  ->  acc@0.3 = 3/5, acc@0.5 = 3/5, acc@0.7 = 2/5
#   GT boxes 1 + 2 + 1 + 1 + 1 = 6, covered: a, b's first, p/x = 3
#   boxes of ok images 2 + 1 + 1 + 1 = 5, correct: a's first, b, p/x = 3
EXPECTED = {
    'num_images': 7,
    'num_matched': 5,
    'num_failed': 1,
    'num_gt_unmatched': 2,  # q/x.JPEG and z.JPEG
    'num_gt_boxes': 6,
    'num_boxes': 5,
    'gt_known_acc@0.5': 3 / 5,
    'top1_acc@0.3': 3 / 5,
    'top1_acc@0.5': 3 / 5,
    'top1_acc@0.7': 2 / 5,
    'maxboxacc_v2_style': (3 / 5 + 3 / 5 + 2 / 5) / 3,
    'recall@0.5': 3 / 6,
    'precision@0.5': 3 / 5,
    'boxes_per_image': 5 / 4,
}


@pytest.fixture(scope='module')
def box_file(tmp_path_factory):
    root = tmp_path_factory.mktemp('eval')
    keys = list(PRED)
    boxes = [np.zeros((0, 4)) if PRED[k] is None else PRED[k][0] for k in keys]
    scores = [np.zeros(0) if PRED[k] is None else PRED[k][1] for k in keys]
    thr = [np.full(len(s), 0.2) for s in scores]
    labels = [0 if PRED[k] is not None else -1 for k in keys]
    path = root / 'boxes.dapbox'
    write_box_file(
        path,
        keys, [(100, 100)] * len(keys),
        labels,
        boxes,
        scores,
        thr,
        meta={'num_classes': 2},
        failed={3: 'cannot decode image'})
    return path


def _coco(path):
    images, anns = [], []
    for i, (name, boxes) in enumerate(GT.items()):
        images.append({
            'id': i + 1,
            'file_name': name,
            'width': 100,
            'height': 100
        })
        for x1, y1, x2, y2 in boxes:
            anns.append({
                'id': len(anns) + 1,
                'image_id': i + 1,
                'category_id': 1,
                'iscrowd': 0,
                'bbox': [x1, y1, x2 - x1, y2 - y1],
                'area': (x2 - x1) * (y2 - y1)
            })
    path.write_text(
        json.dumps({
            'images': images,
            'annotations': anns,
            'categories': [{
                'id': 1,
                'name': 'x'
            }]
        }))
    return path


def _voc(folder):
    for name, boxes in GT.items():
        stem = osp.splitext(name)[0]
        xml = folder / f'{stem}.xml'
        xml.parent.mkdir(parents=True, exist_ok=True)
        objs = ''.join(
            f'<object><name>x</name><bndbox><xmin>{b[0]}</xmin>'
            f'<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax>'
            '</bndbox></object>' for b in boxes)
        # ImageNet XMLs name the file without its extension
        xml.write_text(f'<annotation><filename>{osp.basename(stem)}'
                       f'</filename>{objs}</annotation>')
    return folder


def _load_tool():
    spec = importlib.util.spec_from_file_location('eval_pseudo_boxes', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check(res):
    assert set(res) == set(EXPECTED)
    for name, value in EXPECTED.items():
        assert res[name] == pytest.approx(value, abs=1e-12), name


def test_eval_tool_coco_matches_hand_computed(box_file, tmp_path):
    out = tmp_path / 'res.json'
    proc = run_tool(
        [TOOL, box_file,
         _coco(tmp_path / 'gt.json'), '--out', out])
    _check(json.loads(out.read_text()))
    # the printed table shows the same numbers (percent)
    assert '| gt_known_acc@0.5' in proc.stdout
    assert '60.00' in proc.stdout
    assert f'{100 * EXPECTED["maxboxacc_v2_style"]:.2f}' in proc.stdout


def test_eval_voc_xml_folder_matches_hand_computed(box_file, tmp_path):
    tool = _load_tool()
    out = tmp_path / 'res.json'
    assert tool.main([
        str(box_file),
        str(_voc(tmp_path / 'Annotations')), '--out',
        str(out)
    ]) == 0
    _check(json.loads(out.read_text()))


def test_eval_bad_inputs_are_clear_errors(box_file, tmp_path, capsys):
    tool = _load_tool()
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert tool.main([str(box_file), str(empty)]) == 1
    assert 'no .xml files' in capsys.readouterr().err
    other = tmp_path / 'other.json'
    other.write_text(
        json.dumps({
            'images': [{
                'id': 1,
                'file_name': 'q.jpg'
            }],
            'annotations': []
        }))
    assert tool.main([str(box_file), str(other)]) == 1
    assert 'no image of the box file' in capsys.readouterr().err
    assert tool.main([str(tmp_path / 'missing.dapbox'), str(other)]) == 1
    assert 'does not exist' in capsys.readouterr().err


def test_eval_plot_curves_match_hand_computed(box_file, tmp_path):
    """--plot: accuracy/recall against the IoU threshold, boxes per image.

    Top-box IoUs of the 5 matched images: 1, 0.667, 0.25, miss (failed),
    1; best IoUs of the 6 GT boxes: 1, 0.667, 0, 0.25, 0 (failed), 1.
    """
    png = tmp_path / 'plots' / 'curves.png'
    proc = run_tool([
        TOOL, box_file,
        _coco(tmp_path / 'gt.json'), '--plot', png, '--out',
        tmp_path / 'res.json'
    ])
    assert f'wrote {png}' in proc.stdout
    data = json.loads((tmp_path / 'plots' / 'curves.json').read_text())
    thr = data['iou_thresholds']
    assert thr == pytest.approx([0.05 * i for i in range(1, 20)])

    def by_hand(t, top):
        if t <= 0.25:
            return 4 / 5 if top else 4 / 6
        if t <= 2 / 3:
            return 3 / 5 if top else 3 / 6
        return 2 / 5 if top else 2 / 6

    assert data['top1_acc'] == pytest.approx([by_hand(t, True) for t in thr])
    assert data['recall'] == pytest.approx([by_hand(t, False) for t in thr])
    # the curve at 0.5 is the table's number
    res = json.loads((tmp_path / 'res.json').read_text())
    assert data['top1_acc'][thr.index(0.5)] == res['gt_known_acc@0.5']
    assert data['recall'][thr.index(0.5)] == res['recall@0.5']
    # a: 2 boxes; b, c, p/x: 1 box; d failed (not counted)
    assert data['images_with_k_boxes'] == [0, 3, 1]
    import matplotlib.image as mpimg
    img = mpimg.imread(png)
    assert img.shape[0] > 200 and img.shape[1] > 500
    assert img[..., :3].std() > 0.05  # something is drawn
