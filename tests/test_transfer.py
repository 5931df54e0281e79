"""Whole-detector transfer (DAP step 4), run as a user runs it.

A tiny "DAP checkpoint" is the step-3 detector of
``configs/dap/dap_faster-rcnn_r50_fpn_1e_in1k.py`` (1000 classes) with random
weights.  Shrunk copies of the fine-tune configs train for two iterations on
generated VOC- and COCO-format data through ``tools/dist_train.sh`` /
``tools/train.py`` and are evaluated by ``tools/test.py``.  The rule itself,
resume and the few-shot schedule are checked in-process on small models.
"""
import json
import math
import os
import os.path as osp
import re

import numpy as np
import pytest
import torch
from conftest import REPO, free_port, run_tool
from torch import nn

TRAIN = osp.join(REPO, 'tools', 'train.py')
TEST = osp.join(REPO, 'tools', 'test.py')
DIST_TRAIN = osp.join(REPO, 'tools', 'dist_train.sh')
SPLITS = osp.join(REPO, 'tools', 'dataset_converters',
                  'make_fewshot_splits.py')
FINETUNE = osp.join(REPO, 'configs', 'finetune')
STEP3 = osp.join(REPO, 'configs', 'dap', 'dap_faster-rcnn_r50_fpn_1e_in1k.py')
VOC_NAMES = ('aeroplane', 'bicycle', 'bird')
CLASS_SPECIFIC = ('roi_head.bbox_head.fc_cls.weight',
                  'roi_head.bbox_head.fc_cls.bias',
                  'roi_head.bbox_head.fc_reg.weight',
                  'roi_head.bbox_head.fc_reg.bias')

# ------------------------------------------------------------ generated data


def make_voc(root, num_trainval=4, num_test=4, seed=0):
    """``root/VOCdevkit/VOC2007`` with JPEGs, XML and ImageSets lists."""
    from projects.dap.dap.demo.synthetic import SHAPES, render_image
    rng = np.random.default_rng(seed)
    year = osp.join(root, 'VOCdevkit', 'VOC2007')
    for sub in ('JPEGImages', 'Annotations', osp.join('ImageSets', 'Main')):
        os.makedirs(osp.join(year, sub), exist_ok=True)
    index = 0
    for split, count in (('trainval', num_trainval), ('test', num_test)):
        ids = []
        for _ in range(count):
            img, boxes, labels = render_image(
                rng,
                128,
                96,
                int(rng.integers(1, 3)),
                SHAPES[:3],
                min_size=0.4,
                max_size=0.7)
            image_id = f'{index:06d}'
            index += 1
            img.save(osp.join(year, 'JPEGImages', image_id + '.jpg'))
            objects = ''.join(
                f'<object><name>{VOC_NAMES[label]}</name>'
                '<difficult>0</difficult><bndbox>'
                f'<xmin>{int(b[0]) + 1}</xmin><ymin>{int(b[1]) + 1}</ymin>'
                f'<xmax>{int(b[2])}</xmax><ymax>{int(b[3])}</ymax>'
                '</bndbox></object>'
                for b, label in zip(boxes.tolist(), labels.tolist()))
            with open(osp.join(year, 'Annotations', image_id + '.xml'),
                      'w') as f:
                f.write('<annotation><size><width>128</width><height>96'
                        f'</height><depth>3</depth></size>{objects}'
                        '</annotation>')
            ids.append(image_id)
        with open(osp.join(year, 'ImageSets', 'Main', split + '.txt'),
                  'w') as f:
            f.write('\n'.join(ids) + '\n')
    return osp.join(root, 'VOCdevkit') + '/'


def make_coco(root):
    """COCO-format train/val sets with the 80 COCO categories.

    The generated shapes get labels 1-3 (person, bicycle, car); CocoMetric
    needs every category the 80-class head can predict.
    """
    from mmdet.datasets import CocoDataset

    from projects.dap.dap.demo.synthetic import make_coco_detection_set
    categories = [
        dict(id=i + 1, name=name)
        for i, name in enumerate(CocoDataset.METAINFO['classes'])
    ]
    for split, num, seed in (('train', 4, 0), ('val', 4, 1)):
        ann_file = make_coco_detection_set(
            root, split, num_images=num, seed=seed, image_size=(128, 96))
        with open(ann_file) as f:
            data = json.load(f)
        data['categories'] = categories
        with open(ann_file, 'w') as f:
            json.dump(data, f)
    return str(root) + '/'


