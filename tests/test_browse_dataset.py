"""tools/analysis_tools/browse_dataset.py: what step 3 and the mini benchmark
train on, painted; checked against the pipeline's own output."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from conftest import REPO, run_tool
from test_imagenet_pseudo_box import make_imagenet

TOOL = osp.join(REPO, 'tools', 'analysis_tools', 'browse_dataset.py')
DAP_IN1K = osp.join(REPO, 'configs', 'dap',
                    'dap_faster-rcnn_r50_fpn_1e_in1k.py')
MINI_VOC = osp.join(REPO, 'configs', 'demo',
                    'faster-rcnn_r18-w32_fpn_dap_mini-voc.py')


def _pipeline_outputs(config, options, indices, seed):
    """What the tool should have drawn on: the same dataset items, with the
    same seed, built here."""
    from mmdet.registry import DATASETS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import set_random_seed
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    init_default_scope('mmdet')
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    set_random_seed(seed)
    out = []
    for i in indices:
        item = dataset[i]
        img = item['inputs'].permute(1, 2, 0).numpy()  # BGR
        boxes = item['data_samples'].gt_instances.bboxes.tensor.numpy()
        out.append((img, boxes, item['data_samples'].img_path))
    return out


def _check_painted(path, img, boxes):
    painted = cv2.imread(path)
    assert painted.shape == img.shape, (painted.shape, img.shape)
    diff = np.abs(painted.astype(int) - img.astype(int)).max(axis=2)
    h, w = diff.shape
    assert 0 < (diff > 3).mean() < 0.8  # unpainted pixels: diff 0
    # elsewhere the very image the pipeline gave (same seed): untouched
    assert (diff == 0).mean() > 0.2
    for x1, y1, x2, y2 in boxes:
        # the middle of every box edge is painted (3x3 neighbourhood)
        for x, y in (((x1 + x2) / 2, y1), ((x1 + x2) / 2, y2),
                     (x1, (y1 + y2) / 2), (x2, (y1 + y2) / 2)):
            xi = int(np.clip(round(x), 1, w - 2))
            yi = int(np.clip(round(y), 1, h - 2))
            assert diff[yi - 1:yi + 2, xi - 1:xi + 2].max() > 3, \
                (path, (x1, y1, x2, y2), (x, y))


def test_browse_imagenet_pseudo_boxes_after_the_dap_pipeline(tmp_path):
    data = tmp_path / 'imagenet'
    info = make_imagenet(
        str(data),
        num_classes=1000,
        per_class=2,
        box_file='pseudo_boxes/in1k.dapbox')
    options = {
        'train_dataloader.dataset.data_root': f'{data}/',
        'train_dataloader.dataset.box_file': 'pseudo_boxes/in1k.dapbox',
        'train_dataloader.dataset.ann_file': 'meta/train.txt'
    }
    out = tmp_path / 'browse'
    proc = run_tool([
        TOOL, DAP_IN1K, '--output-dir', out, '--num', '3', '--random',
        '--seed', '5', '--cfg-options'
    ] + [f'{k}={v}' for k, v in options.items()])
    assert f'wrote 3 images to {out}' in proc.stdout
    written = sorted(os.listdir(out))
    indices = sorted(
        np.random.default_rng(5).choice(len(info['keys']), 3,
                                        replace=False).tolist())
    assert written == [
        f'{i:08d}_{osp.splitext(osp.basename(info["keys"][i]))[0]}.png'
        for i in indices
    ]
    expected = _pipeline_outputs(DAP_IN1K, options, indices, seed=5)
    for name, (img, boxes, img_path), i in zip(written, expected, indices):
        assert img_path.endswith(info['keys'][i])
        # the pseudo boxes of the box file, scaled (and maybe flipped)
        assert len(boxes) == len(info['boxes'][i])
        w, h = info['sizes'][i]
        scale = img.shape[1] / w
        assert img.shape[0] == pytest.approx(h * scale, abs=1)
        widths = np.sort(info['boxes'][i][:, 2] - info['boxes'][i][:, 0])
        np.testing.assert_allclose(
            np.sort(boxes[:, 2] - boxes[:, 0]), widths * scale, rtol=0.02)
        _check_painted(str(out / name), img, boxes)


def test_browse_mini_voc(tmp_path):
    from projects.dap.dap.demo.benchmark import make_mini_voc
    root = tmp_path / 'mini_voc'
    make_mini_voc(str(root), num_trainval=4, num_test=2)
    options = {'train_dataloader.dataset.data_root': f'{root}/VOCdevkit/'}
    out = tmp_path / 'browse'
    run_tool([
        TOOL, MINI_VOC, '--output-dir', out, '--num', '0', '--seed', '1',
        '--cfg-options'
    ] + [f'{k}={v}' for k, v in options.items()])
    written = sorted(os.listdir(out))
    assert len(written) == 4  # --num 0: all of trainval
    expected = _pipeline_outputs(MINI_VOC, options, range(4), seed=1)
    for name, (img, boxes, img_path) in zip(written, expected):
        assert name.endswith(osp.splitext(osp.basename(img_path))[0] + '.png')
        assert 2 <= len(boxes) <= 4
        _check_painted(str(out / name), img, boxes)


def test_nothing_to_do_and_missing_data_are_clear_errors(tmp_path):
    proc = run_tool([TOOL, MINI_VOC], check=False)
    assert proc.returncode == 2 and 'give --output-dir' in proc.stdout
    proc = run_tool([
        TOOL, MINI_VOC, '--output-dir', tmp_path / 'o', '--cfg-options',
        f'train_dataloader.dataset.data_root={tmp_path}/none/'
    ],
                    check=False)
    assert proc.returncode == 1
    assert 'cannot build the train dataset' in proc.stdout
