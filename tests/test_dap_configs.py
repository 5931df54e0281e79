"""configs/dap: what each config sets, that its model builds, that the
step-1 mmpretrain classifier initialises its backbone, and that a shrunk
copy of each trains on CPU through tools/train.py on generated data."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO
from mmengine.config import Config
from mmengine.registry import init_default_scope
from test_imagenet_pseudo_box import make_imagenet
from test_original_defaults import assert_original_defaults

TRAIN = osp.join(REPO, 'tools', 'train.py')
CONFIG_DIR = osp.join(REPO, 'configs', 'dap')
CONFIGS = sorted(
    osp.basename(p) for p in glob.glob(osp.join(CONFIG_DIR, 'dap_*.py')))
RGB_MEAN, RGB_STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
# maskrcnn-benchmark's PIXEL_MEAN for the MSRA Caffe ResNets (BGR, std 1)
CAFFE_MEAN = [102.9801, 115.9465, 122.7717]
MSRA = 'open-mmlab://detectron2/resnet{}_caffe'
# name: (depth, classes, GPUs, images per GPU, lr, weight decay, base batch,
#        class-agnostic regression, backbone checkpoint, box file,
#        proposals per image, warm-up (start factor, iterations))
EXPECTED = {
    'dap_faster-rcnn_r50_fpn_1e_in1k.py':
    (50, 1000, 8, 8, 0.008, 1e-4, 64, False, MSRA.format(50), 'in1k_r101', 250,
     (0.01, 2000)),
    'dap_faster-rcnn_r101_fpn_1e_in1k.py':
    (101, 1000, 8, 4, 0.004, 1e-4, 32, False, MSRA.format(101), 'in1k_r101',
     500, (0.01, 2000)),
    'dap_faster-rcnn_r50_fpn_1e_in22k.py':
    (50, 21841, 16, 4, 0.008, 1e-5, 64, False,
     'work_dirs/classifier/in22k_r50.pth', 'in22k_r50', 500, (1 / 3, 500)),
    'dap_faster-rcnn_r101_fpn_1e_in22k.py':
    (101, 21841, 16, 4, 0.008, 1e-5, 64, True,
     'work_dirs/classifier/in22k_r101.pth', 'in22k_r50', 500, (1 / 3, 500)),
}


def load(name):
    return Config.fromfile(osp.join(CONFIG_DIR, name))


def test_every_config_is_covered():
    assert CONFIGS == sorted(EXPECTED)


@pytest.mark.parametrize('name', CONFIGS)
def test_config_says_what_dap_changes(name):
    (depth, classes, gpus, per_gpu, lr, wd, base_batch, agnostic, ckpt, boxes,
     proposals, warmup) = EXPECTED[name]
    cfg = load(name)
    assert cfg.custom_imports == dict(
        imports=['projects.dap.dap'], allow_failed_imports=False)
    m = cfg.model
    assert m.type == 'FasterRCNN' and m.neck.type == 'FPN'
    assert_original_defaults(m)
    assert m.backbone.depth == depth
    assert m.backbone.frozen_stages == 1 and m.backbone.norm_eval
    assert m.backbone.norm_cfg == dict(type='BN', requires_grad=False)
    pre = m.data_preprocessor
    if classes == 1000:
        # every IN-1K yaml starts from the MSRA Caffe ResNet: BGR, std 1
        assert m.backbone.style == 'caffe'
        assert m.backbone.init_cfg == dict(type='Pretrained', checkpoint=ckpt)
        assert (pre.mean, pre.std) == (CAFFE_MEAN, [1.] * 3)
        assert pre.bgr_to_rgb is False
    else:
        # the authors' 22K classifier: PyTorch style, RGB mean / std
        assert m.backbone.style == 'pytorch'
        assert m.backbone.init_cfg == dict(
            type='Pretrained', checkpoint=ckpt, prefix='backbone.')
        assert (pre.mean, pre.std) == (RGB_MEAN, RGB_STD)
        assert pre.bgr_to_rgb is True
    roi = m.roi_head
    assert roi.bbox_roi_extractor.roi_layer == dict(
        type='RoIAlign', output_size=7, sampling_ratio=2, aligned=False)
    assert roi.bbox_head.type == 'Shared2FCBBoxHead'
    assert roi.bbox_head.fc_out_channels == 1024
    assert roi.bbox_head.num_classes == classes
    assert roi.bbox_head.reg_class_agnostic == agnostic
    # 2000 proposals per GPU batch (FPN_POST_NMS_PER_BATCH), per image here
    assert m.train_cfg.rpn_proposal.max_per_img == proposals
    assert proposals * cfg.train_dataloader.batch_size == 2000

    loader = cfg.train_dataloader
    assert loader.batch_size == per_gpu and gpus * per_gpu == base_batch
    data = loader.dataset
    assert data.type == 'ImageNetPseudoBoxDataset'
    assert data.box_file == f'pseudo_boxes/{boxes}.dapbox'
    assert data.ann_file == 'meta/train.txt'
    assert data.data_prefix == dict(img='train/')
    assert data.data_root == ('data/imagenet21k/'
                              if classes == 21841 else 'data/imagenet/')
    steps = {t.type: t for t in data.pipeline}
    assert steps['LoadImageRandomChoiceResize'].scales == [(1333, 96),
                                                           (1333, 160),
                                                           (1333, 320),
                                                           (1333, 640)]
    assert steps['LoadImageRandomChoiceResize'].keep_ratio
    assert steps['RandomFlip'].prob == 0.5
    assert [t.type for t in data.pipeline].index('LoadAnnotations') < \
        [t.type for t in data.pipeline].index('LoadImageRandomChoiceResize')

    opt = cfg.optim_wrapper
    assert opt.optimizer == dict(
        type='SGD', lr=lr, momentum=0.9, weight_decay=wd)
    assert opt.paramwise_cfg == dict(bias_lr_mult=2., bias_decay_mult=0.)
    assert cfg.param_scheduler == [
        dict(
            type='LinearLR',
            start_factor=warmup[0],
            by_epoch=False,
            begin=0,
            end=warmup[1])
    ]  # then constant
    images = 14197122 if classes == 21841 else 1281167
    assert cfg.train_cfg == dict(
        type='IterBasedTrainLoop',
        max_iters=-(-images // base_batch))  # one epoch
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=base_batch)
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator',
                'test_dataloader', 'test_cfg', 'test_evaluator'):
        assert cfg.get(key) is None, key
    assert cfg.default_hooks.checkpoint.by_epoch is False
    assert cfg.default_hooks.checkpoint.interval == 2000
    assert dict(type='NumClassCheckHook') in cfg.custom_hooks


@pytest.mark.parametrize('name', CONFIGS)
def test_model_builds_with_frozen_bn_and_heads(name):
    from mmdet.registry import MODELS

    import projects.dap.dap  # noqa: F401
    init_default_scope('mmdet')
    depth, classes, *_, agnostic, _, _, _, _ = EXPECTED[name]
    cfg = load(name)
    cfg.model.backbone.init_cfg = None
    with torch.device('meta'):  # shapes only: no memory, no random init
        model = MODELS.build(cfg.model)
    head = model.roi_head.bbox_head
    assert head.fc_cls.out_features == classes + 1  # + background
    assert head.fc_reg.out_features == (4 if agnostic else 4 * classes)
    bns = [
        m for m in model.backbone.modules()
        if isinstance(m, torch.nn.BatchNorm2d)
    ]
    assert bns and all(not p.requires_grad for m in bns
                       for p in m.parameters())
    model.train()
    assert all(not m.training for m in bns)  # norm_eval
    assert not any(p.requires_grad for p in model.backbone.conv1.parameters())
    assert not any(p.requires_grad for p in model.backbone.layer1.parameters())
    assert all(p.requires_grad
               for n, p in model.backbone.layer2.named_parameters()
               if 'bn' not in n and 'downsample.1' not in n)
    assert len(model.backbone.layer3) == (23 if depth == 101 else 6)


@pytest.mark.parametrize('depth', [50, 101])
def test_mmpretrain_resnet_keys_map_onto_mmdet(depth):
    from mmdet.models.backbones import ResNet as DetResNet
    from mmpretrain.models.backbones import ResNet as ClsResNet
    det = DetResNet(depth=depth).state_dict()
    cls = ClsResNet(depth=depth).state_dict()
    assert list(det) == list(cls)
    assert all(det[k].shape == cls[k].shape for k in det)


def test_in22k_backbone_initialised_from_classifier_checkpoint(tmp_path):
    from mmdet.registry import MODELS as DET_MODELS
    from mmengine.logging import HistoryBuffer
    from mmpretrain.registry import MODELS as CLS_MODELS

    import projects.dap.dap  # noqa: F401
    init_default_scope('mmpretrain')
    classifier = CLS_MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='ResNet', depth=50),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=7, in_channels=2048)))
    _randomise(classifier)
    path = tmp_path / 'in22k_r50.pth'
    torch.save(
        {
            'meta': {
                'epoch': 90,
                'message_hub': {
                    'log_scalars': {
                        'loss': HistoryBuffer([2.5, 2.25], [1, 1])
                    }
                }
            },
            'state_dict': classifier.state_dict()
        }, path)

    init_default_scope('mmdet')
    cfg = load('dap_faster-rcnn_r50_fpn_1e_in22k.py')
    cfg.model.backbone.init_cfg.checkpoint = str(path)
    cfg.model.roi_head.bbox_head.num_classes = 7  # 21841 is slow to build
    detector = DET_MODELS.build(cfg.model)
    detector.init_weights()
    got = detector.backbone.state_dict()
    want = classifier.backbone.state_dict()
    assert set(got) == set(want)
    for key in want:
        assert torch.equal(got[key], want[key]), key


def test_in1k_backbone_initialised_from_msra_caffe_checkpoint(tmp_path):
    """The IN-1K configs load the MSRA Caffe ResNet as mmdet ships it: a
    bare Caffe-style ResNet state dict, no prefix."""
    from mmdet.models.backbones import ResNet
    from mmdet.registry import MODELS

    import projects.dap.dap  # noqa: F401
    msra = ResNet(depth=50, style='caffe')
    _randomise(msra)
    path = tmp_path / 'resnet50_msra.pth'
    torch.save(msra.state_dict(), path)
    init_default_scope('mmdet')
    cfg = load('dap_faster-rcnn_r50_fpn_1e_in1k.py')
    cfg.model.backbone.init_cfg.checkpoint = str(path)
    detector = MODELS.build(cfg.model)
    detector.init_weights()
    got = detector.backbone.state_dict()
    for key, value in msra.state_dict().items():
        assert torch.equal(got[key], value), key
    # Caffe style: the stride sits in the first 1x1 conv of each stage
    assert detector.backbone.layer2[0].conv1.stride == (2, 2)
    assert detector.backbone.layer2[0].conv2.stride == (1, 1)


def _randomise(module):
    torch.manual_seed(0)
    for p in module.parameters():
        p.data.normal_()
    for _, b in module.named_buffers():
        if b.dtype.is_floating_point:
            b.data.uniform_(0.5, 1.5)


def test_class_count_mismatch_with_model_is_caught(tmp_path):
    """NumClassCheckHook (in every config) stops a 1000-class detector on a
    3-class box file before the first iteration."""
    from types import SimpleNamespace

    from mmdet.engine.hooks import NumClassCheckHook
    from mmdet.registry import MODELS
    from test_imagenet_pseudo_box import build

    import projects.dap.dap  # noqa: F401
    init_default_scope('mmdet')
    make_imagenet(str(tmp_path))
    cfg = load('dap_faster-rcnn_r50_fpn_1e_in1k.py')
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.depth = 18
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    runner = SimpleNamespace(
        model=MODELS.build(cfg.model),
        train_dataloader=SimpleNamespace(dataset=build(tmp_path)))
    with pytest.raises(AssertionError, match='num_classes'):
        NumClassCheckHook().before_train_epoch(runner)


# ---------------------------------------------------------------- training
LABELS_22K = [0, 10000, 21840, 5, 6, 7, 21839, 1, 2]
SHRINK = [
    'model.backbone.init_cfg=None', 'train_dataloader.batch_size=2',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False', 'train_cfg.max_iters=2',
    'model.train_cfg.rcnn.sampler.num=64',
    'model.train_cfg.rpn_proposal.nms_pre=200',
    'model.train_cfg.rpn_proposal.max_per_img=100',
    'train_dataloader.dataset.pipeline.1.scales=[(128,48),(128,64)]',
    'default_hooks.logger.interval=1', 'default_hooks.checkpoint.interval=2'
]
# config -> (box file, ann file, num_classes override)
RUNS = {
    'dap_faster-rcnn_r50_fpn_1e_in1k.py': ('in1k.dapbox', 'train.txt', None),
    'dap_faster-rcnn_r101_fpn_1e_in1k.py': ('in1k.dapbox', 'train.txt', None),
    # a 3-class copy of 22K R50 (its 21841-way class-specific regression
    # layer is 89M parameters); R101 22K trains with the real 21841
    'dap_faster-rcnn_r50_fpn_1e_in22k.py': ('small.dapbox', 'train.txt', 3),
    'dap_faster-rcnn_r101_fpn_1e_in22k.py':
    ('in22k.dapbox', 'train22k.txt', None),
}


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Start every shrunk training run at once (2 cores), plus one on a box
    file of another image list; wait for all."""
    root = tmp_path_factory.mktemp('dap_train')
    data = str(root / 'imagenet')
    make_imagenet(
        data,
        num_classes=1000,
        box_file='pseudo_boxes/in1k.dapbox',
        classes=False)
    make_imagenet(data, box_file='pseudo_boxes/small.dapbox')
    make_imagenet(
        data,
        num_classes=21841,
        labels=LABELS_22K,
        ann_file='meta/train22k.txt',
        classes=False,
        box_file='pseudo_boxes/in22k.dapbox')
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    procs = {}
    jobs = dict(RUNS, mismatch=('in22k.dapbox', 'train.txt', None))
    for key, (box, ann, classes) in jobs.items():
        name = 'dap_faster-rcnn_r50_fpn_1e_in1k.py' if key == 'mismatch' \
            else key
        work = root / ('work_' + key)
        opts = SHRINK + [
            f'train_dataloader.dataset.data_root={data}',
            f'train_dataloader.dataset.box_file=pseudo_boxes/{box}',
            f'train_dataloader.dataset.ann_file=meta/{ann}'
        ]
        if classes:
            opts.append(f'model.roi_head.bbox_head.num_classes={classes}')
        log = open(root / f'{key}.log', 'w')
        procs[key] = (subprocess.Popen(
            [
                sys.executable, TRAIN,
                osp.join(CONFIG_DIR, name), '--work-dir',
                str(work), '--cfg-options'
            ] + opts,
            cwd=str(root),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT), work, root / f'{key}.log')
    results = {}
    for key, (proc, work, log) in procs.items():
        rc = proc.wait(timeout=900)
        results[key] = (rc, work, log.read_text())
    return results