def shrunk_config(path, config, data_root, kind):
    """A copy of ``config`` for CPU: 128x96 images, small RoI batches."""
    if kind == 'voc':
        data = (f"data_root = '{data_root}'\n"
                'train_dataloader = dict(dataset=dict(data_root=data_root, '
                'pipeline=train_pipeline))\n'
                'test_dataloader = dict(dataset=dict(data_root=data_root, '
                'pipeline=test_pipeline))\n')
    else:
        data = (f"data_root = '{data_root}'\n"
                'train_dataloader = dict(dataset=dict(data_root=data_root, '
                "ann_file='annotations/train.json', "
                "data_prefix=dict(img='train/'), pipeline=train_pipeline))\n"
                'test_dataloader = dict(dataset=dict(data_root=data_root, '
                "ann_file='annotations/val.json', "
                "data_prefix=dict(img='val/'), pipeline=test_pipeline))\n"
                'test_evaluator = dict('
                "ann_file=data_root + 'annotations/val.json')\n")
    text = f"""_base_ = '{config}'
img_scale = (128, 96)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='PackDetInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                          'img_shape', 'scale_factor'))]
{data}
train_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
test_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
# evaluation runs through tools/test.py
val_dataloader = None
val_cfg = None
val_evaluator = None
model = dict(
    train_cfg=dict(rpn_proposal=dict(max_per_img=100),
                   rcnn=dict(sampler=dict(num=64))),
    # an untrained head scores below mmdet's 0.05: keep every box so
    # that the evaluation has detections to score
    test_cfg=dict(rpn=dict(max_per_img=100), rcnn=dict(score_thr=0.0)))
train_cfg = dict(max_epochs=1)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(save_optimizer=False))
"""
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


