"""ImageNetPseudoBoxDataset on generated ImageNet-layout data and box files.

``make_imagenet`` is also used by ``test_dap_configs.py``.
"""
import os
import os.path as osp
import pickle

import cv2
import numpy as np
import pytest
from helpers.logs import logged
from mmengine.registry import init_default_scope

from projects.dap.dap import (BoxFileError, PseudoBoxFile,
                              image_list_fingerprint, write_box_file)
from projects.dap.dap.datasets import ImageNetPseudoBoxDataset, image_list
from projects.dap.dap.datasets import imagenet_pseudo_box as ipb

WNIDS = ('n01440764', 'n01443537', 'n01484850')


def make_imagenet(root,
                  wnids=WNIDS,
                  per_class=3,
                  failed=(),
                  seed=0,
                  num_classes=None,
                  box_file='pseudo_boxes/boxes.dapbox',
                  ann_file='meta/train.txt',
                  labels=None,
                  classes=True):
    """mmpretrain ImageNet layout + a box file made for its list.

    ``train/<wnid>/<wnid>_<i>.JPEG`` (64-128 px), ``meta/train.txt`` and a
    box file with 1-3 boxes per image (none for the ``failed`` indices).
    ``labels`` overrides the folder labels (e.g. 22K labels); returns a
    dict of what was written.
    """
    rng = np.random.default_rng(seed)
    keys, sizes, boxes, scores = [], [], [], []
    folder_labels = []
    for label, wnid in enumerate(wnids):
        os.makedirs(osp.join(root, 'train', wnid), exist_ok=True)
        for i in range(per_class):
            w, h = (int(v) for v in rng.integers(64, 129, size=2))
            key = f'{wnid}/{wnid}_{i}.JPEG'
            path = osp.join(root, 'train', key)
            if not osp.exists(path):  # same list -> same images and sizes
                pixels = np.random.default_rng((seed, label, i))
                img = pixels.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
                cv2.imwrite(path, cv2.GaussianBlur(img, (0, 0), 2))
            k = int(rng.integers(1, 4))
            x1 = rng.uniform(0, w / 2, size=k)
            y1 = rng.uniform(0, h / 2, size=k)
            bw = rng.uniform(2, w / 2, size=k)
            bh = rng.uniform(2, h / 2, size=k)
            boxes.append(np.stack([x1, y1, x1 + bw, y1 + bh], 1))
            scores.append(rng.uniform(0.1, 1, size=k))
            keys.append(key)
            sizes.append((w, h))
            folder_labels.append(label)
    labels = folder_labels if labels is None else list(labels)
    n = len(keys)
    status = np.zeros(n, np.uint8)
    for i in failed:
        status[i] = 1
        boxes[i] = np.zeros((0, 4))
        scores[i] = np.zeros(0)
    if ann_file:
        os.makedirs(osp.dirname(osp.join(root, ann_file)), exist_ok=True)
        with open(osp.join(root, ann_file), 'w') as f:
            f.writelines(f'{k} {c}\n' for k, c in zip(keys, labels))
    num_classes = num_classes or len(wnids)
    meta = dict(num_classes=num_classes)
    if classes:
        meta['classes'] = [f'class_{c}' for c in range(num_classes)]
    path = osp.join(root, box_file)
    write_box_file(
        path,
        keys,
        sizes,
        labels,
        boxes,
        scores, [np.full(len(s), 0.2) for s in scores],
        meta,
        failed={i: 'unreadable'
                for i in failed},
        overwrite=True)
    return dict(
        keys=keys,
        sizes=sizes,
        labels=labels,
        boxes=boxes,
        scores=scores,
        status=status,
        path=path)


def build(root, **kwargs):
    kwargs.setdefault('ann_file', 'meta/train.txt')
    kwargs.setdefault('box_file', 'pseudo_boxes/boxes.dapbox')
    return ImageNetPseudoBoxDataset(
        data_root=str(root), data_prefix=dict(img='train/'), **kwargs)


@pytest.fixture(scope='module')
def imagenet(tmp_path_factory):
    root = tmp_path_factory.mktemp('imagenet')
    info = make_imagenet(str(root), failed=(1, 5))
    return root, info


def test_samples_equal_box_file_and_failed_are_skipped(imagenet):
    root, info = imagenet
    ds, records = logged(lambda: build(root))
    messages = [m for _, m in records]
    assert any('7 images' in m and '2 of 9 images failed in step 2' in m
               for m in messages), messages
    box = PseudoBoxFile.open(info['path'])
    ok = [i for i in range(9) if i not in (1, 5)]
    assert len(ds) == 7
    for idx, row in enumerate(ok):
        data = ds.get_data_info(idx)
        assert data['img_id'] == row
        assert data['img_path'] == osp.join(
            str(root), 'train', info['keys'][row])
        assert (data['width'], data['height']) == info['sizes'][row]
        got = np.array([i['bbox'] for i in data['instances']])
        np.testing.assert_array_equal(got, box.boxes_of(row)[0])
        np.testing.assert_allclose(got, info['boxes'][row], rtol=1e-6)
        assert [i['bbox_label'] for i in data['instances']] == \
            [info['labels'][row]] * len(got)
        assert all(i['ignore_flag'] == 0 for i in data['instances'])
        assert ds.get_cat_ids(idx) == [info['labels'][row]] * len(got)
    assert ds.get_data_info(-1)['img_id'] == 8
    with pytest.raises(IndexError):
        ds.get_data_info(7)
    # classes come from the box file; nothing per image is held in Python
    assert ds.metainfo['classes'] == ('class_0', 'class_1', 'class_2')
    assert ds.data_list == [] and not hasattr(ds, 'data_bytes')


