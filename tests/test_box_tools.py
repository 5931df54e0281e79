"""Box-file tools run as a user would: COCO export and original-DAP import."""
import json
import os.path as osp

import numpy as np
import pytest
from conftest import REPO, run_tool
from PIL import Image

from projects.dap.dap.datasets.box_file import PseudoBoxFile, write_box_file

EXPORT = osp.join(REPO, 'tools', 'dataset_converters',
                  'export_pseudo_boxes_to_coco.py')
IMPORT = osp.join(REPO, 'tools', 'dataset_converters',
                  'import_original_dap_boxes.py')


@pytest.fixture
def box_file(tmp_path):
    """4 images of 3 classes; image 2 failed; image 3 has 3 boxes."""
    path = tmp_path / 'boxes.dapbox'
    boxes = [
        np.array([[10.25, 20.5, 30.125, 60.75]], np.float32),
        np.array([[0, 0, 99, 49], [5.1, 6.2, 7.3, 8.4]], np.float32),
        np.zeros((0, 4), np.float32),
        np.array([[1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4], [2, 2, 9, 9]],
                 np.float32),
    ]
    scores = [[1.0], [1.0, 0.3], [], [1.0, 0.05, 0.5]]
    thresholds = [[0.2], [0.2, np.nan], [], [0.2, 0.3, 0.5]]
    write_box_file(
        path, ['a/0.JPEG', 'b/1.JPEG', 'c/2.JPEG', 'a/3.JPEG'], [(40, 70),
                                                                 (100, 50),
                                                                 (0, 0),
                                                                 (10, 10)],
        [0, 1, -1, 2],
        boxes,
        scores,
        thresholds,
        dict(classes=['cat', 'dog', 'fish']),
        failed={2: 'truncated JPEG'})
    return path, boxes


def test_export_to_coco_round_trips_boxes(tmp_path, box_file):
    from pycocotools.coco import COCO
    path, boxes = box_file
    out = tmp_path / 'coco.json'
    run_tool([EXPORT, path, out])
    coco = COCO(str(out))
    assert sorted(coco.getImgIds()) == [1, 2, 3, 4]
    assert coco.imgs[2] == dict(
        id=2, file_name='b/1.JPEG', width=100, height=50)
    assert coco.imgs[3]['dap_failed'] == 'truncated JPEG'
    assert coco.cats == {
        0: dict(id=0, name='cat'),
        1: dict(id=1, name='dog'),
        2: dict(id=2, name='fish')
    }
    assert len(coco.anns) == 6
    for image_id, expected, label in ((1, boxes[0], 0), (2, boxes[1], 1),
                                      (3, boxes[2], None), (4, boxes[3], 2)):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        got = np.array([[x, y, x + w, y + h]
                        for x, y, w, h in (a['bbox']
                                           for a in anns)]).reshape(-1, 4)
        np.testing.assert_array_equal(got.astype(np.float32), expected)
        for a in anns:
            assert a['category_id'] == label and a['iscrowd'] == 0
            assert a['area'] == pytest.approx(a['bbox'][2] * a['bbox'][3])
    ann = coco.loadAnns(coco.getAnnIds(imgIds=[2]))
    assert [a['score'] for a in ann] == pytest.approx([1.0, 0.3])
    assert ann[0]['threshold'] == pytest.approx(0.2)
    assert ann[1]['threshold'] is None  # NaN = unknown
    info = json.loads(out.read_text())['info']
    assert info['image_list_fingerprint'] == \
        PseudoBoxFile.open(path).fingerprint


def test_export_score_threshold_and_skip_failed(tmp_path, box_file):
    from pycocotools.coco import COCO
    path, _ = box_file
    out = tmp_path / 'coco.json'
    run_tool([EXPORT, path, out, '--score-thr', '0.4', '--skip-failed'])
    coco = COCO(str(out))
    assert sorted(coco.getImgIds()) == [1, 2, 4]
    # scores >= 0.4: 1.0 | 1.0 (0.3 dropped) | 1.0, 0.5 (0.05 dropped)
    assert sorted(a['score'] for a in coco.anns.values()) == \
        pytest.approx([0.5, 1.0, 1.0, 1.0])
    assert sorted(coco.anns) == [1, 2, 3, 4]


# --------------------------------------------------------------------------
# import of the original DAP layout


