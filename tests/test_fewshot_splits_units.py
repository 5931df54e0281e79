"""k-shot split functions in-process, on tiny hand-made datasets."""
import json
import os
import os.path as osp
import tempfile

import numpy as np
import pytest

from projects.dap.dap.fewshot import splits as S


def test_clean_up_drops_an_image_and_lowers_its_counts():
    # shot 1, seed 0; every class is in 2 images, so classes go 0, 1, 2 and
    # RandomState([0, c]).permutation(2) == [0, 1] keeps id order:
    # class 0 takes C, class 1 takes A; class 2 cannot avoid an overshoot
    # (B pushes 1, D pushes 0) and takes B, the first of equal cost.
    # Clean-up (latest first): B stays (class 2 has 1), A only adds to
    # class 1 (2 > 1) and is dropped: class 1 is back to 1.
    image_classes = {'A': [1], 'B': [1, 2], 'C': [0], 'D': [0, 2]}
    result = S.select_fewshot(image_classes, 3, 1, 0)
    assert result == dict(
        images=['B', 'C'],
        counts=[1, 1, 1],
        available=[2, 2, 2],
        under=[],
        over=[])


def test_write_atomic_needs_no_system_temp_dir(tmp_path, monkeypatch):
    # the temporary file lies beside the target (one file system, so the
    # final rename is atomic), not in the system's temp dir
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path / 'no_such_dir'))
    path = tmp_path / 'a' / 'b' / 'list.txt'
    S.write_atomic(str(path), 'x\ny\n')
    assert path.read_text() == 'x\ny\n'
    assert os.listdir(path.parent) == ['list.txt']
    with pytest.raises(TypeError):
        S.write_atomic(str(path), b'not text')
    assert path.read_text() == 'x\ny\n'  # the old file is intact
    assert os.listdir(path.parent) == ['list.txt']


def test_split_file_names_and_the_error_for_other_sources(tmp_path):
    assert S.split_file('d/ImageSets/Main/trainval.txt', 5,
                        1) == ('d/ImageSets/Main/trainval_5shot_seed1.txt')
    assert S.split_file('ann/instances_train2017.json', 10.0, 2,
                        str(tmp_path)) == osp.join(
                            str(tmp_path),
                            'instances_train2017_10shot_seed2.json')
    with pytest.raises(ValueError) as err:
        S.split_file('ann/train.csv', 5, 0)
    assert str(err.value) == (
        'ann/train.csv: a split source is a VOC ImageSets list (.txt) or a '
        'COCO instances json (.json)')


def _voc(root, objects):
    """VOC year folder; ``objects``: image id -> class names."""
    os.makedirs(osp.join(root, 'ImageSets', 'Main'))
    os.makedirs(osp.join(root, 'Annotations'))
    with open(osp.join(root, 'ImageSets', 'Main', 'trainval.txt'), 'w') as f:
        f.write(''.join(f'{i}\n' for i in objects))
    for image_id, names in objects.items():
        with open(osp.join(root, 'Annotations', f'{image_id}.xml'), 'w') as f:
            f.write('<annotation>' + ''.join(
                f'<object><name>{n}</name><difficult>0</difficult></object>'
                for n in names) + '</annotation>')
    return osp.join(root, 'ImageSets', 'Main', 'trainval.txt')


def test_make_missing_splits_of_a_custom_voc_dataset(tmp_path):
    source = _voc(
        str(tmp_path / 'voc'), {
            '001': ['cat'],
            '002': ['dog'],
            '003': ['cat', 'dog'],
        })
    out = str(tmp_path / 'out')
    # shot 1 seed 0: 'cat' (index 0; both classes in 2 images) takes 001,
    # 'dog' takes 002 (003 would push cat to 2)
    reports = S.make_missing_splits(
        source, [1], [0], classes=('cat', 'dog'), split_dir=out)
    path = osp.join(out, 'trainval_1shot_seed0.txt')
    assert [r['file'] for r in reports] == [path]
    assert reports[0]['counts'] == dict(cat=1, dog=1)
    with open(path) as f:
        assert f.read() == '001\n002\n'
    assert sorted(os.listdir(osp.dirname(source))) == ['trainval.txt']
    # made once: only the missing (k, seed) is made now
    reports = S.make_missing_splits(
        source, [1, 2], [0], classes=('cat', 'dog'), split_dir=out)
    assert [(r['shot'], r['seed']) for r in reports] == [(2, 0)]
    assert S.make_missing_splits(source, [1, 2], [0], ('cat', 'dog'),
                                 out) == []


