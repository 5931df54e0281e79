"""configs/finetune: every config loads, builds and says what DAP step 4 says.

The fine-tune configs must agree with the step-3 pre-training configs in
``configs/dap`` (normalisation, frozen BN, RoIAlign, the classifier the CLS
baseline starts from, the checkpoint a DAP leaf loads).
"""
import glob
import itertools
import os.path as osp

import pytest
from conftest import REPO
from mmengine.config import Config
from test_original_defaults import assert_original_defaults

from projects.dap.dap.fewshot.splits import DEFAULT_SHOTS

FINETUNE = osp.join(REPO, 'configs', 'finetune')
STEP3 = osp.join(REPO, 'configs', 'dap')
LEAVES = sorted(glob.glob(osp.join(FINETUNE, '*.py')))
FULL = [
    f'faster-rcnn_{b}_fpn_{k}-{p}_{d}.py'
    for b, k, p, d in itertools.product(('r50', 'r101'), ('dap', 'cls'), (
        'in1k', 'in22k'), ('14e_voc07', '14e_voc0712', '1x_coco'))
]
FEWSHOT = [
    f'faster-rcnn_r50_fpn_{k}-{p}_fewshot_{d}.py'
    for k, p, d in itertools.product(('dap', 'cls'), ('in1k',
                                                      'in22k'), ('voc07',
                                                                 'coco'))
]