@pytest.fixture(scope='module')
def dap_checkpoint(tmp_path_factory):
    """The step-3 detector (1000 classes), random init, mmengine format."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import projects.dap.dap  # noqa: F401
    cfg = Config.fromfile(STEP3)
    # the IN-1K pre-training is Caffe style (the MSRA ResNet), as is every
    # IN-1K fine-tune: the transfer between them must lose nothing
    assert cfg.model.backbone.style == 'caffe'
    cfg.model.backbone.init_cfg = None  # nothing to download
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    path = str(tmp_path_factory.mktemp('dap') / 'dap_r50_in1k.pth')
    # a finished step-3 run: its iteration must not carry over
    torch.save(
        dict(meta=dict(iter=20019, epoch=0), state_dict=model.state_dict()),
        path)
    return path


def _load(path):
    from projects.dap.dap.utils import load_checkpoint_safely
    return load_checkpoint_safely(path)


def _metric(name, text):
    match = re.search(re.escape(name) + r': (-?[0-9.]+)', text)
    assert match, f'{name} not in output:\n{text[-3000:]}'
    return float(match.group(1))


def _assert_no_warning_wall(out):
    assert 'size mismatch' not in out
    assert 'is skipped since its requires_grad' not in out
    assert out.count('WARNING') < 10, [
        line for line in out.splitlines() if 'WARNING' in line
    ]


# ---------------------------------------------------------- real pipelines


def test_voc07_seed_command_transfers_and_evaluates(dap_checkpoint, tmp_path):
    """The seed's command, in our terms, on VOC-format data.

    ``bash tools/dist_train.sh <voc07 config> N --cfg-options load_from=..
    work_dir=..`` with two processes; LR 0 so that the fine-tuned weights
    are exactly what the transfer put in.
    """
    data_root = make_voc(str(tmp_path / 'data'))
    cfg = shrunk_config(
        tmp_path / 'voc07.py',
        osp.join(FINETUNE, 'faster-rcnn_r50_fpn_dap-in1k_14e_voc07.py'),
        data_root, 'voc')
    from mmengine.config import Config
    assert Config.fromfile(cfg).model.backbone.style == 'caffe'
    work = tmp_path / 'work'
    out = run_tool([
        'bash', DIST_TRAIN, cfg, '2', '--cfg-options',
        f'load_from={dap_checkpoint}', f'work_dir={work}',
        'optim_wrapper.optimizer.lr=0', 'train_dataloader.batch_size=1'
    ],
                   cwd=tmp_path,
                   env={
                       'PORT': str(free_port())
                   }).stdout

    # the log says what was transferred and what was re-initialised
    assert ('344 of 348 model tensors transferred (backbone 318, neck 16, '
            'rpn_head 6, roi_head 4); 4 re-initialised') in out
    assert ('roi_head.bbox_head.fc_cls.weight: checkpoint (1001, 1024) -> '
            'model (21, 1024)') in out
    assert ('roi_head.bbox_head.fc_reg.weight: checkpoint (4000, 1024) -> '
            'model (80, 1024)') in out
    assert 'Checkpoint tensors not used (0): none' in out
    assert 'Model tensors missing from the checkpoint (0): none' in out
    _assert_no_warning_wall(out)
    # the schedule starts at iteration 0, not at the checkpoint's 20019
    assert 'Epoch(train) [1][1/2]' in out and 'resumed' not in out
    tuned = _load(work / 'epoch_1.pth')
    assert tuned['meta']['epoch'] == 1 and tuned['meta']['iter'] == 2

    dap = _load(dap_checkpoint)['state_dict']
    sd = tuned['state_dict']
    assert sd.keys() == dap.keys()
    for name, value in sd.items():
        if name in CLASS_SPECIFIC:
            assert value.shape != dap[name].shape
        else:
            assert torch.equal(value, dap[name]), name
    assert sd['roi_head.bbox_head.fc_cls.weight'].shape == (21, 1024)
    assert sd['roi_head.bbox_head.fc_reg.weight'].shape == (80, 1024)
    # mmdet's head init: N(0, 0.01) and N(0, 0.001), zero bias
    assert 0.005 < sd['roi_head.bbox_head.fc_cls.weight'].std() < 0.02
    assert 0.0005 < sd['roi_head.bbox_head.fc_reg.weight'].std() < 0.002
    assert not sd['roi_head.bbox_head.fc_cls.bias'].any()
    runs = [d for d in os.listdir(work) if d[:8].isdigit()]
    report = json.load(open(work / runs[0] / 'transfer.json'))
    assert [r[0] for r in report['reinitialised']] == list(CLASS_SPECIFIC)
    assert len(report['transferred']) == 344 and not report['kept']

    # VOC07 test, 11-point AP50 (tools/test.py)
    out = run_tool(
        [TEST, cfg, work / 'epoch_1.pth', '--work-dir', tmp_path / 'eval'],
        cwd=tmp_path).stdout
    assert 0.0 <= _metric('pascal_voc/mAP', out) <= 1.0
    assert '348 of 348 model tensors transferred' in out
    assert 'Re-initialised (0):' in out


def test_coco_finetune_trains_and_evaluates(dap_checkpoint, tmp_path):
    data_root = make_coco(str(tmp_path / 'coco'))
    cfg = shrunk_config(
        tmp_path / 'coco.py',
        osp.join(FINETUNE, 'faster-rcnn_r50_fpn_dap-in1k_1x_coco.py'),
        data_root, 'coco')
    work = tmp_path / 'work'
    out = run_tool([
        TRAIN, cfg, '--work-dir', work, '--cfg-options',
        f'load_from={dap_checkpoint}'
    ],
                   cwd=tmp_path).stdout
    assert '4 re-initialised' in out
    assert ('roi_head.bbox_head.fc_reg.weight: checkpoint (4000, 1024) -> '
            'model (320, 1024)') in out
    _assert_no_warning_wall(out)
    losses = [float(x) for x in re.findall(r' loss: ([0-9.na]+)', out)]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)

    dap = _load(dap_checkpoint)['state_dict']
    sd = _load(work / 'epoch_1.pth')['state_dict']
    # frozen parts (stem, res2, BN statistics) are the checkpoint's...
    for name in ('backbone.conv1.weight', 'backbone.layer1.0.conv1.weight',
                 'backbone.layer3.0.bn1.running_mean'):
        assert torch.equal(sd[name], dap[name]), name
    # ...trained ones moved away from it, a little
    for name in ('neck.fpn_convs.0.conv.weight',
                 'roi_head.bbox_head.shared_fcs.0.weight'):
        change = (sd[name] - dap[name]).abs().mean()
        assert 0 < change < 0.1 * dap[name].abs().mean(), name

    out = run_tool(
        [TEST, cfg, work / 'epoch_1.pth', '--work-dir', tmp_path / 'eval'],
        cwd=tmp_path).stdout
    for metric in ('coco/bbox_mAP', 'coco/bbox_mAP_50'):
        assert -1.0 <= _metric(metric, out) <= 1.0


def test_cls_baseline_fewshot_voc07(dap_checkpoint, tmp_path):
    """CLS baseline on a 1-shot split: classifier backbone only, scaled
    schedule, split made by make_fewshot_splits.py."""
    data_root = make_voc(str(tmp_path / 'data'), num_trainval=8)
    run_tool([
        SPLITS, 'voc',
        osp.join(data_root, 'VOC2007'), '--classes', *VOC_NAMES, '--shots',
        '1', '--seeds', '3'
    ])
    split = osp.join(data_root, 'VOC2007', 'ImageSets', 'Main',
                     'trainval_1shot_seed3.txt')
    num_images = len(open(split).read().split())
    # the IN-1K CLS baseline starts from the MSRA Caffe ResNet: a bare
    # ResNet state dict (conv1.*, layer1.*, ...), as mmdet's converted copy
    dap = _load(dap_checkpoint)['state_dict']
    # (values differ from the DAP backbone's, same scale)
    classifier = {
        k[len('backbone.'):]: v * 0.9 if v.is_floating_point() else v.clone()
        for k, v in dap.items() if k.startswith('backbone.')
    }
    cls_path = tmp_path / 'msra_r50_caffe.pth'
    torch.save(classifier, cls_path)

    template = shrunk_config(
        tmp_path / 'fewshot.py',
        osp.join(FINETUNE, 'faster-rcnn_r50_fpn_cls-in1k_fewshot_voc07.py'),
        data_root, 'voc')
    # the run's config: the split and its schedule written in beforehand
    from mmengine.config import Config

    from projects.dap.dap.fewshot import resolve_fewshot
    cfg_template = Config.fromfile(str(template))
    cfg_template.merge_from_dict({'fewshot.min_iters': 2})
    resolved, schedule = resolve_fewshot(cfg_template, 1, 3)
    cfg = tmp_path / 'run_1shot_seed3.py'
    resolved.dump(str(cfg))
    work = tmp_path / 'work'
    out = run_tool([
        TRAIN, cfg, '--work-dir', work, '--cfg-options',
        f'model.backbone.init_cfg.checkpoint={cls_path}',
        'optim_wrapper.optimizer.lr=0'
    ],
                   cwd=tmp_path).stdout
    iters = max(2, math.ceil(14 * num_images / 16))
    assert (schedule.path, schedule.num_images,
            schedule.max_iters) == (split, num_images, iters)
    dumped = Config.fromfile(str(work / 'run_1shot_seed3.py'))
    assert dumped.train_cfg.max_iters == iters
    assert dumped.train_dataloader.dataset.ann_file == \
        'VOC2007/ImageSets/Main/trainval_1shot_seed3.txt'
    assert 'Whole-detector transfer' not in out  # load_from=None
    _assert_no_warning_wall(out)
    tuned = _load(work / f'iter_{iters}.pth')
    assert tuned['meta']['iter'] == iters
    sd = tuned['state_dict']
    for name, value in classifier.items():
        assert torch.equal(sd['backbone.' + name], value), name
    # the rest is not the DAP detector: only the backbone was pre-trained
    assert not torch.equal(sd['neck.fpn_convs.0.conv.weight'],
                           dap['neck.fpn_convs.0.conv.weight'])


# --------------------------------------------------- the rule, in-process


def _build(config, **options):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(osp.join(FINETUNE, config))
    if options:
        cfg.merge_from_dict(options)
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def test_class_agnostic_fc_reg_is_kept(dap_checkpoint):
    from projects.dap.dap.engine.transfer import transfer_state_dict
    dap = _load(dap_checkpoint)['state_dict']
    # a class-agnostic pre-training (DAP-IN22K R101 style): 4 outputs
    dap['roi_head.bbox_head.fc_reg.weight'] = torch.randn(4, 1024)
    dap['roi_head.bbox_head.fc_reg.bias'] = torch.randn(4)
    model = _build('faster-rcnn_r50_fpn_dap-in1k_14e_voc07.py',
                   **{'model.roi_head.bbox_head.reg_class_agnostic': True})
    fresh_cls = model.roi_head.bbox_head.fc_cls.weight.detach().clone()
    report = transfer_state_dict(model, dap, source='dap')
    head = model.roi_head.bbox_head
    assert torch.equal(head.fc_reg.weight, dap['roi_head.bbox_head.fc_reg'
                                               '.weight'])
    assert torch.equal(head.fc_cls.weight, fresh_cls)  # (21,) vs (1001,)
    assert report.kept == [
        'roi_head.bbox_head.fc_reg.weight', 'roi_head.bbox_head.fc_reg.bias'
    ]
    assert [r[0] for r in report.reinitialised] == list(CLASS_SPECIFIC[:2])
    assert 'Class-specific but kept (same shape in checkpoint and model) ' \
        '(2): roi_head.bbox_head.fc_reg.weight' in report.format()
    for name, value in model.state_dict().items():
        if name not in CLASS_SPECIFIC[:2]:
            assert torch.equal(value, dap[name]), name


class ToyDetector(nn.Module):
    """Module names as in mmdet's two-stage detectors."""

    def __init__(self, num_classes=3, width=8):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, width), nn.ReLU())
        self.roi_head = nn.Module()
        self.roi_head.bbox_head = nn.Module()
        self.roi_head.bbox_head.fc_cls = nn.Linear(width, num_classes + 1)
        self.roi_head.bbox_head.fc_reg = nn.Linear(width, 4 * num_classes)


