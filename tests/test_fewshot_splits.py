"""tools/dataset_converters/make_fewshot_splits.py: k-shot VOC / COCO splits.

Hand-computed greedy cases, invariants on random data, and the tool run as a
subprocess on generated VOC (XML) and COCO (json) annotations.
"""
import json
import os
import os.path as osp
import random
import sys

import numpy as np
import pytest
from conftest import REPO, run_tool

TOOL = osp.join(REPO, 'tools', 'dataset_converters', 'make_fewshot_splits.py')
sys.path.insert(0, osp.dirname(TOOL))
from make_fewshot_splits import VOC_CLASSES, main, select_fewshot  # noqa: E402


def test_forced_overshoot_is_reported():
    # k=1. Classes 1 and 2 have one image each and both contain class 0:
    # class 1 is visited first (rarest, lower index) and takes x; class 2
    # can only take y, which pushes class 0 to 2 images.
    r = select_fewshot({'x': [0, 1], 'y': [0, 2]}, 3, shot=1, seed=0)
    assert r['images'] == ['x', 'y']
    assert r['counts'] == [2, 1, 1]
    assert r['over'] == [0] and r['under'] == []


def test_multi_class_image_counts_for_each_class():
    # k=1: class 0 (one image, x) is visited first; x also gives class 1 its
    # image, so y and z are not needed.
    r = select_fewshot({'x': [0, 1], 'y': [1], 'z': [1]}, 2, shot=1, seed=3)
    assert r['images'] == ['x'] and r['counts'] == [1, 1]
    assert r['over'] == [] and r['under'] == []


def test_too_few_images_is_reported_and_all_are_used():
    r = select_fewshot({
        'a': [0],
        'b': [1],
        'c': [1],
        'd': [1]
    },
                       2,
                       shot=2,
                       seed=0)
    assert r['under'] == [0] and r['available'] == [1, 3]
    assert 'a' in r['images'] and r['counts'] == [1, 2]


def test_pass_one_avoids_pushing_a_full_class_over_k():
    # k=1: class 1 (rarest) takes p or q.  After p, the image q would push
    # class 1 to 2, so class 0 takes r or t; q is never taken after p.
    data = {'p': [1], 'q': [0, 1], 'r': [0], 't': [0]}
    outcomes = set()
    for seed in range(10):
        res = select_fewshot(data, 2, shot=1, seed=seed)
        assert res['counts'] == [1, 1], (seed, res)
        assert res['images'] in (['q'], ['p', 'r'], ['p', 't']), res
        outcomes.add(tuple(res['images']))
    assert len(outcomes) > 1  # the seed matters


def _random_data(seed, num_images=400, num_classes=8):
    rng = np.random.default_rng(seed)
    data = {}
    for i in range(num_images):
        n = int(rng.choice([1, 1, 1, 2, 3]))
        # skewed class frequencies, one very rare class
        p = np.array([30, 20, 10, 8, 5, 3, 2, 0.05])
        data[f'img{i:04d}'] = rng.choice(
            num_classes, size=n, p=p / p.sum()).tolist()
    return data


@pytest.mark.parametrize('shot', [1, 5, 10])
def test_invariants_on_random_data(shot):
    data = _random_data(0)
    for seed in (0, 1):
        r = select_fewshot(data, 8, shot, seed)
        chosen = set(r['images'])
        counts = [0] * 8
        for i in chosen:
            for c in set(data[i]):
                counts[c] += 1
        assert counts == r['counts']
        available = [sum(c in set(v) for v in data.values()) for c in range(8)]
        assert available == r['available']
        for c in range(8):
            # under k only when fewer than k images contain the class
            assert (counts[c] < shot) == (available[c] < shot)
            if available[c] < shot:
                assert counts[c] == available[c]  # all of them are used
        assert r['under'] == [c for c in range(8) if counts[c] < shot]
        assert r['over'] == [c for c in range(8) if counts[c] > shot]
        # no chosen image is redundant (clean-up step)
        for i in chosen:
            assert any(counts[c] <= shot for c in set(data[i]))