def _scalars(work):
    runs = sorted(d for d in os.listdir(work) if d[:8].isdigit())
    path = osp.join(work, runs[-1], 'vis_data', 'scalars.json')
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.mark.parametrize('name', sorted(RUNS))
def test_shrunk_config_trains_through_tools_train(trained, name):
    rc, work, out = trained[name]
    assert rc == 0, out[-4000:]
    rows = [r for r in _scalars(work) if 'loss' in r]
    assert [r['iter'] for r in rows] == [1, 2]
    assert all(np.isfinite(r['loss']) for r in rows)
    lr, (start, end) = EXPECTED[name][4], EXPECTED[name][11]
    # LinearLR warm-up from `start` over iterations 0..end-1 (mmengine
    # reaches the full LR at iteration end - 1); bias LR not logged
    assert rows[0]['lr'] == pytest.approx(lr * start, rel=1e-6)
    assert rows[1]['lr'] == pytest.approx(
        lr * (start + (1 - start) / (end - 1)), rel=1e-6)
    ckpt = torch.load(
        work / 'iter_2.pth', map_location='cpu', weights_only=False)
    classes = RUNS[name][2] or EXPECTED[name][1]
    assert ckpt['state_dict']['roi_head.bbox_head.fc_cls.weight'].shape == \
        (classes + 1, 1024)
    assert '9 images, ' in out and '0 of 9 images failed' in out


def test_box_file_of_another_list_is_refused_before_training(trained):
    rc, work, out = trained['mismatch']
    assert rc != 0
    assert 'does not match' in out and 'fingerprint differs' in out
    assert not glob.glob(str(work / '*.pth'))
    assert 'Iter(train)' not in out