def test_strict_refuses_a_checkpoint_of_another_architecture():
    from projects.dap.dap.engine.transfer import transfer_state_dict
    model = ToyDetector(width=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    other = ToyDetector(num_classes=10, width=16).state_dict()
    other['extra.weight'] = torch.zeros(1)
    with pytest.raises(ValueError) as err:
        transfer_state_dict(model, other, source='other.pth')
    msg = str(err.value)
    assert 'other.pth does not fit' in msg
    assert 'backbone.0.weight checkpoint (16, 4) vs model (8, 4)' in msg
    assert 'checkpoint tensor not in the model: extra.weight' in msg
    for k, v in model.state_dict().items():  # nothing was changed
        assert torch.equal(v, before[k])

    # strict=False loads what fits and reports the rest
    del other['backbone.0.bias']
    report = transfer_state_dict(model, other, strict=False)
    assert report.missing == ['backbone.0.bias']
    assert report.unused == ['extra.weight']
    assert [m[0] for m in report.mismatched] == ['backbone.0.weight']
    assert report.transferred == []


class ToyModel(ToyDetector):
    """A ToyDetector the mmengine Runner can train."""

    def forward(self, inputs, labels, mode='tensor'):
        feat = self.backbone(inputs)
        out = self.roi_head.bbox_head.fc_cls(feat).sum(1)
        return dict(loss=((out - labels)**2).mean())

    def train_step(self, data, optim_wrapper):
        losses = self(*data, mode='loss')
        optim_wrapper.update_params(losses['loss'])
        return losses


def _toy_runner(work_dir, load_from=None, resume=False, max_epochs=1, **cfg):
    from projects.dap.dap.engine.transfer import DetectorTransferRunner
    torch.manual_seed(0)
    data = [(torch.randn(4), torch.randn(())) for _ in range(8)]
    return DetectorTransferRunner(
        model=ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=data,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=4),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        load_from=load_from,
        resume=resume,
        default_scope='mmengine',
        # unique per test (the tmp folder) and work dir: runners of one
        # process share loggers by experiment name, and a shared logger
        # writes to the first runner's log file
        experiment_name='_'.join(
            str(work_dir).split(os.sep)[-2:] + [str(resume)]),
        cfg=dict(cfg))