def test_exactly_k_when_single_class_images_exist():
    rng = np.random.default_rng(1)
    data = {
        f'm{i}': rng.choice(6, size=2, replace=False).tolist()
        for i in range(60)
    }
    data.update({f's{i}': [i % 6] for i in range(120)})
    for shot in (1, 5, 10, 20):
        for seed in (0, 1, 2):
            r = select_fewshot(data, 6, shot, seed)
            assert r['counts'] == [shot] * 6, (shot, seed, r['counts'])


def test_deterministic_and_independent_of_dict_order():
    data = _random_data(2)
    items = list(data.items())
    random.Random(0).shuffle(items)
    shuffled = dict(items)
    a = select_fewshot(data, 8, 5, seed=7)
    assert a == select_fewshot(data, 8, 5, seed=7)
    assert a == select_fewshot(shuffled, 8, 5, seed=7)
    # another seed gives another split
    assert a['images'] != select_fewshot(data, 8, 5, seed=8)['images']


def test_bad_arguments():
    with pytest.raises(ValueError, match='shot'):
        select_fewshot({'a': [0]}, 1, 0, 0)
    with pytest.raises(ValueError, match='outside'):
        select_fewshot({'a': [3]}, 2, 1, 0)


# ---------------------------------------------------------- VOC, CLI

VOC_USED = VOC_CLASSES[:4]  # aeroplane, bicycle, bird, boat


def _voc_xml(objects):
    objs = ''.join(
        f'<object><name>{name}</name><difficult>{int(diff)}</difficult>'
        '<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>50</xmax>'
        '<ymax>50</ymax></bndbox></object>' for name, diff in objects)
    return ('<annotation><size><width>128</width><height>96</height>'
            f'<depth>3</depth></size>{objs}</annotation>')


def make_voc(root, num_images=80, seed=0, rare_images=2):
    """Annotations + trainval.txt of a VOC2007-like folder (no images)."""
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'Annotations'))
    os.makedirs(osp.join(root, 'ImageSets', 'Main'))
    ids = []
    for i in range(num_images):
        image_id = f'{i:06d}'
        names = [
            VOC_USED[int(rng.integers(3))]
            for _ in range(int(rng.integers(1, 3)))
        ]
        objects = [(n, False) for n in names]
        if i < rare_images:  # the only images with a boat
            objects.append(('boat', False))
        if i == num_images - 1:  # a difficult-only boat does not count
            objects = [('boat', True), ('aeroplane', False)]
        with open(osp.join(root, 'Annotations', image_id + '.xml'), 'w') as f:
            f.write(_voc_xml(objects))
        ids.append(image_id)
    with open(osp.join(root, 'ImageSets', 'Main', 'trainval.txt'), 'w') as f:
        f.write('\n'.join(ids) + '\n')
    return root