def test_make_splits_of_coco_keeps_other_keys_first_and_obeys_split_dir(
        tmp_path):
    data = {
        'info': {
            'v': 1
        },
        'images': [{
            'id': 2
        }, {
            'id': 1
        }],
        'annotations': [
            {
                'id': 7,
                'image_id': 2,
                'category_id': 5
            },
            {
                'id': 3,
                'image_id': 1,
                'category_id': 9,
                'iscrowd': 1
            },
            {
                'id': 4,
                'image_id': 1,
                'category_id': 5
            },
        ],
        'licenses': [],
        'categories': [{
            'id': 9,
            'name': 'b'
        }, {
            'id': 5,
            'name': 'a'
        }],
    }
    source = str(tmp_path / 'instances_train.json')
    with open(source, 'w') as f:
        json.dump(data, f)
    out = str(tmp_path / 'splits')
    # 'b' is in no image (its only annotation is a crowd one)
    reports = S.make_splits(source, [(1, 0)], split_dir=out)
    path = osp.join(out, 'instances_train_1shot_seed0.json')
    assert reports[0]['file'] == path
    assert reports[0]['under'] == dict(b=dict(count=0, available=0))
    with open(path) as f:
        written = json.load(f)
    assert list(written) == [
        'info', 'licenses', 'images', 'annotations', 'categories'
    ]
    assert written['info'] == {'v': 1} and written['licenses'] == []
    assert written['categories'] == data['categories']
    # RandomState([0, 0]).permutation(2) == [0, 1]: image 1 first
    assert written['images'] == [{'id': 1}]
    assert [a['id'] for a in written['annotations']] == [3, 4]
    assert not osp.exists(str(tmp_path / 'instances_train_1shot_seed0.json'))


def test_a_chosen_image_is_never_taken_twice():
    # shot 2: class 1 (1 image) goes first and takes B, staying under k;
    # class 0 must then skip B (already chosen) and take A
    result = S.select_fewshot({'A': [0], 'B': [0, 1]}, 2, 2, 0)
    assert result == dict(
        images=['A', 'B'], counts=[2, 1], available=[2, 1], under=[1], over=[])


def test_make_coco_splits_reports_and_errors(tmp_path):
    data = dict(
        images=[{
            'id': 1
        }],
        categories=[{
            'id': 3,
            'name': 'a'
        }],
        annotations=[{
            'id': 1,
            'image_id': 1,
            'category_id': 3
        }])
    source = str(tmp_path / 'train.json')
    with open(source, 'w') as f:
        json.dump(data, f)
    out = str(tmp_path / 'out')
    reports = S.make_coco_splits(source, [1], [4], split_dir=out)
    assert [(r['file'], r['shot'], r['seed'])
            for r in reports] == [(osp.join(out,
                                            'train_1shot_seed4.json'), 1, 4)]
    assert osp.isfile(reports[0]['file'])
    with pytest.raises(ValueError) as err:
        S.make_splits(source, [(1, 0)], classes=('a', ))
    assert str(err.value) == ('class names are for VOC; COCO classes come '
                              'from the json categories')


def test_read_voc_without_the_list_names_the_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        S.read_voc(str(tmp_path), 'val')
    list_file = osp.join(str(tmp_path), 'ImageSets', 'Main', 'val.txt')
    assert str(err.value) == (
        f'{list_file} not found: VOC_ROOT must be a VOC year folder such as '
        'data/VOCdevkit/VOC2007 with ImageSets/Main/val.txt')


def _permuted(seed, c, n):
    return [int(i) for i in np.random.RandomState([seed, c]).permutation(n)]