def test_runner_transfers_then_resumes_normally(tmp_path):
    pre = ToyDetector(num_classes=7).state_dict()  # another class count
    pre_path = tmp_path / 'pre.pth'
    torch.save(dict(meta=dict(iter=500, epoch=3), state_dict=pre), pre_path)

    runner = _toy_runner(tmp_path / 'a', load_from=str(pre_path))
    runner.train()
    assert runner.iter == 2  # from 0, not from the checkpoint's 500
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert 'Whole-detector transfer from' in log
    assert 'roi_head.bbox_head.fc_cls.weight: checkpoint (8, 8) -> model ' \
        '(4, 8)' in log
    ckpt = _load(tmp_path / 'a' / 'epoch_1.pth')
    assert ckpt['optimizer']['state']  # a real training checkpoint

    # resume continues the fine-tuning run: optimizer state, iteration
    resumed = _toy_runner(
        tmp_path / 'b',
        load_from=str(tmp_path / 'a' / 'epoch_1.pth'),
        resume=True,
        max_epochs=2)
    resumed.train()
    assert resumed.iter == 4 and resumed.epoch == 2
    log = open(osp.join(resumed.log_dir, f'{resumed.timestamp}.log')).read()
    assert 'resumed epoch: 1, iter: 2' in log
    assert 'Whole-detector transfer' not in log


def test_runner_options_and_clear_errors(tmp_path):
    pre = ToyDetector(num_classes=3).state_dict()
    pre_path = tmp_path / 'same.pth'
    torch.save(pre, pre_path)  # a bare state dict works too
    runner = _toy_runner(tmp_path / 'w', load_from=str(pre_path))
    runner._init_model_weights()
    report = runner.transfer_checkpoint(str(pre_path))
    # same class count: fc_cls / fc_reg kept because the shapes match
    assert len(report.kept) == 4 and not report.reinitialised
    # ...unless keep_matching_shapes=False
    runner = _toy_runner(
        tmp_path / 'w1',
        load_from=str(pre_path),
        transfer_cfg=dict(keep_matching_shapes=False))
    runner._init_model_weights()
    fresh = runner.model.roi_head.bbox_head.fc_cls.weight.detach().clone()
    report = runner.transfer_checkpoint(str(pre_path))
    assert len(report.reinitialised) == 4 and not report.kept
    assert torch.equal(runner.model.roi_head.bbox_head.fc_cls.weight, fresh)
    assert torch.equal(runner.model.backbone[0].weight,
                       pre['backbone.0.weight'])

    runner = _toy_runner(tmp_path / 'w2', load_from=str(tmp_path / 'no.pth'))
    with pytest.raises(FileNotFoundError, match='--cfg-options load_from'):
        runner.train()
    runner = _toy_runner(
        tmp_path / 'w3',
        load_from=str(pre_path),
        transfer_cfg=dict(stict=False))
    with pytest.raises(ValueError, match='unknown transfer_cfg keys'):
        runner.train()


