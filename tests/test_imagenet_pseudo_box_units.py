"""ImageNetPseudoBoxDataset on tiny hand-written box files: exact samples,
messages and logs (no images are read: ``get_data_info`` needs none)."""
import logging
import os
import os.path as osp
import pickle
import warnings

import numpy as np
import pytest
from helpers.logs import logged

from projects.dap.dap import (BoxFileError, PseudoBoxFile,
                              image_list_fingerprint, write_box_file)
from projects.dap.dap.datasets import ImageNetPseudoBoxDataset
from projects.dap.dap.datasets import imagenet_pseudo_box as ipb

NAME = 'ImageNetPseudoBoxDataset'


def _files(root, boxes, scores=None, labels=None, failed=(), num_classes=2):
    """``root/train.txt`` and ``root/boxes.dapbox`` for one image per entry
    of ``boxes`` (its boxes, x1 y1 x2 y2); keys ``c<label>/<i>.JPEG``."""
    n = len(boxes)
    labels = [i % num_classes for i in range(n)] if labels is None else labels
    keys = [f'c{c}/{i}.JPEG' for i, c in enumerate(labels)]
    boxes = [np.reshape(np.asarray(b, np.float64), (-1, 4)) for b in boxes]
    if scores is None:
        scores = [np.full(len(b), 0.5) for b in boxes]
    with open(osp.join(root, 'train.txt'), 'w') as f:
        f.writelines(f'{k} {c}\n' for k, c in zip(keys, labels))
    path = osp.join(root, 'boxes.dapbox')
    write_box_file(
        path,
        keys, [(100, 80)] * n,
        labels,
        boxes,
        scores, [np.full(len(b), 0.2) for b in boxes],
        dict(num_classes=num_classes),
        failed={i: 'unreadable'
                for i in failed},
        overwrite=True)
    return keys, path


def _build(root, **kwargs):
    kwargs.setdefault('data_prefix', dict(img='img/'))
    kwargs.setdefault('ann_file', 'train.txt')
    return ImageNetPseudoBoxDataset(
        data_root=str(root), box_file='boxes.dapbox', **kwargs)


def _error(cls, fn):
    with pytest.raises(cls) as err:
        fn()
    return str(err.value)


def test_option_errors_are_exact(tmp_path):
    _files(str(tmp_path), [[0, 0, 10, 10]])
    assert _error(
        ValueError,
        lambda: _build(tmp_path, filter_cfg=dict(filter_empty_gt=True))) == (
            f'{NAME} does not take filter_cfg (it would need a pass over '
            'every image); use min_box_size and max_boxes_per_image, empty '
            'images are redrawn')
    assert _error(ValueError, lambda: _build(tmp_path, max_boxes_per_image=0)
                  ) == 'max_boxes_per_image must be >= 1 or None'
    assert _error(ValueError, lambda: _build(tmp_path, min_box_size=-1)
                  ) == 'min_box_size must be >= 0'
    assert _error(
        ValueError,
        lambda: _build(tmp_path, data_prefix=dict(seg='img/'))) == (
            'data_prefix needs an "img" entry (the folder the image keys are '
            'relative to)')


def test_string_data_prefix_and_an_absolute_box_file(tmp_path):
    # mmpretrain style data_prefix='img/'; an absolute box_file is not
    # joined with data_root
    keys, path = _files(str(tmp_path), [[0, 0, 10, 10]])
    ds = ImageNetPseudoBoxDataset(
        data_root=str(tmp_path / 'elsewhere'),
        ann_file=str(tmp_path / 'train.txt'),
        data_prefix='img/',
        box_file=path)
    assert ds.box_file == path
    assert ds.get_data_info(0)['img_path'] == osp.join(
        str(tmp_path), 'elsewhere', 'img/', keys[0])


def test_class_count_errors_name_both_counts(tmp_path):
    _, path = _files(str(tmp_path), [[0, 0, 10, 10]] * 2)
    assert _error(
        BoxFileError,
        lambda: _build(tmp_path, metainfo=dict(classes=('a', 'b', 'c')))) == (
            f'metainfo has 3 classes, but the pseudo-box file {path} has 2')
    assert _error(
        BoxFileError, lambda: _build(
            tmp_path, class_agnostic=True, metainfo=dict(classes=('a', 'b')))
    ) == (f'metainfo has 2 classes, but the pseudo-box file {path} has 2 '
          '(class_agnostic needs exactly one)')
    assert _build(
        tmp_path, class_agnostic=True,
        metainfo=dict(classes=('thing', ))).metainfo['classes'] == ('thing', )