@pytest.fixture
def original(tmp_path):
    """4 images on disk, an image list and the boxes the original saved."""
    root = tmp_path / 'train'
    sizes = [(64, 48), (32, 40), (50, 50), (20, 30)]
    keys = ['n01/a.JPEG', 'n01/b.JPEG', 'n02/c.JPEG', 'n03/d.JPEG']
    for key, size in zip(keys, sizes):
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        Image.new('RGB', size, (90, 20, 200)).save(root / key, 'JPEG')
    labels = [0, 0, 1, 2]
    (tmp_path /
     'train.txt').write_text(''.join(f'{k} {lab}\n'
                                     for k, lab in zip(keys, labels)))
    # the original: per image xyxy boxes, first box scores 1, None = failed
    boxes = [
        np.array([[0, 0, 40, 30], [10, 10, 30, 20]], np.float32),
        np.array([[1, 2, 11, 12]], np.float32),
        None,
        np.array([[2, 3, 12, 23], [0, 0, 19, 29], [5, 5, 5, 9]], np.float32),
    ]
    obj = np.empty(4, dtype=object)
    obj[:] = boxes
    np.savez_compressed(tmp_path / 'orig.npz', boxes=obj)
    return dict(
        root=root,
        keys=keys,
        labels=labels,
        sizes=sizes,
        boxes=boxes,
        npz=tmp_path / 'orig.npz',
        image_list=tmp_path / 'train.txt')


def test_import_refuses_pickle_without_flag(tmp_path, original):
    out = tmp_path / 'imported.dapbox'
    proc = run_tool([
        IMPORT, original['npz'], '--image-list', original['image_list'],
        '--out', out, '--data-root', original['root']
    ],
                    check=False)
    assert proc.returncode == 1
    assert "member 'boxes' holds pickled Python objects" in proc.stdout
    assert 'execute arbitrary code' in proc.stdout
    assert '--trust-pickle' in proc.stdout
    assert not out.exists()


def test_import_with_trust_pickle(tmp_path, original):
    out = tmp_path / 'imported.dapbox'
    proc = run_tool([
        IMPORT, original['npz'], '--image-list', original['image_list'],
        '--out', out, '--data-root', original['root'], '--trust-pickle',
        '--num-classes', '5'
    ])
    assert 'WARNING' in proc.stdout and 'Pickle can execute' in proc.stdout
    bf = PseudoBoxFile.open(out)
    assert bf.num_images == 4 and bf.num_boxes == 6 and bf.num_classes == 5
    assert [bf.key(i) for i in range(4)] == original['keys']
    # labels come from the image list
    np.testing.assert_array_equal(bf.labels, original['labels'])
    np.testing.assert_array_equal(bf.sizes[[0, 1, 3]],
                                  np.array(original['sizes'])[[0, 1, 3]])
    assert bf.failed == [(2, 'n02/c.JPEG', 'no boxes in the original file')]
    b, s, t = bf.boxes_of(0)
    np.testing.assert_array_equal(b, original['boxes'][0])
    # score = area / area of the first box: 20*10 / (40*30)
    np.testing.assert_allclose(s, [1.0, 200 / 1200], rtol=1e-6)
    assert np.isnan(t).all()
    _, s, _ = bf.boxes_of(3)
    np.testing.assert_allclose(s, [1.0, 551 / 200, 0.0], rtol=1e-6)
    meta = bf.generation_config
    assert meta['layout'] == 'aligned' and len(meta['original_sha256']) == 64
    bf.verify()


def test_import_per_key_numeric_layout_needs_no_pickle(tmp_path, original):
    keys, boxes = original['keys'], original['boxes']
    arrays = {
        keys[0]: np.concatenate([boxes[0], [[1.0], [0.7]]], 1),
        keys[1]: np.concatenate([boxes[1], [[1.0]], [[0.3]]], 1),
        keys[3]: boxes[3]
    }
    np.savez(tmp_path / 'per_key.npz', **arrays)
    sizes = tmp_path / 'sizes.txt'
    sizes.write_text(''.join(f'{k} {w} {h}\n'
                             for k, (w, h) in zip(keys, original['sizes'])))
    out = tmp_path / 'per_key.dapbox'
    run_tool([
        IMPORT, tmp_path / 'per_key.npz', '--image-list',
        original['image_list'], '--out', out, '--sizes', sizes
    ])
    bf = PseudoBoxFile.open(out)
    assert bf.num_classes == 3  # largest label + 1
    _, s, t = bf.boxes_of(0)
    np.testing.assert_allclose(s, [1.0, 0.7])
    _, s, t = bf.boxes_of(1)
    np.testing.assert_allclose([s[0], t[0]], [1.0, 0.3])
    assert bf.is_failed(2) and not bf.is_failed(3)


def test_import_detects_a_mismatched_image_list(tmp_path, original):
    # the same images, listed in another order: boxes leave their images
    lines = original['image_list'].read_text().splitlines()
    (tmp_path / 'shuffled.txt'
     ).write_text('\n'.join([lines[3], lines[1], lines[2], lines[0]]) + '\n')
    out = tmp_path / 'x.dapbox'
    proc = run_tool([
        IMPORT, original['npz'], '--image-list', tmp_path / 'shuffled.txt',
        '--out', out, '--data-root', original['root'], '--trust-pickle'
    ],
                    check=False)
    assert proc.returncode == 1
    assert 'lie outside their image' in proc.stdout
    assert 'image list' in proc.stdout and not out.exists()
    proc = run_tool([
        IMPORT, original['npz'], '--image-list', original['image_list'],
        '--out', out, '--trust-pickle'
    ],
                    check=False)
    assert proc.returncode == 1 and 'image sizes are needed' in proc.stdout