def test_fewshot_schedule_is_scaled_to_the_split(tmp_path):
    from mmengine.config import Config

    from projects.dap.dap.fewshot import (check_resolved, compute_schedule,
                                          resolve_fewshot)

    voc = Config.fromfile(
        osp.join(FINETUNE, 'faster-rcnn_r50_fpn_dap-in1k_fewshot_voc07.py'))
    assert 'fewshot_sweep.py' in check_resolved(voc)  # a template
    root = tmp_path / 'VOCdevkit'
    main_dir = root / 'VOC2007' / 'ImageSets' / 'Main'
    main_dir.mkdir(parents=True)
    (main_dir /
     'trainval_5shot_seed2.txt').write_text(''.join(f'{i:06d}\n'
                                                    for i in range(50)))
    voc.train_dataloader.dataset.data_root = str(root)
    voc.merge_from_dict({'fewshot.min_iters': 10})
    before = voc.to_dict()
    resolved, schedule = resolve_fewshot(voc, 5, 2)
    assert voc.to_dict() == before  # the template is not changed
    assert check_resolved(resolved) is None
    # ceil(14 epochs * 50 images / 16) = 44 > 10; step at 10/14 * 44 = 31.4
    assert resolved.train_cfg == dict(
        type='IterBasedTrainLoop', max_iters=44, val_interval=44)
    warmup, step = resolved.param_scheduler
    assert warmup['end'] == 44 and not warmup['by_epoch']
    assert step['milestones'] == [31] and step['end'] == 44
    assert step['by_epoch'] is False
    # a checkpoint every 500 iterations (here: only the last), one kept
    assert resolved.default_hooks.checkpoint.interval == 44
    assert resolved.default_hooks.checkpoint.by_epoch is False
    assert resolved.default_hooks.checkpoint.max_keep_ckpts == 1
    assert resolved.log_processor.by_epoch is False
    # an iteration loop needs an endless sampler: with a finite one mmengine
    # restarts the dataloader (and sleeps 2 s) after every pass of the split
    assert resolved.train_dataloader.sampler == dict(
        type='InfiniteSampler', shuffle=True)
    assert resolved.train_dataloader.dataset.ann_file == \
        'VOC2007/ImageSets/Main/trainval_5shot_seed2.txt'
    assert resolved.fewshot.num_images == 50
    assert resolved.fewshot.source == 'VOC2007/ImageSets/Main/trainval.txt'
    assert '50 images' in schedule.describe()
    # the dumped text is the schedule (what mmengine writes to the work dir)
    dumped = tmp_path / 'run.py'
    resolved.dump(str(dumped))
    assert Config.fromfile(str(dumped)).train_cfg.max_iters == 44

    coco = Config.fromfile(
        osp.join(FINETUNE, 'faster-rcnn_r50_fpn_cls-in1k_fewshot_coco.py'))
    (tmp_path / 'annotations').mkdir()
    with open(
            tmp_path / 'annotations' / 'instances_train2017_10shot_seed0.json',
            'w') as f:
        json.dump(
            dict(
                images=[dict(id=i) for i in range(100)],
                annotations=[],
                categories=[]), f)
    coco.train_dataloader.dataset.data_root = str(tmp_path)
    schedule = compute_schedule(coco, 10, 0)  # min_iters 1000: the default
    assert schedule.max_iters == 1000  # ceil(12 * 100 / 16) = 75
    assert schedule.milestones == [[667, 917]]
    assert schedule.checkpoint_interval == 500
    coco.fewshot.min_iters = 10
    schedule = compute_schedule(coco, 10, 0)
    assert schedule.max_iters == 75
    assert schedule.milestones == [[50, 69]]

    # a split that was not made: a clear error
    with pytest.raises(FileNotFoundError, match='fewshot_sweep.py'):
        compute_schedule(voc, 20, 0)