def test_logs_of_opening(tmp_path):
    # 3 images, image 1 failed: 2 usable images with 1 + 2 boxes
    _, path = _files(
        str(tmp_path), [[0, 0, 10, 10],
                        np.zeros((0, 4)), [[0, 0, 5, 5], [1, 1, 6, 6]]],
        failed=(1, ))
    ds, logs = logged(lambda: _build(tmp_path))
    assert len(ds) == 2
    assert logs == [(logging.INFO,
                     f'{NAME}: 2 images, 3 pseudo boxes from {path}; 1 of 3 '
                     'images failed in step 2 and are skipped')]
    ds, logs = logged(lambda: _build(tmp_path, verify_image_list=False))
    assert logs[0] == (logging.WARNING,
                       f'{NAME}: verify_image_list=False, the image list is '
                       f'not compared with {path}; its 3 keys are used as '
                       'the list')


def test_failed_images_skipped_sample_idx_and_no_warnings(tmp_path):
    # images 0..5, 1 and 2 failed: dataset positions 0..3 are rows 0, 3, 4, 5
    boxes = [[[i, 0, i + 10, 10]] for i in range(6)]
    boxes[1] = boxes[2] = np.zeros((0, 4))
    keys, _ = _files(str(tmp_path), boxes, failed=(1, 2))
    ds = _build(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # e.g. numpy deprecations
        rows = [ds.get_data_info(i)['img_id'] for i in range(4)]
        last = ds.get_data_info(-1)
    assert rows == [0, 3, 4, 5]
    assert [ds.get_data_info(i)['sample_idx']
            for i in range(4)] == [0, 1, 2, 3]
    assert (last['img_id'], last['sample_idx']) == (5, 3)
    assert last['instances'] == [
        dict(bbox=[5., 0., 15., 10.], bbox_label=1, ignore_flag=0)
    ]
    assert last['img_path'] == osp.join(str(tmp_path), 'img/', keys[5])
    assert (last['width'], last['height']) == (100, 80)
    assert _error(IndexError,
                  lambda: ds.get_data_info(4)) == ('index 4 out of range for '
                                                   '4 images')
    # a subset: positions of the dataset, then the failed rows skipped
    sub = _build(tmp_path, indices=[3, 1])
    assert [sub.get_data_info(i)['img_id'] for i in range(2)] == [5, 3]
    assert sub.get_data_info(-2)['sample_idx'] == 0


def test_min_box_size_keeps_boxes_of_exactly_that_size(tmp_path):
    # widths x heights: 10 x 10 (kept), 9.5 x 20, 20 x 9.5 (dropped),
    # 20 x 30 (kept)
    _files(
        str(tmp_path),
        [[[0, 0, 10, 10], [0, 0, 9.5, 20], [0, 0, 20, 9.5], [5, 5, 25, 35]]])
    ds = _build(tmp_path, min_box_size=10)
    assert [i['bbox']
            for i in ds.get_data_info(0)['instances']] == [[0., 0., 10., 10.],
                                                           [5., 5., 25., 35.]]


def test_max_boxes_keeps_the_highest_scores_ties_by_box_order(tmp_path):
    # 17 boxes (more than numpy sorts by insertion, so an unstable sort
    # would reorder ties): score 1 for boxes 0, 9, 11, 14, 15; 0.5 for 1,
    # 2, 10, 12, 13, 16; 0.25 for 3..8.  Keeping 9: the five 1s and the
    # first four 0.5s (1, 2, 10, 12), listed in box order.
    level = [2, 1, 1, 0, 0, 0, 0, 0, 0, 2, 1, 2, 1, 1, 2, 2, 1]
    scores = np.array([[0.25, 0.5, 1.][v] for v in level])
    boxes = [[i, 0, i + 10, 10] for i in range(17)]
    _files(str(tmp_path), [boxes], scores=[scores])
    ds = _build(tmp_path, max_boxes_per_image=9)
    got = [int(i['bbox'][0]) for i in ds.get_data_info(0)['instances']]
    assert got == [0, 1, 2, 9, 10, 11, 12, 14, 15]


def test_an_image_without_boxes_is_redrawn_and_warned_once(tmp_path):
    keys, _ = _files(str(tmp_path), [[0, 0, 4, 4], [0, 0, 30, 30]])
    ds = _build(tmp_path, min_box_size=5, pipeline=[])
    results, logs = logged(lambda: [ds.prepare_data(0), ds.prepare_data(0)])
    assert results == [None, None]
    assert logs == [(logging.WARNING,
                     f'{NAME}: ' + osp.join(str(tmp_path), 'img/', keys[0]) +
                     ' has no pseudo box (after min_box_size); images without'
                     ' boxes are redrawn (reported once per process)')]
    assert ds.prepare_data(1)['instances'] == [
        dict(bbox=[0., 0., 30., 30.], bbox_label=1, ignore_flag=0)
    ]
    # testing keeps every image
    ds = _build(tmp_path, min_box_size=5, pipeline=[], test_mode=True)
    assert ds.prepare_data(0)['instances'] == []


def _corrupt(path, member, index, value):
    array = np.load(osp.join(path, member), mmap_mode='r+')
    array[index] = value
    array.flush()
    del array


def test_bad_offsets_and_labels_are_errors_of_that_image(tmp_path):
    # boxes 1, 1, 2: offsets 0, 1, 2, 4.  Offsets 0, 3, 2, 4 make image 1
    # read boxes 3:2; a label 2 of 2 classes is out of range.  Opening does
    # not scan the offsets (a pass over 14M rows); the bad image is an
    # error when it is read.
    keys, path = _files(
        str(tmp_path), [[0, 0, 1, 1], [0, 0, 2, 2], [[0, 0, 3, 3]] * 2])
    _corrupt(path, 'box_offsets.npy', 1, 3)
    _corrupt(path, 'image_labels.npy', 2, 2)
    ds = _build(tmp_path)
    assert len(ds.get_data_info(0)['instances']) == 3
    assert _error(BoxFileError, lambda: ds.get_data_info(1)) == (
        f'{path}: bad box offsets 3:2 for image 1 ({keys[1]})')
    assert _error(BoxFileError, lambda: ds.get_data_info(2)) == (
        f'{path}: image 2 ({keys[2]}) has label 2, outside [0, 2)')


def test_row_reader_errors_are_box_file_errors(tmp_path):
    _, path = _files(str(tmp_path), [[0, 0, 1, 1], [0, 0, 2, 2]])
    rows = ipb._RowReader(PseudoBoxFile.open(path))
    np.testing.assert_array_equal(rows.rows('boxes', 1, 2), [[0, 0, 2, 2]])
    assert _error(BoxFileError, lambda: rows.rows('boxes', 1, 3)) == (
        f'{path}/boxes.npy: rows 1:3 outside [0, 2]')


def test_no_data_list_and_a_subset_with_its_own_metainfo(tmp_path):
    _files(str(tmp_path), [[0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 3, 3]])
    ds = _build(tmp_path, metainfo=dict(classes=('a', 'b')))
    assert _error(NotImplementedError, ds.load_data_list) == (
        f'{NAME} keeps no data list (it would not fit for ImageNet-22K); '
        'use len() and get_data_info(i)')
    sub = ds.get_subset([2, 0])
    assert [sub.get_data_info(i)['img_id'] for i in range(2)] == [2, 0]
    assert sub.metainfo == dict(classes=('a', 'b'))


def test_lazy_dataset_pickles_before_opening_and_keeps_small_boxes(tmp_path):
    # a dataloader worker may get the dataset before it was opened; the
    # default min_box_size 0 keeps a box of half a pixel
    _files(str(tmp_path), [[0, 0, 0.5, 0.5]])
    clone = pickle.loads(pickle.dumps(_build(tmp_path, lazy_init=True)))
    assert len(clone) == 1
    assert clone.get_data_info(0)['instances'] == [
        dict(bbox=[0., 0., 0.5, 0.5], bbox_label=0, ignore_flag=0)
    ]


def test_class_folders_of_another_count_name_the_folder(tmp_path):
    keys, path = _files(str(tmp_path), [[0, 0, 1, 1], [0, 0, 2, 2]])
    for key in keys:
        os.makedirs(osp.dirname(str(tmp_path / 'img' / key)), exist_ok=True)
        (tmp_path / 'img' / key).write_bytes(b'')
    os.makedirs(tmp_path / 'img' / 'c2')  # a third (empty) class folder
    root = osp.join(str(tmp_path), 'img/')
    assert _error(BoxFileError, lambda: _build(tmp_path, ann_file='')) == (
        f'class folders under {root} hold 3 classes but the pseudo-box file '
        f'{path} has 2')


def test_streamed_digest_labels_past_a_byte_and_bad_label_messages():
    # 257 classes: label 256 needs two bytes
    digest = ipb._ImageListDigest(2, 257)
    digest.add(b'a\nb\n', [256, 0], 'list.txt')
    assert digest.hexdigest() == image_list_fingerprint(['a', 'b'], [256, 0])
    # the key named is the whole line's key, spaces included
    assert _error(
        BoxFileError, lambda: ipb._ImageListDigest(2, 2).
        add(b'a b.JPEG\nc\n', [5, 0], 'list.txt')) == (
            "list.txt: image 'a b.JPEG' has label 5, outside the pseudo-box "
            "file's 2 classes")


def test_positional_arguments_reach_mmdet(tmp_path):
    # BaseDetDataset's own order: ann_file, metainfo, data_root, data_prefix
    _files(str(tmp_path), [[[1, 2, 11, 12]], [[3, 4, 13, 14]]])
    ds = ImageNetPseudoBoxDataset(
        'train.txt',
        None,
        str(tmp_path),
        dict(img='img/'),
        box_file='boxes.dapbox')
    assert ds.ann_file == osp.join(str(tmp_path), 'train.txt')
    assert len(ds) == 2
    assert ds.get_data_info(1)['img_path'] == osp.join(
        str(tmp_path), 'img/', 'c1/1.JPEG')
