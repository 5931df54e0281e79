"""tools/analysis_tools/browse_pseudo_boxes.py: statistics, PNGs drawn."""
import importlib.util
import io
import json
import os.path as osp

import numpy as np
import pytest
import torch
from conftest import REPO, run_tool
from PIL import Image

from projects.dap.dap.datasets.box_file import PseudoBoxFile, write_box_file

TOOL = osp.join(REPO, 'tools', 'analysis_tools', 'browse_pseudo_boxes.py')
BASE_CFG = osp.join(REPO, 'configs', 'cam_boxes',
                    'cam-boxes_resnet50_8xb32_in1k.py')
# key, (w, h), label, boxes (None = failed)
IMAGES = [
    ('c0/a.JPEG', (100, 80), 0, [[0, 0, 50, 40]]),
    ('c1/b.JPEG', (60, 120), 1, [[0, 0, 30, 60], [10, 10, 20, 20]]),
    ('c0/c.JPEG', (90, 90), 0, None),
]


def _load_tool():
    spec = importlib.util.spec_from_file_location('browse_pseudo_boxes', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp('browse')
    rng = np.random.default_rng(0)
    for key, (w, h), _, _ in IMAGES:
        path = root / 'train' / key
        path.parent.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 80, (h, w, 3), np.uint8)
        arr[h // 4:h // 2, w // 4:w // 2] = 230
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format='JPEG')
        path.write_bytes(buf.getvalue())
    box_path = root / 'boxes.dapbox'
    write_box_file(
        box_path, [k for k, *_ in IMAGES], [s for _, s, _, _ in IMAGES],
        [lb for _, _, lb, _ in IMAGES],
        [np.zeros((0, 4)) if b is None else b for *_, b in IMAGES], [
            np.zeros(0) if b is None else np.linspace(1, 0.5, len(b))
            for *_, b in IMAGES
        ], [
            np.zeros(0) if b is None else np.full(len(b), 0.2)
            for *_, b in IMAGES
        ],
        meta={'classes': ['cat', 'dog', 'eel']},
        failed={2: 'cannot decode image'})
    return root, box_path


def test_box_statistics_match_hand_computed(workspace):
    tool = _load_tool()
    stats = tool.box_statistics(PseudoBoxFile.open(workspace[1]))
    # ok images: a has 1 box, b has 2 (the failed image is not counted)
    assert stats['per_image'].tolist() == [0, 1, 1]
    # sqrt(area ratio): a 0.5; b 0.5 and sqrt(100 / 7200) = 0.118
    size = np.zeros(40, int)
    np.add.at(size, [20, 20, 4], 1)
    assert stats['size'].tolist() == size.tolist()
    # log2(w / h): a log2(1.25) = 0.32 -> bin 17; b -1 -> 12, 0 -> 16
    aspect = np.zeros(32, int)
    np.add.at(aspect, [17, 12, 16], 1)
    assert stats['aspect'].tolist() == aspect.tolist()


def test_cam_on_image_maps_cells_to_pixels():
    tool = _load_tool()
    cam = np.arange(6, dtype=float).reshape(2, 3)
    # 64 x 64 image, fusion scale 128, stride 32: a cell is 16 pixels
    up = tool.cam_on_image(cam, 64, 64, 32, 128)
    assert up.shape == (64, 64)
    assert up[0, 0] == 0 and up[15, 15] == 0 and up[0, 16] == 1
    assert up[16, 0] == 3 and up[31, 47] == 5
    assert up[63, 63] == 5  # beyond the map: its last cell


def test_browse_tool_draws_boxes_heat_maps_and_stats(workspace, tmp_path):
    root, box_path = workspace
    from mmengine.registry import DefaultScope
    from mmpretrain.models import ImageClassifier
    torch.manual_seed(0)
    # mmpretrain's registries, whatever scope an earlier test left set
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = ImageClassifier(
            backbone=dict(type='ResNet', depth=18, out_indices=(3, )),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=3, in_channels=512))
    ckpt = tmp_path / 'cls.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(f"""
_base_ = [{BASE_CFG!r}]
model = dict(
    classifier=dict(backbone=dict(depth=18),
                    head=dict(num_classes=3, in_channels=512)),
    scales=(64, 128), fusion_scale=128)
""")
    out = tmp_path / 'with_cam'
    proc = run_tool([
        TOOL, box_path, '--data-root', root / 'train', '--out-dir', out,
        '--num', '5', '--config', cfg, '--checkpoint', ckpt
    ])
    assert 'wrote 2 images' in proc.stdout
    pngs = sorted(p.name for p in out.glob('0*.png'))
    assert pngs == ['00000000_c0_a.JPEG.png', '00000001_c1_b.JPEG.png']
    summary = json.loads((out / 'box_stats.json').read_text())
    assert summary['num_failed'] == 1 and summary['num_boxes'] == 3
    assert summary['images_with_k_boxes'] == [0, 1, 1]
    with Image.open(out / 'box_stats.png') as img:
        assert img.size[0] > 800

    # without --config: the same picture minus the heat map
    tool = _load_tool()
    plain = tmp_path / 'plain'
    assert tool.main([
        str(box_path), '--data-root',
        str(root / 'train'), '--out-dir',
        str(plain), '--num', '1'
    ]) == 0
    with Image.open(out / pngs[0]) as a, Image.open(plain / pngs[0]) as b:
        a, b = np.asarray(a.convert('RGB')), np.asarray(b.convert('RGB'))
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b).mean() > 5  # the heat map is there