def _hand_report():
    from projects.dap.dap.engine.transfer import TransferReport
    return TransferReport(
        source='pre.pth',
        transferred=[
            'backbone.0.weight', 'backbone.0.bias', 'neck.w',
            'roi_head.fc_reg.weight'
        ],
        kept=['roi_head.fc_reg.weight'],
        reinitialised=[('roi_head.fc_cls.weight', (8, 8), (4, 8)),
                       ('roi_head.fc_cls.bias', None, (4, ))],
        unused=['extra.a', 'extra.b'],
        missing=['neck.b'],
        mismatched=[('neck.c', (2, ), (3, ))],
        num_model_tensors=8)


def test_report_names_every_tensor_that_was_not_copied():
    from projects.dap.dap.engine.transfer import TransferReport
    report = _hand_report()
    assert report.format() == '\n'.join([
        'Whole-detector transfer from pre.pth: 4 of 8 model tensors '
        'transferred (backbone 2, neck 1, roi_head 1); 2 re-initialised. '
        'Every model tensor not listed below was copied from the '
        'checkpoint.',
        'Re-initialised (2):',
        '  roi_head.fc_cls.weight: checkpoint (8, 8) -> model (4, 8)',
        '  roi_head.fc_cls.bias: checkpoint absent -> model (4,)',
        'Class-specific but kept (same shape in checkpoint and model) (1): '
        'roi_head.fc_reg.weight',
        'Checkpoint tensors not used (2): extra.a, extra.b',
        'Model tensors missing from the checkpoint (1): neck.b',
        'Shape mismatches (1), left at their initialisation: neck.c (2,) vs '
        '(3,)',
    ])
    assert report.problems == [
        'model tensor not in the checkpoint: neck.b',
        'shape mismatch (not class-specific): neck.c checkpoint (2,) vs '
        'model (3,)',
        'checkpoint tensor not in the model: extra.a',
        'checkpoint tensor not in the model: extra.b',
    ]
    empty = TransferReport(source='x.pth')
    assert empty.format() == '\n'.join([
        'Whole-detector transfer from x.pth: 0 of 0 model tensors '
        'transferred (none); 0 re-initialised. Every model tensor not '
        'listed below was copied from the checkpoint.',
        'Re-initialised (0):',
        'Checkpoint tensors not used (0): none',
        'Model tensors missing from the checkpoint (0): none',
    ])
    assert empty.problems == []


def test_extract_state_dict_of_checkpoints_and_bare_dicts():
    from projects.dap.dap.engine.transfer import extract_state_dict
    a, b = torch.zeros(2), torch.ones(3)
    sd = extract_state_dict(
        dict(meta=dict(iter=3), state_dict={
            'module.x.w': a,
            'y.module.b': b
        }))
    assert list(sd.items()) == [('x.w', a), ('y.module.b', b)]  # DDP's only
    assert list(extract_state_dict({'z': b}).items()) == [('z', b)]
    for bad in ([a], dict(meta={}), dict(state_dict=dict(x=1)), dict(x=1)):
        with pytest.raises(
                ValueError,
                match='not a detector checkpoint: '
                'expected a dict with a "state_dict" of tensors'):
            extract_state_dict(bad)


def test_reinit_patterns_one_string_or_several():
    from projects.dap.dap.engine.transfer import transfer_state_dict
    model = ToyDetector(num_classes=3)
    pre = ToyDetector(num_classes=5).state_dict()
    report = transfer_state_dict(
        model, pre, reinit=r'\.fc_cls\.', strict=False)
    assert [r[0] for r in report.reinitialised] == [
        'roi_head.bbox_head.fc_cls.weight', 'roi_head.bbox_head.fc_cls.bias'
    ]
    assert report.mismatched == [
        ('roi_head.bbox_head.fc_reg.weight', (20, 8), (12, 8)),
        ('roi_head.bbox_head.fc_reg.bias', (20, ), (12, ))
    ]
    assert report.transferred == ['backbone.0.weight', 'backbone.0.bias']
    assert torch.equal(model.backbone[0].weight, pre['backbone.0.weight'])
    # the default: fc_cls and fc_reg of any head, nothing else
    model = ToyDetector(num_classes=3)
    report = transfer_state_dict(model, pre, source='p')
    assert [r[0] for r in report.reinitialised] == list(model.state_dict())[2:]
    assert report.reinitialised[0] == ('roi_head.bbox_head.fc_cls.weight',
                                       (6, 8), (4, 8))
    assert report.num_model_tensors == 6 and report.source == 'p'
    # a class-specific tensor the checkpoint lacks is simply re-initialised
    del pre['roi_head.bbox_head.fc_reg.bias']
    report = transfer_state_dict(ToyDetector(num_classes=3), pre)
    assert report.reinitialised[-1] == ('roi_head.bbox_head.fc_reg.bias', None,
                                        (12, ))
    assert not report.problems