def test_class_folder_layout_reads_the_same_list(imagenet):
    root, _ = imagenet
    by_file = build(root)
    by_folder = build(root, ann_file='')
    assert len(by_file) == len(by_folder)
    for i in range(len(by_file)):
        assert by_file.get_data_info(i) == by_folder.get_data_info(i)


def test_folder_names_are_classes_when_box_file_has_none(tmp_path):
    make_imagenet(str(tmp_path), classes=False)
    assert build(tmp_path, ann_file='').metainfo['classes'] == WNIDS
    assert build(tmp_path).metainfo['classes'] == ('0', '1', '2')


def test_streamed_fingerprint_equals_box_file_definition(
        tmp_path, monkeypatch):
    keys = [f'n0{i % 3}/img_{i}.JPEG' for i in range(50)]
    labels = [i % 3 for i in range(50)]
    digest = ipb._ImageListDigest(50, 3)
    for start in range(0, 50, 7):
        digest.add(b''.join(k.encode() + b'\n' for k in keys[start:start + 7]),
                   np.array(labels[start:start + 7]), 'test')
    assert digest.hexdigest() == image_list_fingerprint(keys, labels)
    # the annotation file is read in blocks: boundaries inside lines, CRLF,
    # blank lines and no final newline must not change the list
    ann = tmp_path / 'train.txt'
    ann.write_bytes(b''.join(
        f'{k} {c}\r\n'.encode() + (b'\n' if i == 10 else b'')
        for i, (k, c) in enumerate(zip(keys, labels))).rstrip(b'\r\n'))
    monkeypatch.setattr(image_list, 'READ_BLOCK', 13)
    got_keys, got_labels = [], []
    for blob, _, c, _ in image_list.read_ann_blocks(str(ann)):
        got_keys += [x.decode() for x in blob.split(b'\n')[:-1]]
        got_labels += c.tolist()
    assert got_keys == keys and got_labels == labels


def test_mismatched_box_file_is_refused(tmp_path):
    info = make_imagenet(str(tmp_path))
    ann = tmp_path / 'meta' / 'train.txt'
    lines = ann.read_text().splitlines(keepends=True)

    # another order
    ann.write_text(''.join([lines[1], lines[0]] + lines[2:]))
    with pytest.raises(BoxFileError, match='fingerprint differs'):
        build(tmp_path)
    # another label (same count and keys)
    key, _ = lines[0].split()
    ann.write_text(''.join([f'{key} 1\n'] + lines[1:]))
    with pytest.raises(BoxFileError, match='fingerprint differs'):
        build(tmp_path)
    # one image more
    ann.write_text(''.join(lines + [lines[0]]))
    with pytest.raises(BoxFileError, match='it has 9 images, the dataset 10'):
        build(tmp_path)
    # a label outside the box file's classes
    ann.write_text(''.join(lines[:-1] + [f'{key} 3\n']))
    with pytest.raises(BoxFileError, match='outside the pseudo-box file'):
        build(tmp_path)
    ann.write_text(''.join(lines))
    build(tmp_path)  # the right list is accepted again
    # a class folder more than the box file's classes
    os.makedirs(tmp_path / 'train' / 'n09999999')
    with pytest.raises(BoxFileError, match='4 classes'):
        build(tmp_path, ann_file='')
    os.rmdir(tmp_path / 'train' / 'n09999999')
    # metainfo with another class count
    with pytest.raises(BoxFileError, match='metainfo has 2 classes'):
        build(tmp_path, metainfo=dict(classes=('a', 'b')))
    # a box file that is not one
    with pytest.raises(BoxFileError, match='does not exist'):
        build(tmp_path, box_file='missing.dapbox')
    # malformed list
    ann.write_text(''.join(lines[:3] + ['no_label_here\n'] + lines[3:]))
    with pytest.raises(ValueError, match=r'train.txt:4: expected'):
        build(tmp_path)
    ann.write_text(''.join(lines[:3] + ['a.JPEG x\n'] + lines[3:]))
    with pytest.raises(ValueError, match=r'train.txt:4: label'):
        build(tmp_path)
    # trusting the box file skips the list check (with a warning)
    ds = build(tmp_path, verify_image_list=False)
    assert len(ds) == 9
    assert info['keys'][0] in ds.get_data_info(0)['img_path']


