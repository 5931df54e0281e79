# DAP demo, step 4 (DAP init): the whole step-3 detector fine-tuned on the
# generated mini-VOC (VOC2007 layout, 5 classes: 3 seen in pre-training, 2
# novel).  Inherits the real DAP-IN1K -> VOC07 config and shrinks the model
# (./_base_/faster-rcnn_r18-w32_fpn.py, as step 3, so every tensor
# transfers), the images and the schedule.  Evaluation: VOC 11-point AP at
# IoU 0.5 (the real metric) and its mean over IoU 0.5:0.95 ("AP").
#
#   python tools/train.py \
#       configs/demo/faster-rcnn_r18-w32_fpn_dap_mini-voc.py \
#       --cfg-options load_from=<step-3 checkpoint>
_base_ = [
    '../finetune/faster-rcnn_r50_fpn_dap-in1k_14e_voc07.py',
    './_base_/faster-rcnn_r18-w32_fpn.py',
]

classes = ('triangle', 'star', 'ring', 'arrow', 'semicircle')
metainfo = dict(classes=classes)
model = dict(
    data_preprocessor=_base_.demo_data_preprocessor,
    backbone=_base_.demo_backbone,
    neck=_base_.demo_neck,
    rpn_head=_base_.demo_rpn_head,
    roi_head=dict(
        bbox_roi_extractor=_base_.demo_bbox_roi_extractor,
        bbox_head=dict(_base_.demo_bbox_head, num_classes=len(classes))),
    train_cfg=_base_.demo_train_cfg,
    test_cfg=_base_.demo_test_cfg)
load_from = 'work_dirs/dap_demo/step3_dap_pretrain/dap_detector.pth'

data_root = 'data/dap_demo/mini_voc/VOCdevkit/'
img_scale = (160, 128)  # mini-VOC images are 128 x 128
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    iou_thrs=[0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95])
test_evaluator = val_evaluator

# the real schedule (14 epochs, x0.1 at 10) shortened to 3 epochs with the
# step at 2/3 of them, at batch 4 with a higher LR
max_epochs = 3
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=1 / 3, by_epoch=False, begin=0, end=50),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[max(1, 2 * max_epochs // 3)],
        gamma=0.1)
]
optim_wrapper = dict(optimizer=dict(lr=0.02))
auto_scale_lr = dict(base_batch_size=4)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