def test_pass_two_takes_the_image_that_pushes_fewest_other_classes():
    # shot 1, seed 0; available: class 3 in 1 image (D), class 1 in 2
    # (C, D), class 2 in 3 (A, B, C), class 0 in 4: classes go 3, 1, 2, 0.
    # Class 3 takes D (counts 1, 1, 0, 1); class 1 is then done.  Class 2's
    # candidates A, B, C permuted by [2, 0, 1] are C, A, B; every one has
    # class 0 (at k), so pass 1 takes none.  Pass 2 counts the *other*
    # classes each would push above k: C 2 (0 and 1), A 1, B 1, and takes
    # A, the first of the fewest (not C, the first in order).  Clean-up
    # keeps A (class 2 has 1) and D (class 1 has 1): only class 0 is over.
    assert _permuted(0, 2, 3) == [2, 0, 1]
    image_classes = {'A': [0, 2], 'B': [0, 2], 'C': [0, 1, 2], 'D': [0, 1, 3]}
    result = S.select_fewshot(image_classes, 4, 1, 0)
    assert result == dict(
        images=['A', 'D'],
        counts=[2, 1, 1, 1],
        available=[4, 2, 3, 1],
        under=[],
        over=[0])


def test_clean_up_lowers_a_count_by_one_at_shot_two():
    # shot 2, seed 0; available: class 2 in 3 images (B, E, F), classes 0
    # and 1 in 4 each: classes go 2, 0, 1.
    # Class 2: B, E, F permuted by [2, 0, 1] are F, B, E; pass 1 takes F
    # (counts 1, 1, 1) and B (1, 1, 2).
    # Class 0: A, C, D, F permuted by [0, 2, 3, 1] are A, D, F, C; pass 1
    # takes A (2, 1, 2).
    # Class 1: C, D, E, F permuted by [1, 2, 0, 3] are D, E, C, F; pass 1
    # takes none (D and C push class 0, E class 2 above k; F is chosen);
    # pass 2: each of D, E, C pushes one other class, D is first (3, 2, 2).
    # Clean-up, latest first: D stays (class 1 has 2), A only adds to class
    # 0 (3 > 2) and is dropped, so class 0 goes from 3 to 2; B and F stay.
    assert _permuted(0, 2, 3) == [2, 0, 1]
    assert _permuted(0, 0, 4) == [0, 2, 3, 1]
    assert _permuted(0, 1, 4) == [1, 2, 0, 3]
    image_classes = {
        'A': [0],
        'B': [2],
        'C': [0, 1],
        'D': [0, 1],
        'E': [1, 2],
        'F': [0, 1, 2]
    }
    result = S.select_fewshot(image_classes, 3, 2, 0)
    assert result == dict(
        images=['B', 'D', 'F'],
        counts=[2, 2, 2],
        available=[4, 4, 3],
        under=[],
        over=[])


def test_coco_annotations_without_id_sort_as_id_zero(tmp_path):
    # one image, so the split is that image; its annotations are sorted
    # by id, one without an id as id 0: before id 1 although it comes later
    # in the json (a stable sort would keep it after id 1 on a tie)
    data = dict(
        images=[{
            'id': 1
        }],
        categories=[{
            'id': 3,
            'name': 'a'
        }],
        annotations=[{
            'id': 2,
            'image_id': 1,
            'category_id': 3
        }, {
            'id': 1,
            'image_id': 1,
            'category_id': 3
        }, {
            'image_id': 1,
            'category_id': 3
        }])
    source = str(tmp_path / 'train.json')
    with open(source, 'w') as f:
        json.dump(data, f)
    S.make_splits(source, [(1, 0)])
    with open(str(tmp_path / 'train_1shot_seed0.json')) as f:
        written = json.load(f)
    assert [a.get('id') for a in written['annotations']] == [None, 1, 2]


def test_read_voc_an_empty_name_is_a_clear_error(tmp_path):
    # <name/> has no text at all (None, not a blank string)
    source = _voc(str(tmp_path / 'voc'), {'001': []})
    with open(osp.join(str(tmp_path / 'voc'), 'Annotations', '001.xml'),
              'w') as f:
        f.write('<annotation><object><name/></object></annotation>')
    xml_path = osp.join(str(tmp_path / 'voc'), 'Annotations', '001.xml')
    with pytest.raises(ValueError) as err:
        S.read_voc(osp.dirname(osp.dirname(osp.dirname(source))))
    assert str(err.value) == f'{xml_path}: an object has no <name>'