@pytest.fixture(scope='module', autouse=True)
def fast_mmdet_bases():
    """Memoise mmengine's lookup of ``mmdet::`` bases.

    mmengine parses all of mmdet's ~400 metafiles for every ``mmdet::``
    base of every config (~0.3 s each); the answer does not change here.
    """
    import mmengine.config.config as config_module
    original = config_module._get_external_cfg_path
    answers = {}

    def cached(package_path, cfg_file):
        key = (package_path, cfg_file)
        if key not in answers:
            try:
                answers[key] = original(package_path, cfg_file)
            except ValueError as e:
                answers[key] = e
        if isinstance(answers[key], ValueError):
            raise answers[key]
        return answers[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(config_module, '_get_external_cfg_path', cached)
        yield


def _load(name):
    return Config.fromfile(osp.join(FINETUNE, name))


def _parts(name):
    """(backbone, kind, pre-training, dataset) from a leaf's name."""
    stem = name[:-3].split('_')
    kind, pretrain = stem[3].split('-')
    return stem[1], kind, pretrain, stem[-1]


def _step3(backbone, pretrain):
    path = osp.join(STEP3, f'dap_faster-rcnn_{backbone}_fpn_1e_{pretrain}.py')
    return path, Config.fromfile(path)


def test_every_variant_exists_and_nothing_else():
    assert sorted(osp.basename(p) for p in LEAVES) == sorted(FULL + FEWSHOT)


@pytest.mark.parametrize('name', FULL + FEWSHOT)
def test_leaf_matches_step4_and_its_pretraining(name):
    cfg = _load(name)
    backbone, kind, pretrain, dataset = _parts(name)
    model = cfg.model
    assert cfg.custom_imports == dict(
        imports=['projects.dap.dap'], allow_failed_imports=False)
    assert cfg.runner_type == 'DetectorTransferRunner'
    assert_original_defaults(model)
    assert model.backbone.depth == int(backbone[1:])

    # same detector as the pre-training: normalisation, frozen BN + stem +
    # res2, RoIAlign 7x7 / sampling ratio 2
    step3_path, step3 = _step3(backbone, pretrain)
    assert model.data_preprocessor == step3.model.data_preprocessor
    for key in ('frozen_stages', 'norm_cfg', 'norm_eval', 'style'):
        assert model.backbone[key] == step3.model.backbone[key], key
    assert model.backbone.norm_cfg.requires_grad is False
    assert model.roi_head.bbox_roi_extractor == \
        step3.model.roi_head.bbox_roi_extractor

    if kind == 'dap':
        # the whole detector from step 3's last checkpoint; nothing else
        step3_name = osp.splitext(osp.basename(step3_path))[0]
        assert cfg.load_from == (f'work_dirs/{step3_name}/'
                                 f'iter_{step3.train_cfg.max_iters}.pth')
        assert model.backbone.init_cfg is None
    else:
        # CLS: the backbone that the DAP pre-training started from (IN-1K:
        # the MSRA Caffe ResNet; IN-22K: the 22K classifier)
        assert cfg.load_from is None
        assert model.backbone.init_cfg == step3.model.backbone.init_cfg
        assert model.backbone.style == {
            'in1k': 'caffe',
            'in22k': 'pytorch'
        }[pretrain]
    optim = cfg.optim_wrapper.optimizer
    assert optim.type == 'SGD' and optim.momentum == 0.9
    assert optim.weight_decay == {'in1k': 1e-4, 'in22k': 1e-5}[pretrain]
    assert cfg.optim_wrapper.paramwise_cfg == dict(
        bias_lr_mult=2., bias_decay_mult=0.)
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=16)
    assert cfg.train_dataloader.batch_size == 2  # x 8 GPUs = 16
    # 2000 proposals per GPU batch of 2 images (FPN_POST_NMS_PER_BATCH)
    assert model.train_cfg.rpn_proposal.max_per_img == 1000
    # the fine-tune yamls set no warm-up: maskrcnn-benchmark's 1/3 over 500
    assert cfg.param_scheduler[0] == dict(
        type='LinearLR', start_factor=1 / 3, by_epoch=False, begin=0, end=500)

    steps = [s for s in cfg.param_scheduler if s.type == 'MultiStepLR']
    assert len(steps) == 1 and steps[0].gamma == 0.1
    scales = [
        t.scale for t in cfg.train_dataloader.dataset.get(
            'pipeline', cfg.train_pipeline) if t.type == 'Resize'
    ] + [
        t.scale
        for t in cfg.test_dataloader.dataset.pipeline if t.type == 'Resize'
    ]
    if 'voc' in dataset:
        assert model.roi_head.bbox_head.num_classes == 20
        assert optim.lr == 0.01
        assert cfg.train_cfg.max_epochs == 14
        assert steps[0].milestones == [10] and steps[0].end == 14
        assert scales == [(1066, 640), (1066, 640)]  # short 640, long 1066
        evaluator = cfg.test_evaluator
        assert (evaluator.type, evaluator.metric,
                evaluator.eval_mode) == ('VOCMetric', 'mAP', '11points')
        test = cfg.test_dataloader.dataset
        assert test.ann_file == 'VOC2007/ImageSets/Main/test.txt'
        assert test.data_prefix == dict(sub_data_root='VOC2007/')
    else:
        assert model.roi_head.bbox_head.num_classes == 80
        assert optim.lr == 0.02
        assert cfg.train_cfg.max_epochs == 12
        assert steps[0].milestones == [8, 11] and steps[0].end == 12
        assert scales == [(1333, 800), (1333, 800)]
        assert cfg.test_evaluator.type == 'CocoMetric'
        assert cfg.test_evaluator.ann_file.endswith(
            'annotations/instances_val2017.json')

    train = cfg.train_dataloader.dataset
    if dataset == 'voc07':
        # VOC2007 trainval only (built from mmdet's 07+12 base)
        assert train.type == 'VOCDataset'
        assert train.ann_file == 'VOC2007/ImageSets/Main/trainval.txt'
        assert train.data_prefix == dict(sub_data_root='VOC2007/')
    elif dataset == 'voc0712':
        assert train.type == 'ConcatDataset'
        assert [d.ann_file for d in train.datasets] == [
            'VOC2007/ImageSets/Main/trainval.txt',
            'VOC2012/ImageSets/Main/trainval.txt'
        ]
        assert all(d.pipeline[2].scale == (1066, 640) for d in train.datasets)
    else:
        assert train.ann_file == 'annotations/instances_train2017.json'

    if 'fewshot' in name:
        # a template: the split (k, seed) and its schedule are written into
        # each run's config by tools/fewshot_sweep.py
        few = cfg.fewshot
        assert few.min_iters >= 1 and few.checkpoint_interval >= 1
        assert 'shot' not in few and 'seed' not in few
        if dataset == 'voc07':  # AP over IoU 0.5:0.95 next to AP50
            assert cfg.val_evaluator.iou_thrs[0] == 0.5
            assert len(cfg.val_evaluator.iou_thrs) == 10
            assert cfg.test_evaluator == cfg.val_evaluator
        full = _load(
            name.replace('fewshot_voc07',
                         '14e_voc07').replace('fewshot_coco', '1x_coco'))
        assert cfg.model == full.model and cfg.load_from == full.load_from
    else:
        assert 'fewshot' not in cfg


