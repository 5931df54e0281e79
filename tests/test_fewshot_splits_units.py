"""k-shot split functions in-process, on tiny hand-made datasets."""
import json
import os
import os.path as osp
import tempfile

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
