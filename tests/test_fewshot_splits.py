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

TOOL = osp.join(REPO, 'tools', 'dataset_converters',
                'make_fewshot_splits.py')
sys.path.insert(0, osp.dirname(TOOL))
from make_fewshot_splits import (VOC_CLASSES, main,  # noqa: E402
                                 select_fewshot)


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
    r = select_fewshot({'a': [0], 'b': [1], 'c': [1], 'd': [1]}, 2, shot=2,
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
        available = [sum(c in set(v) for v in data.values())
                     for c in range(8)]
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
    data = {f'm{i}': rng.choice(6, size=2, replace=False).tolist()
            for i in range(60)}
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
        names = [VOC_USED[int(rng.integers(3))]
                 for _ in range(int(rng.integers(1, 3)))]
        objects = [(n, False) for n in names]
        if i < rare_images:  # the only images with a boat
            objects.append(('boat', False))
        if i == num_images - 1:  # a difficult-only boat does not count
            objects = [('boat', True), ('aeroplane', False)]
        with open(osp.join(root, 'Annotations', image_id + '.xml'),
                  'w') as f:
            f.write(_voc_xml(objects))
        ids.append(image_id)
    with open(osp.join(root, 'ImageSets', 'Main', 'trainval.txt'),
              'w') as f:
        f.write('\n'.join(ids) + '\n')
    return root


def _read_ids(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def test_voc_cli_writes_lists_reports_and_is_deterministic(tmp_path):
    voc = make_voc(str(tmp_path / 'VOC2007'))
    args = [TOOL, 'voc', voc, '--classes', *VOC_USED, '--shots', '1', '3',
            '--seeds', '0', '1', '--report', tmp_path / 'report.json']
    out = run_tool(args).stdout
    main_dir = osp.join(voc, 'ImageSets', 'Main')
    files = sorted(f for f in os.listdir(main_dir) if 'shot' in f)
    assert files == [f'trainval_{k}shot_seed{s}.txt' for k in (1, 3)
                     for s in (0, 1)]
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
    args = [TOOL, 'voc', voc, '--classes', *VOC_USED, '--shots', '1',
            '--seeds', '4']
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
    assert not [f for f in os.listdir(osp.join(voc, 'ImageSets', 'Main'))
                if 'shot' in f]


# ---------------------------------------------------------- COCO, CLI


def make_coco(path, num_images=120, seed=0, shuffle=False):
    rng = np.random.default_rng(seed)
    cats = [dict(id=i, name=n) for i, n in ((1, 'person'), (3, 'car'),
                                            (18, 'dog'), (90, 'toothbrush'))]
    images, anns = [], []
    for i in range(num_images):
        images.append(dict(id=1000 + i, file_name=f'{i:012d}.jpg',
                           width=128, height=96))
        for _ in range(int(rng.integers(1, 4))):
            cat = [1, 3, 18][int(rng.integers(3))]
            anns.append(dict(id=len(anns) + 1, image_id=1000 + i,
                             category_id=cat, bbox=[1, 1, 40, 40],
                             area=1600, iscrowd=0))
    # toothbrush: three images, one of them only as a crowd region
    for i, crowd in ((0, 0), (1, 0), (2, 1)):
        anns.append(dict(id=len(anns) + 1, image_id=1000 + i, category_id=90,
                         bbox=[5, 5, 40, 40], area=1600, iscrowd=crowd))
    if shuffle:
        order = np.random.default_rng(99)
        images = [images[j] for j in order.permutation(len(images))]
        anns = [anns[j] for j in order.permutation(len(anns))]
        cats = cats[::-1]
    data = dict(info=dict(description='generated'), images=images,
                annotations=anns, categories=cats)
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
        counts[cat] = len({a['image_id'] for a in split['annotations']
                           if a['category_id'] == cat and not a['iscrowd']})
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
        run_tool([TOOL, 'coco', folder / 'train.json', '--shots', '3',
                  '--seeds', '4'])
    sa = json.load(open(a / 'train_3shot_seed4.json'))
    sb = json.load(open(b / 'train_3shot_seed4.json'))
    assert sa['images'] == sb['images']
    assert sa['annotations'] == sb['annotations']


def test_coco_bad_input_is_a_clear_error(tmp_path):
    src = tmp_path / 'train.json'
    data = make_coco(src, num_images=5)
    data['annotations'].append(dict(id=999, image_id=4242, category_id=1,
                                    bbox=[0, 0, 1, 1], iscrowd=0))
    with open(src, 'w') as f:
        json.dump(data, f)
    proc = run_tool([TOOL, 'coco', src], check=False)
    assert proc.returncode == 1 and 'unknown image 4242' in proc.stdout
    src.write_text('{"images": [')
    proc = run_tool([TOOL, 'coco', src], check=False)
    assert proc.returncode == 1 and 'not valid JSON' in proc.stdout
    assert sorted(os.listdir(tmp_path)) == ['train.json']