def test_strict_error_lists_the_first_twenty_problems():
    from projects.dap.dap.engine.transfer import transfer_state_dict
    pre = ToyDetector().state_dict()
    pre.update({f'extra.{i:02d}': torch.zeros(1) for i in range(25)})
    with pytest.raises(ValueError) as err:
        transfer_state_dict(ToyDetector(), pre, source='big.pth')
    lines = str(err.value).splitlines()
    assert lines[0] == ('checkpoint big.pth does not fit this detector (25 '
                        'problems, first 20):')
    assert lines[1:21] == [
        f'  checkpoint tensor not in the model: '
        f'extra.{i:02d}' for i in range(20)
    ]
    assert lines[21] == ('Is it the pre-training of the same architecture? '
                         'Set transfer_cfg.strict=False to load the '
                         'matching part anyway.')
    pre = {k: v for k, v in pre.items() if not k.startswith('extra.0')}
    with pytest.raises(ValueError) as err:
        transfer_state_dict(ToyDetector(), pre, source='two.pth')
    assert str(err.value).splitlines()[0] == (
        'checkpoint two.pth does not fit this detector (15 problems):')


class _Frozen(ToyModel):
    """A ToyModel with a top-level parameter, for the frozen-params line."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))


def test_frozen_parameters_are_one_log_line(tmp_path):
    runner = _toy_runner(tmp_path / 'f')
    model = _Frozen()
    for p in (model.scale, *model.backbone.parameters(),
              *model.roi_head.bbox_head.fc_reg.parameters()):
        p.requires_grad_(False)
    runner.model = model
    runner.build_optim_wrapper(
        dict(
            optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4),
            paramwise_cfg=dict(norm_decay_mult=0.)))
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert '5 frozen parameters (requires_grad=False) are not optimised: ' \
        'scale (1), backbone.0 (2), roi_head.bbox_head (2)' in log
    assert 'is skipped since' not in log
    # nothing frozen: no line
    runner = _toy_runner(tmp_path / 'g')
    runner.build_optim_wrapper(
        dict(
            optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4),
            paramwise_cfg=dict(norm_decay_mult=0.)))
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert 'frozen parameters' not in log


def _seen_hook():
    """A hook that records the checkpoint ``after_load_checkpoint`` gets."""
    from mmengine.hooks import Hook

    class Seen(Hook):
        state = None

        def after_load_checkpoint(self, runner, checkpoint):
            self.state = {
                k: v.clone()
                for k, v in checkpoint['state_dict'].items()
            }

    return Seen()


def test_transfer_checkpoint_logs_warns_writes_json_and_calls_hooks(tmp_path):
    pre = ToyDetector(num_classes=7).state_dict()
    del pre['backbone.0.bias']
    path = str(tmp_path / 'pre.pth')
    torch.save(dict(state_dict=pre), path)
    runner = _toy_runner(
        tmp_path / 'w', load_from=path, transfer_cfg=dict(strict=False))
    seen = _seen_hook()
    runner.register_hook(seen)
    runner._init_model_weights()
    runner.load_or_resume()
    runner.load_or_resume()  # loads once
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert log.count(f'Whole-detector transfer from {path}: 1 of 6') == 1
    # not training (no train loop built): the re-initialised head is noted
    assert (f'evaluating with re-initialised class-specific layers: {path} '
            'was not fine-tuned for this dataset') in log
    assert 'the checkpoint fits only partly, see above' in log
    with open(osp.join(runner.log_dir, 'transfer.json')) as f:
        written = json.load(f)
    assert written['missing'] == ['backbone.0.bias']
    assert written['transferred'] == ['backbone.0.weight']
    assert written['reinitialised'][0] == [
        'roi_head.bbox_head.fc_cls.weight', [8, 8], [4, 8]
    ]
    assert written['source'] == path
    state = runner.model.state_dict()
    assert seen.state.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(seen.state[k], v)
    assert torch.equal(state['backbone.0.weight'], pre['backbone.0.weight'])

    # strict by default: the same checkpoint is refused
    runner = _toy_runner(tmp_path / 's', load_from=path)
    with pytest.raises(
            ValueError,
            match='model tensor not in the '
            'checkpoint: backbone.0.bias'):
        runner.transfer_checkpoint(path)
    # a fitting checkpoint: no warning
    torch.save(ToyDetector().state_dict(), path)
    runner = _toy_runner(tmp_path / 'ok', load_from=path)
    runner.transfer_checkpoint(path)
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert 'Whole-detector transfer' in log and 'WARNING' not in log