def test_options_agnostic_cap_min_size_and_redraw(tmp_path):
    root = str(tmp_path)
    info = make_imagenet(root, per_class=2)
    box = PseudoBoxFile.open(info['path'])

    ds = build(root, class_agnostic=True)
    assert ds.metainfo['classes'] == ('object', )
    assert {
        i['bbox_label']
        for n in range(len(ds))
        for i in ds.get_data_info(n)['instances']
    } == {0}

    ds = build(root, max_boxes_per_image=1)
    for n in range(len(ds)):
        boxes, scores, _ = box.boxes_of(n)
        got = [i['bbox'] for i in ds.get_data_info(n)['instances']]
        np.testing.assert_array_equal(got, boxes[[np.argmax(scores)]])

    size = 20.
    ds = build(root, min_box_size=size, pipeline=[])
    kept_any = False
    for n in range(len(ds)):
        boxes = box.boxes_of(n)[0]
        wide = ((boxes[:, 2] - boxes[:, 0]) >= size) & \
            ((boxes[:, 3] - boxes[:, 1]) >= size)
        got = [i['bbox'] for i in ds.get_data_info(n)['instances']]
        np.testing.assert_array_equal(np.reshape(got, (-1, 4)), boxes[wide])
        kept_any |= bool(wide.any())
        if not wide.any():  # no box left: training draws another image
            assert ds.prepare_data(n) is None
            assert ds[n]['instances']
    assert kept_any
    with pytest.raises(ValueError, match='filter_cfg'):
        build(root, filter_cfg=dict(filter_empty_gt=True))


def test_lazy_pickle_subset_and_indices(imagenet):
    root, _ = imagenet
    ds = build(root, lazy_init=True)
    assert not ds._fully_initialized
    assert len(ds) == 7  # initialises on demand
    blob = pickle.dumps(ds)
    assert len(blob) < 20000  # the box file travels as its path only
    clone = pickle.loads(blob)
    assert [clone.get_data_info(i) for i in range(7)] == \
        [ds.get_data_info(i) for i in range(7)]
    sub = ds.get_subset([6, 0])
    assert [sub.get_data_info(i)['img_id'] for i in range(2)] == [8, 0]
    assert len(ds) == 7
    first = build(root, indices=3)
    assert [first.get_data_info(i)['img_id'] for i in range(3)] == [0, 2, 3]


def test_22k_class_count_without_22k_images(tmp_path):
    labels = [0, 10000, 21840, 5, 6, 7, 21839, 1, 2]
    info = make_imagenet(
        str(tmp_path), num_classes=21841, labels=labels, classes=False)
    ds = build(tmp_path)
    assert len(ds.metainfo['classes']) == 21841
    for i in range(9):
        assert {x['bbox_label']
                for x in ds.get_data_info(i)['instances']} == {labels[i]}
    assert PseudoBoxFile.open(info['path']).num_classes == 21841


def test_aspect_ratio_sampler_and_dataloader(imagenet):
    """mmdet's sampler reads width/height; the pipeline rescales boxes."""
    import torch
    from mmdet.datasets.samplers import AspectRatioBatchSampler
    from mmengine.dataset import DefaultSampler, pseudo_collate
    init_default_scope('mmdet')
    root, info = imagenet
    ds = build(
        root,
        pipeline=[
            dict(type='LoadAnnotations', with_bbox=True),
            dict(
                type='LoadImageRandomChoiceResize',
                scales=[(1333, 48)],
                keep_ratio=True),
            dict(type='RandomFlip', prob=0.),
            dict(type='PackDetInputs'),
        ])
    batches = list(
        AspectRatioBatchSampler(DefaultSampler(ds, shuffle=False), 2))
    for batch in batches:
        tall = {
            ds.get_data_info(i)['width'] < ds.get_data_info(i)['height']
            for i in batch
        }
        assert len(tall) == 1 or len(batch) == 1
    loader = torch.utils.data.DataLoader(
        ds, batch_size=3, collate_fn=pseudo_collate, num_workers=1)
    box = PseudoBoxFile.open(info['path'])
    seen = 0
    for batch in loader:
        for sample in batch['data_samples']:
            row = sample.img_id
            w, h = info['sizes'][row]
            assert sample.ori_shape == (h, w)
            assert min(sample.img_shape) == 48
            sx, sy = sample.scale_factor
            expected = box.boxes_of(row)[0] * [sx, sy, sx, sy]
            expected[:, 0::2] = expected[:, 0::2].clip(0, sample.img_shape[1])
            expected[:, 1::2] = expected[:, 1::2].clip(0, sample.img_shape[0])
            np.testing.assert_allclose(
                sample.gt_instances.bboxes.numpy(),
                expected,
                rtol=1e-5,
                atol=1e-4)
            assert set(sample.gt_instances.labels.tolist()) == \
                {info['labels'][row]}
            seen += 1
    assert seen == 7