def _read_ids(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def test_voc_cli_writes_lists_reports_and_is_deterministic(tmp_path):
    voc = make_voc(str(tmp_path / 'VOC2007'))
    args = [
        TOOL, 'voc', voc, '--classes', *VOC_USED, '--shots', '1', '3',
        '--seeds', '0', '1', '--report', tmp_path / 'report.json'
    ]
    out = run_tool(args).stdout
    main_dir = osp.join(voc, 'ImageSets', 'Main')
    files = sorted(f for f in os.listdir(main_dir) if 'shot' in f)
    assert files == [
        f'trainval_{k}shot_seed{s}.txt' for k in (1, 3) for s in (0, 1)
    ]
    first = {f: open(osp.join(main_dir, f)).read() for f in files}
    run_tool(args)  # again: byte-identical
    assert first == {f: open(osp.join(main_dir, f)).read() for f in files}

    # only two images contain a (non-difficult) boat: k=3 cannot be reached
    assert 'under k: boat: 2 (only 2 images contain it)' in out
    reports = json.load(open(tmp_path / 'report.json'))
    for rep in reports:
        ids = _read_ids(rep['file'])
        assert ids == sorted(ids) and len(ids) == rep['num_images']
        # recount from the XML files: n_c as the report says
        counts = dict.fromkeys(VOC_USED, 0)
        for i in ids:
            text = open(osp.join(voc, 'Annotations', i + '.xml')).read()
            for name in VOC_USED:
                if f'<name>{name}</name><difficult>0' in text:
                    counts[name] += 1
        assert counts == rep['counts']
        k = rep['shot']
        for name in ('aeroplane', 'bicycle', 'bird'):
            assert counts[name] == k or name in rep['over']
        assert counts['boat'] == min(k, 2) or 'boat' in rep['over']
    # the difficult-only boat image never counts for boat
    assert all(rep['counts']['boat'] <= 2 for rep in reports)


def test_out_dir_keeps_a_read_only_dataset_untouched(tmp_path):
    """--out-dir: the same split files, written elsewhere."""
    voc = make_voc(str(tmp_path / 'VOC2007'))
    main_dir = osp.join(voc, 'ImageSets', 'Main')
    before = sorted(os.listdir(main_dir))
    out_dir = tmp_path / 'splits'
    args = [
        TOOL, 'voc', voc, '--classes', *VOC_USED, '--shots', '1', '--seeds',
        '4'
    ]
    run_tool(args + ['--out-dir', out_dir])
    assert sorted(os.listdir(main_dir)) == before
    assert os.listdir(out_dir) == ['trainval_1shot_seed4.txt']
    run_tool(args)  # beside the source: the same split
    assert (out_dir / 'trainval_1shot_seed4.txt').read_text() == open(
        osp.join(main_dir, 'trainval_1shot_seed4.txt')).read()


def test_voc_default_classes_report_absent_classes(tmp_path, capsys):
    voc = make_voc(str(tmp_path / 'VOC2007'), num_images=20)
    assert main(['voc', voc, '--shots', '1', '--seeds', '0']) == 0
    out = capsys.readouterr().out
    # 16 VOC classes do not occur at all: each is reported
    assert out.count('(only 0 images contain it)') == 16
    assert 'under k: person: 0' in out


def test_voc_bad_input_is_a_clear_error(tmp_path):
    voc = make_voc(str(tmp_path / 'VOC2007'), num_images=5)
    proc = run_tool([TOOL, 'voc', tmp_path], check=False)
    assert proc.returncode == 1 and 'trainval.txt' in proc.stdout
    # a class outside the list
    with open(osp.join(voc, 'Annotations', '000001.xml'), 'w') as f:
        f.write(_voc_xml([('unicorn', False)]))
    proc = run_tool([TOOL, 'voc', voc, '--classes', *VOC_USED], check=False)
    assert proc.returncode == 1 and 'unicorn' in proc.stdout
    # broken XML
    with open(osp.join(voc, 'Annotations', '000001.xml'), 'w') as f:
        f.write('<annotation><object>')
    proc = run_tool([TOOL, 'voc', voc, '--classes', *VOC_USED], check=False)
    assert proc.returncode == 1 and '000001.xml' in proc.stdout
    # nothing was written
    assert not [
        f
        for f in os.listdir(osp.join(voc, 'ImageSets', 'Main')) if 'shot' in f
    ]


# ---------------------------------------------------------- COCO, CLI


def make_coco(path, num_images=120, seed=0, shuffle=False):
    rng = np.random.default_rng(seed)
    cats = [
        dict(id=i, name=n) for i, n in ((1, 'person'), (3, 'car'), (18, 'dog'),
                                        (90, 'toothbrush'))
    ]
    images, anns = [], []
    for i in range(num_images):
        images.append(
            dict(id=1000 + i, file_name=f'{i:012d}.jpg', width=128, height=96))
        for _ in range(int(rng.integers(1, 4))):
            cat = [1, 3, 18][int(rng.integers(3))]
            anns.append(
                dict(
                    id=len(anns) + 1,
                    image_id=1000 + i,
                    category_id=cat,
                    bbox=[1, 1, 40, 40],
                    area=1600,
                    iscrowd=0))
    # toothbrush: three images, one of them only as a crowd region
    for i, crowd in ((0, 0), (1, 0), (2, 1)):
        anns.append(
            dict(
                id=len(anns) + 1,
                image_id=1000 + i,
                category_id=90,
                bbox=[5, 5, 40, 40],
                area=1600,
                iscrowd=crowd))
    if shuffle:
        order = np.random.default_rng(99)
        images = [images[j] for j in order.permutation(len(images))]
        anns = [anns[j] for j in order.permutation(len(anns))]
        cats = cats[::-1]
    data = dict(
        info=dict(description='generated'),
        images=images,
        annotations=anns,
        categories=cats)
    with open(path, 'w') as f:
        json.dump(data, f)
    return data


def test_coco_cli_keeps_all_annotations_and_ignores_crowd(tmp_path):
    src = tmp_path / 'instances_train2017.json'
    data = make_coco(src)
    out = run_tool([TOOL, 'coco', src, '--shots', '2', '5', '--seeds',
                    '0']).stdout
    # only two images have a non-crowd toothbrush
    assert 'under k: toothbrush: 2 (only 2 images contain it)' in out
    split = json.load(open(tmp_path / 'instances_train2017_2shot_seed0.json'))
    assert split['categories'] == data['categories']
    assert split['info'] == data['info']
    ids = [img['id'] for img in split['images']]
    assert ids == sorted(ids)
    expected = sorted(
        (a for a in data['annotations'] if a['image_id'] in set(ids)),
        key=lambda a: a['id'])
    assert split['annotations'] == expected  # crowd ones included
    counts = {}
    for cat in (1, 3, 18, 90):
        counts[cat] = len({
            a['image_id']
            for a in split['annotations']
            if a['category_id'] == cat and not a['iscrowd']
        })
    assert counts[90] == 2
    for cat in (1, 3, 18):
        assert counts[cat] >= 2  # exactly 2 unless reported over
        if counts[cat] > 2:
            name = {1: 'person', 3: 'car', 18: 'dog'}[cat]
            assert f'over k: {name}: {counts[cat]}' in out


def test_coco_independent_of_json_order(tmp_path):
    a, b = tmp_path / 'a', tmp_path / 'b'
    a.mkdir(), b.mkdir()
    make_coco(a / 'train.json')
    make_coco(b / 'train.json', shuffle=True)
    for folder in (a, b):
        run_tool([
            TOOL, 'coco', folder / 'train.json', '--shots', '3', '--seeds', '4'
        ])
    sa = json.load(open(a / 'train_3shot_seed4.json'))
    sb = json.load(open(b / 'train_3shot_seed4.json'))
    assert sa['images'] == sb['images']
    assert sa['annotations'] == sb['annotations']


def test_coco_bad_input_is_a_clear_error(tmp_path):
    src = tmp_path / 'train.json'
    data = make_coco(src, num_images=5)
    data['annotations'].append(
        dict(
            id=999, image_id=4242, category_id=1, bbox=[0, 0, 1, 1],
            iscrowd=0))
    with open(src, 'w') as f:
        json.dump(data, f)
    proc = run_tool([TOOL, 'coco', src], check=False)
    assert proc.returncode == 1 and 'unknown image 4242' in proc.stdout
    src.write_text('{"images": [')
    proc = run_tool([TOOL, 'coco', src], check=False)
    assert proc.returncode == 1 and 'not valid JSON' in proc.stdout
    assert sorted(os.listdir(tmp_path)) == ['train.json']


# ------------------------------------------- the library, in-process
# (the CLI tests above run the tool as a subprocess; these call the
# functions it uses directly, with hand-written annotations)

from projects.dap.dap.fewshot import splits as S  # noqa: E402


def test_ids_sort_numbers_numerically_then_strings():
    # 9 < 10 as numbers (not as text); numpy integers are numbers too
    r = select_fewshot({
        10: [0],
        np.int64(9): [1],
        'b': [2],
        'a': [3]
    },
                       4,
                       shot=1,
                       seed=0)
    assert r['images'] == [9, 10, 'a', 'b']


def test_images_without_classes_are_never_chosen():
    r = select_fewshot({'empty': [], 'x': [0, 0]}, 1, shot=2, seed=0)
    assert r['images'] == ['x'] and r['counts'] == [1]  # duplicates: once
    assert r['available'] == [1] and r['under'] == [0]


def test_seed_range():
    assert select_fewshot({'a': [0]}, 1, 1, 2**32 - 1)['images'] == ['a']
    for seed in (-1, 2**32):
        with pytest.raises(ValueError, match=r'seed must be in \[0, 2\*\*32'):
            select_fewshot({'a': [0]}, 1, 1, seed)
    with pytest.raises(ValueError, match='shot must be >= 1, got 0'):
        select_fewshot({'a': [0]}, 1, 0, 0)
    with pytest.raises(
            ValueError,
            match=r"image 'a' has class indices "
            r'\(-1,\) outside \[0, 2\)'):
        select_fewshot({'a': [-1]}, 2, 1, 0)
    with pytest.raises(ValueError, match=r'outside \[0, 2\)'):
        select_fewshot({'a': [2]}, 2, 1, 0)
    assert select_fewshot({'a': [1]}, 2, 1, 0)['counts'] == [0, 1]


def test_pass_one_skips_images_that_would_push_a_full_class_over_k():
    # k=1.  Class 2 (rarest, one image u) takes u = [1, 2]: class 1 full.
    # Class 0's images all contain another class: v = [0, 1] pushes class
    # 1 over k, w = [0, 3] pushes nobody over (class 3 still has none), so
    # pass 1 takes w whatever the seed.  Class 3 is then full as well.
    data = {'u': [1, 2], 'v': [0, 1], 'w': [0, 3], 'z': [3], 'y': [1]}
    for seed in range(4):
        r = select_fewshot(data, 4, shot=1, seed=seed)
        assert r['images'] == ['u', 'w'], (seed, r)
        assert r['counts'] == [1, 1, 1, 1] and not r['over']


def test_the_rarest_class_takes_all_it_needs_first():
    # k=2: class 1 (rarest) needs both its images, each also of class 0,
    # so class 0 reaches 2 without any of its own images.
    data = {'m1': [0, 1], 'm2': [0, 1], 's1': [0], 's2': [0], 's3': [0]}
    for seed in range(3):
        r = select_fewshot(data, 2, shot=2, seed=seed)
        assert r['images'] == ['m1', 'm2'] and r['counts'] == [2, 2]


def _xml(*objects):
    """VOC XML; an object is (name,), (name, difficult text) or None for
    an object without <name>."""
    parts = []
    for obj in objects:
        if obj is None:
            parts.append('<object><pose>x</pose></object>')
            continue
        diff = '' if len(obj) == 1 else f'<difficult>{obj[1]}</difficult>'
        parts.append(f'<object><name> {obj[0]} </name>{diff}</object>')
    return f'<annotation>{"".join(parts)}</annotation>'


def _voc(root, annotations, ids=None):
    """A VOC year folder from {image id: xml text}."""
    os.makedirs(osp.join(root, 'Annotations'))
    os.makedirs(osp.join(root, 'ImageSets', 'Main'))
    for image_id, text in annotations.items():
        with open(osp.join(root, 'Annotations', image_id + '.xml'), 'w') as f:
            f.write(text)
    ids = list(annotations) if ids is None else ids
    with open(osp.join(root, 'ImageSets', 'Main', 'trainval.txt'), 'w') as f:
        f.write('\n'.join(ids) + '\n\n')
    return str(root)


def test_read_voc_counts_objects_not_marked_difficult(tmp_path):
    classes = ('aeroplane', 'bicycle', 'bird')
    root = _voc(
        tmp_path / 'VOC',
        {
            '1': _xml(('bird', '0'), ('bird', '1'), ('aeroplane', '')),
            '2': _xml(('bicycle', '1')),  # difficult only: no class
            '3': _xml(('bicycle', ), ('aeroplane', '0')),  # no <difficult>
        })
    assert S.read_voc(root, 'trainval', classes) == {
        '1': [2, 0],
        '2': [],
        '3': [1, 0]
    }
    assert S.read_voc(
        root, classes=('bird', 'bicycle', 'aeroplane', 'x')) == {
            '1': [0, 2],
            '2': [],
            '3': [1, 2]
        }


def test_read_voc_errors(tmp_path):
    classes = ('bird', )
    with pytest.raises(FileNotFoundError, match='ImageSets/Main/trainval.txt'):
        S.read_voc(str(tmp_path), 'trainval', classes)
    root = _voc(tmp_path / 'a', {'1': _xml(('bird', ))}, ids=['1', '1'])
    with pytest.raises(ValueError, match='lists some image ids twice'):
        S.read_voc(root, classes=classes)
    root = _voc(tmp_path / 'b', {'1': _xml(('bird', ))}, ids=['1', '2'])
    with pytest.raises(
            FileNotFoundError,
            match=r'annotation .*2\.xml of image 2 is missing'):
        S.read_voc(root, classes=classes)
    root = _voc(tmp_path / 'c', {'1': '<annotation><object>'})
    with pytest.raises(ValueError, match=r'cannot parse .*1\.xml'):
        S.read_voc(root, classes=classes)
    for bad in (None, ('  ', )):
        root = _voc(tmp_path / f'd{bad is None}', {'1': _xml(bad)})
        with pytest.raises(
                ValueError, match=r'1\.xml: an object has no '
                '<name>'):
            S.read_voc(root, classes=classes)
    root = _voc(tmp_path / 'e', {
        '1': _xml(('cat', ), ('dog', '1')),
        '2': _xml(('bird', ), ('ant', ))
    })
    with pytest.raises(
            ValueError,
            match=r"classes \['ant', 'cat', 'dog'\] "
            r'are not in the class list \(1 classes\)'):
        S.read_voc(root, classes=classes)


def _coco(path, **changes):
    data = dict(
        info=dict(year=2017),
        images=[
            dict(id=7, file_name='7.jpg'),
            dict(id=3, file_name='3.jpg'),
            dict(id=12, file_name='12.jpg')
        ],
        annotations=[
            dict(id=5, image_id=7, category_id=18, iscrowd=0),
            dict(id=2, image_id=7, category_id=1),  # iscrowd absent: 0
            dict(id=9, image_id=3, category_id=18, iscrowd=1),  # crowd
            dict(id=4, image_id=12, category_id=1, iscrowd=0),
        ],
        categories=[dict(id=18, name='dog'),
                    dict(id=1, name='person')])
    data.update(changes)
    with open(path, 'w') as f:
        json.dump(data, f)
    return data


def test_read_coco_indexes_categories_by_id_and_skips_crowd(tmp_path):
    data = _coco(tmp_path / 'a.json')
    loaded, image_classes, categories = S.read_coco(str(tmp_path / 'a.json'))
    assert loaded == data
    assert [c['name'] for c in categories] == ['person', 'dog']
    assert image_classes == {7: [1, 0], 3: [], 12: [0]}


@pytest.mark.parametrize('change, message', [
    (dict(images=None), 'has no "images" list; is it a COCO instances'),
    (dict(annotations={}), 'has no "annotations" list'),
    (dict(categories=[dict(id=1, name='a'),
                      dict(id=1, name='b')]), 'duplicate category ids'),
    (dict(images=[dict(id=7), dict(id=7)],
          annotations=[]), 'duplicate image id 7'),
    (dict(annotations=[dict(id=8, image_id=4, category_id=1)]),
     'annotation 8 refers to unknown image 4'),
    (dict(annotations=[dict(id=8, image_id=7, category_id=2)]),
     'annotation 8 has unknown category 2'),
])
def test_read_coco_errors(tmp_path, change, message):
    _coco(tmp_path / 'a.json', **change)
    with pytest.raises(ValueError, match=message):
        S.read_coco(str(tmp_path / 'a.json'))


def test_read_coco_invalid_json(tmp_path):
    (tmp_path / 'a.json').write_text('{"images": [')
    with pytest.raises(ValueError, match=r'a\.json is not valid JSON'):
        S.read_coco(str(tmp_path / 'a.json'))


def test_split_file_names_and_voc_root(tmp_path):
    voc = '/d/VOC2007/ImageSets/Main/trainval.txt'
    assert S.split_file(voc, 5, 1) == \
        '/d/VOC2007/ImageSets/Main/trainval_5shot_seed1.txt'
    assert S.split_file(
        '/c/ann/instances_train2017.json', 10.0, 2,
        split_dir='out') == osp.join(os.getcwd(), 'out',
                                     'instances_train2017_10shot_seed2.json')
    assert S.split_file(voc, 5, 1, split_dir='') == S.split_file(voc, 5, 1)
    with pytest.raises(
            ValueError,
            match='train.csv: a split source is a '
            'VOC ImageSets list'):
        S.split_file('train.csv', 5, 0)
    assert S.voc_root_of(voc) == ('/d/VOC2007', 'trainval')
    for bad in ('/d/VOC2007/ImageSets/trainval.txt',
                '/d/VOC2007/Lists/Main/trainval.txt'):
        with pytest.raises(
                ValueError,
                match='must be a list in <VOC year>'
                '/ImageSets/Main/'):
            S.voc_root_of(bad)


def test_make_voc_splits_files_and_reports(tmp_path):
    # k=1: y (the only image of class 2) also brings class 0 to 2 images
    classes = ('aeroplane', 'bicycle', 'bird', 'boat')
    root = _voc(
        tmp_path / 'VOC', {
            'x': _xml(('aeroplane', ), ('bicycle', )),
            'y': _xml(('aeroplane', ), ('bird', )),
        })
    reports = S.make_voc_splits(root, [1], [0, 3], classes=classes)
    main_dir = osp.join(root, 'ImageSets', 'Main')
    assert [r['file'] for r in reports] == [
        osp.join(main_dir, f'trainval_1shot_seed{s}.txt') for s in (0, 3)
    ]
    for rep, seed in zip(reports, (0, 3)):
        assert open(rep['file']).read() == 'x\ny\n'
        assert rep == dict(
            file=rep['file'],
            shot=1,
            seed=seed,
            num_images=2,
            counts=dict(aeroplane=2, bicycle=1, bird=1, boat=0),
            under=dict(boat=dict(count=0, available=0)),
            over=dict(aeroplane=2),
            text='2 images; 2/4 classes have exactly 1 images\n'
            '  under k: boat: 0 (only 0 images contain it)\n'
            '  over k: aeroplane: 2 (forced by images with several '
            'classes)')
    # split_dir: the same list elsewhere, the dataset untouched
    out = S.make_voc_splits(
        root, [2], [0], classes=classes, split_dir=str(tmp_path / 'splits'))
    assert out[0]['file'] == str(tmp_path / 'splits' /
                                 'trainval_2shot_seed0.txt')
    assert open(out[0]['file']).read() == 'x\ny\n'
    assert out[0]['under'] == dict(
        bicycle=dict(count=1, available=1),
        bird=dict(count=1, available=1),
        boat=dict(count=0, available=0))
    assert not osp.exists(osp.join(main_dir, 'trainval_2shot_seed0.txt'))


def test_make_voc_splits_default_classes(tmp_path):
    root = _voc(tmp_path / 'VOC', {'1': _xml(('tvmonitor', ))})
    rep, = S.make_voc_splits(root, [1], [0])
    assert len(rep['counts']) == 20 and rep['counts']['tvmonitor'] == 1
    assert rep['text'].startswith('1 images; 1/20 classes have exactly 1')


def test_make_coco_splits_keeps_every_annotation_of_the_images(tmp_path):
    src = str(tmp_path / 'ann' / 'train.json')
    os.makedirs(osp.dirname(src))
    data = _coco(src)
    rep, = S.make_coco_splits(src, [1], [0])
    assert rep['file'] == src[:-5] + '_1shot_seed0.json'
    with open(rep['file']) as f:
        split = json.load(f)
    # 12 alone gives person its image, 7 is the only image with a (non-
    # crowd) dog; image 3 has only a crowd dog and is never chosen
    assert rep['counts'] == dict(person=2, dog=1) or \
        rep['counts'] == dict(person=1, dog=1)
    ids = [img['id'] for img in split['images']]
    assert 7 in ids and 3 not in ids and ids == sorted(ids)
    assert split['images'] == [
        i for i in sorted(data['images'], key=lambda i: i['id'])
        if i['id'] in ids
    ]
    assert split['annotations'] == sorted(
        (a for a in data['annotations'] if a['image_id'] in ids),
        key=lambda a: a['id'])
    assert split['categories'] == data['categories']  # as in the source
    assert split['info'] == data['info']
    with pytest.raises(ValueError, match='class names are for VOC'):
        S.make_splits(src, [(1, 0)], classes=['person'])


def test_make_coco_split_hand_computed(tmp_path):
    # k=1: dog (rarer) is visited first and can only take image 7 (person
    # and dog): person is then full, image 12 is not needed
    src = str(tmp_path / 'train.json')
    data = _coco(
        src,
        images=[dict(id=12), dict(id=7)],
        annotations=[
            dict(id=4, image_id=12, category_id=1),
            dict(id=9, image_id=7, category_id=1),
            dict(id=5, image_id=7, category_id=18)
        ])
    rep, = S.make_splits(src, [(1, 5)])
    with open(rep['file']) as f:
        split = json.load(f)
    assert split == dict(
        info=data['info'],
        images=[dict(id=7)],
        annotations=[
            dict(id=5, image_id=7, category_id=18),
            dict(id=9, image_id=7, category_id=1)
        ],
        categories=data['categories'])
    assert rep['num_images'] == 1 and rep['counts'] == dict(person=1, dog=1)
    assert rep['text'] == '1 images; 2/2 classes have exactly 1 images'


def test_make_missing_splits_writes_only_what_is_missing(tmp_path):
    root = _voc(tmp_path / 'VOC', {'1': _xml(('bird', ))})
    source = osp.join(root, 'ImageSets', 'Main', 'trainval.txt')
    S.write_atomic(S.split_file(source, 1, 0), 'kept\n')
    made = S.make_missing_splits(source, [1, 2], [0, 1], classes=('bird', ))
    assert [(r['shot'], r['seed']) for r in made] == [(1, 1), (2, 0), (2, 1)]
    assert open(S.split_file(source, 1, 0)).read() == 'kept\n'
    assert open(S.split_file(source, 2, 1)).read() == '1\n'
    assert S.make_missing_splits(source, [1, 2], [0, 1], ('bird', )) == []


def test_write_atomic_replaces_whole_files_only(tmp_path):
    path = tmp_path / 'new' / 'dir' / 'f.txt'
    S.write_atomic(str(path), 'one\n')
    assert path.read_text() == 'one\n'
    S.write_atomic(str(path), 'two\n')
    assert path.read_text() == 'two\n'
    with pytest.raises(TypeError):
        S.write_atomic(str(path), b'not text')
    assert path.read_text() == 'two\n'  # the old file, no temporary left
    assert os.listdir(path.parent) == ['f.txt']