# --------------------------------------------------------------------------
# torchvision ResNet -> mmpretrain

CONVERT = osp.join(REPO, 'tools', 'model_converters',
                   'torchvision_resnet_to_mmpretrain.py')


def torchvision_resnet50_state_dict(num_classes=1000,
                                    seed=0,
                                    num_batches_tracked=True):
    """torchvision's ResNet-50 key names and shapes, written out by hand."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    sd = {}

    def bn(name, c):
        for p in ('weight', 'bias', 'running_mean'):
            sd[f'{name}.{p}'] = torch.randn(c, generator=gen)
        sd[f'{name}.running_var'] = torch.rand(c, generator=gen) + 0.5
        if num_batches_tracked:
            sd[f'{name}.num_batches_tracked'] = torch.tensor(7)

    def conv(name, cout, cin, k):
        sd[f'{name}.weight'] = torch.randn(cout, cin, k, k, generator=gen)

    conv('conv1', 64, 3, 7)
    bn('bn1', 64)
    cin = 64
    for stage, blocks in enumerate((3, 4, 6, 3)):
        planes = 64 * 2**stage
        for b in range(blocks):
            pre = f'layer{stage + 1}.{b}'
            conv(f'{pre}.conv1', planes, cin, 1)
            bn(f'{pre}.bn1', planes)
            conv(f'{pre}.conv2', planes, planes, 3)
            bn(f'{pre}.bn2', planes)
            conv(f'{pre}.conv3', planes * 4, planes, 1)
            bn(f'{pre}.bn3', planes * 4)
            if b == 0:
                conv(f'{pre}.downsample.0', planes * 4, cin, 1)
                bn(f'{pre}.downsample.1', planes * 4)
            cin = planes * 4
    sd['fc.weight'] = torch.randn(num_classes, 2048, generator=gen)
    sd['fc.bias'] = torch.randn(num_classes, generator=gen)
    return sd


def test_convert_maps_keys_and_checks_input():
    import importlib.util
    spec = importlib.util.spec_from_file_location('tv2mmpre', CONVERT)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    sd = torchvision_resnet50_state_dict(10, num_batches_tracked=False)
    wrapped = {'model': {'module.' + k: v for k, v in sd.items()}}
    out, info = tool.convert(tool.unwrap(wrapped))
    assert info['depth'] == 50 and info['num_classes'] == 10
    assert info['added_num_batches_tracked'] == 53  # 1 stem + 48 + 4 down
    assert out['backbone.layer4.0.downsample.1.running_var'] is \
        sd['layer4.0.downsample.1.running_var']
    assert out['head.fc.weight'] is sd['fc.weight']
    assert int(out['backbone.layer1.0.bn1.num_batches_tracked']) == 0
    with pytest.raises(ValueError, match='10 classes, --num-classes says 9'):
        tool.convert(sd, num_classes=9)
    with pytest.raises(
            ValueError,
            match=r'not part of a torchvision ResNet.*'
            r'layer1.0.se.weight'):
        tool.convert(dict(sd, **{'layer1.0.se.weight': sd['fc.bias']}))
    del sd['layer3.5.conv1.weight'], sd['layer3.5.bn1.weight']
    for k in [k for k in sd if k.startswith('layer3.5.')]:
        del sd[k]
    with pytest.raises(ValueError, match=r'\(3, 4, 5, 3\)'):
        tool.convert(sd)


def test_converted_resnet50_loads_strictly_into_mmpretrain(tmp_path):
    import torch
    ImageClassifier = pytest.importorskip('mmpretrain.models').ImageClassifier
    sd = torchvision_resnet50_state_dict(1000)
    torch.save(sd, tmp_path / 'tv.pth')
    proc = run_tool([
        CONVERT, tmp_path / 'tv.pth', tmp_path / 'mm.pth', '--num-classes',
        '1000'
    ])
    assert 'ResNet-50 with 1000 classes' in proc.stdout
    ckpt = torch.load(tmp_path / 'mm.pth', weights_only=True)
    assert ckpt['meta']['depth'] == 50
    from mmengine.registry import DefaultScope

    # mmpretrain's registries, whatever scope an earlier test left set
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = ImageClassifier(
            backbone=dict(type='ResNet', depth=50),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead', num_classes=1000, in_channels=2048))
    result = model.load_state_dict(ckpt['state_dict'], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    state = model.state_dict()
    assert len(state) == len(sd)
    for key, value in sd.items():
        target = ('head.' if key.startswith('fc.') else 'backbone.') + key
        assert torch.equal(state[target], value), key
