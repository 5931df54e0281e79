# DAP demo, step 3: Faster R-CNN pre-trained on the mini-ImageNet pseudo
# boxes of step 2.  Inherits the real IN-1K R50 config and shrinks it for
# 2 CPU cores: the demo detector (./_base_/faster-rcnn_r18-w32_fpn.py: the
# step-1 classifier's ResNet-18 at half width), the mini-ImageNet sizes, a
# short schedule.  What DAP changes stays as in the real config: frozen BN,
# frozen stem + res2, random short side per image, bias LR x2, linear warm-up
# then constant LR.
#
#   python tools/train.py \
#       configs/demo/dap_faster-rcnn_r18-w32_fpn_mini-imagenet.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=<step-1 checkpoint> \
#       train_dataloader.dataset.box_file=<step-2 box file>
_base_ = [
    '../dap/dap_faster-rcnn_r50_fpn_1e_in1k.py',
    './_base_/faster-rcnn_r18-w32_fpn.py',
]

classes = ('ellipse', 'rectangle', 'triangle', 'diamond', 'cross', 'star',
           'ring', 'hexagon')
model = dict(
    data_preprocessor=_base_.demo_data_preprocessor,
    backbone=dict(
        _base_.demo_backbone,
        init_cfg=dict(
            _delete_=True,
            type='Pretrained',
            checkpoint='work_dirs/dap_demo/step1_classifier/classifier.pth',
            prefix='backbone.')),
    neck=_base_.demo_neck,
    rpn_head=_base_.demo_rpn_head,
    roi_head=dict(
        bbox_roi_extractor=_base_.demo_bbox_roi_extractor,
        bbox_head=dict(_base_.demo_bbox_head, num_classes=len(classes))),
    train_cfg=_base_.demo_train_cfg,
    test_cfg=_base_.demo_test_cfg)

# the real config's short sides (96..640) span 0.25x-1.6x of a ~400 px
# ImageNet image; the same span of the ~112 px mini-ImageNet images
dap_scales = [(1333, 80), (1333, 112), (1333, 144), (1333, 176)]
train_pipeline = [
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='LoadImageRandomChoiceResize', scales=dap_scales,
        keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root='data/dap_demo/mini_imagenet/',
        box_file='../../../work_dirs/dap_demo/step2_pseudo_boxes/'
        'pseudo_boxes.dapbox',
        pipeline=train_pipeline))

# about one pass over the 2000 images at batch 8; warm-up (the first fifth)
# and LR scaled from the real 2000 warm-up iterations / LR 0.008 at batch 64
# to a short run (a higher LR: 250 iterations instead of 20k)
max_iters = 250
train_cfg = dict(max_iters=max_iters)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=False,
        begin=0,
        end=max_iters // 5)
]
optim_wrapper = dict(optimizer=dict(lr=0.02))
auto_scale_lr = dict(base_batch_size=8)
randomness = dict(seed=0)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
# progress.json for the demo's progress bar (projects/dap/dap/demo)
custom_imports = dict(
    imports=['projects.dap.dap.demo'], allow_failed_imports=False)
custom_hooks = _base_.custom_hooks + [dict(type='ProgressFileHook')]