def test_every_model_builds():
    """Leaves whose model dicts are equal build once."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import projects.dap.dap  # noqa: F401
    init_default_scope('mmdet')
    built = {}
    for path in LEAVES:
        model_cfg = Config.fromfile(path).model
        model_cfg.backbone.init_cfg = None  # building loads nothing anyway
        key = repr(model_cfg.to_dict())
        if key not in built:
            built[key] = MODELS.build(model_cfg)
        model = built[key]
        head = model.roi_head.bbox_head
        assert head.fc_cls.out_features == head.num_classes + 1
        assert model.backbone.depth == model_cfg.backbone.depth
        # stem and res2 frozen, BN frozen everywhere
        assert not any(p.requires_grad
                       for p in model.backbone.conv1.parameters())
        assert not any(p.requires_grad
                       for p in model.backbone.layer1.parameters())
        assert not any(p.requires_grad
                       for n, p in model.backbone.named_parameters()
                       if '.bn' in n)
        assert all(p.requires_grad
                   for p in model.backbone.layer2[0].conv1.parameters())
    # r50/r101 x VOC/COCO x IN-1K (Caffe) / IN-22K (PyTorch style)
    assert len(built) == 8


def test_classifier_keys_load_into_the_detector_backbone():
    """CLS-IN22K leaves load an mmpretrain classifier with prefix
    'backbone.'."""
    from mmdet.models.backbones import ResNet as DetResNet
    from mmpretrain.models.backbones import ResNet as ClsResNet
    det = DetResNet(depth=50).state_dict()
    cls = ClsResNet(depth=50).state_dict()
    assert det.keys() == cls.keys()
    assert all(det[k].shape == cls[k].shape for k in det)


# The DAP poster's numbers (Faster R-CNN R50-FPN), as in the reference.
PAPER_FULL = {  # (kind, pre-training): (VOC07 test AP50, COCO val box AP)
    ('cls', 'in1k'): (77.36, 36.73),
    ('dap', 'in1k'): (79.93, 37.25),
    ('cls', 'in22k'): (80.74, 38.87),
    ('dap', 'in22k'): (84.24, 39.57)
}
PAPER_FEWSHOT = {  # k = 5, 10, 20, 50, 100
    ('cls', 'in1k', 'voc07'): [26.7, 40.8, 52.8, 63.3, 70.6],
    ('dap', 'in1k', 'voc07'): [40.1, 52.0, 60.5, 67.9, 71.8],
    ('cls', 'in22k', 'voc07'): [31.2, 43.5, 58.8, 70.0, 75.3],
    ('dap', 'in22k', 'voc07'): [50.7, 59.7, 68.3, 73.8, 77.4],
    ('cls', 'in1k', 'coco'): [7.1, 9.9, 13.3, 16.7, 19.6],
    ('dap', 'in1k', 'coco'): [9.8, 12.2, 14.5, 17.6, 20.5],
    ('cls', 'in22k', 'coco'): [8.4, 12.4, 15.9, 20.1, 23.9],
    ('dap', 'in22k', 'coco'): [13.1, 15.5, 18.3, 21.7, 25.2]
}


def test_metafile_links_models_and_marks_paper_numbers():
    import yaml
    with open(osp.join(REPO, 'projects', 'dap', 'metafile.yml')) as f:
        meta = yaml.safe_load(f)
    assert [c['Name'] for c in meta['Collections']] == ['DAP']
    models = {m['Name']: m for m in meta['Models']}
    assert len(models) == len(meta['Models'])  # names are unique
    configs = sorted(glob.glob(osp.join(STEP3, 'dap_*.py'))) + LEAVES
    assert sorted(models) == sorted(
        osp.splitext(osp.basename(p))[0] for p in configs)
    parents = {}
    for name, model in models.items():
        assert model['In Collection'] == 'DAP'
        assert osp.isfile(osp.join(REPO, model['Config'])), name
        assert model['Weights'] is None  # nothing published yet
        for child in model.get('Downstream', []):
            assert child in models, child
            parents.setdefault(child, []).append(name)
    for name, model in models.items():
        if name.startswith('dap_'):
            assert model['Results'] is None
            continue
        backbone, kind, pretrain, dataset = _parts(name + '.py')
        pre = model['Metadata']['Pre-trained Model']
        if kind == 'dap':
            # downstream of exactly its step-3 parent, both ways
            parent = f'dap_faster-rcnn_{backbone}_fpn_1e_{pretrain}'
            assert parents[name] == [parent] and pre == parent
        else:
            assert name not in parents and 'classifier' in pre
        results = model['Results'] or []
        # mmdet's metric names; only the paper's numbers, said so in Notes
        metrics = {
            (r['Dataset'], k): v
            for r in results
            for k, v in r['Metrics'].items()
        }
        assert (not results) == ('Notes' not in model), name
        if results:
            assert "the DAP paper's numbers" in model['Notes'], name
        data = 'PASCAL VOC 2007' if dataset == 'voc07' else 'COCO'
        metric = 'AP50' if dataset == 'voc07' else 'box AP'
        if 'fewshot' in name:
            expected = PAPER_FEWSHOT[(kind, pretrain, dataset)]
            assert metrics == {
                (f'{data} ({k}-shot)', metric): v
                for k, v in zip(DEFAULT_SHOTS, expected)
            }
        elif backbone == 'r50' and dataset in ('voc07', 'coco'):
            column = 0 if dataset == 'voc07' else 1
            assert metrics == {
                (data, metric): PAPER_FULL[(kind, pretrain)][column]
            }
        else:  # no paper number for R101 or VOC0712
            assert metrics == {}
