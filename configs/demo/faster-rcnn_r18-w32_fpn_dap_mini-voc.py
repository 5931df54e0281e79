# DAP demo, step 4 (DAP init): the whole step-3 detector fine-tuned on the
# generated mini-VOC (VOC2007 layout, 5 classes: 3 seen in pre-training, 2
# novel).  Inherits the real DAP-IN1K -> VOC07 config and shrinks the model
# (same widths as the step-3 demo config, so every tensor transfers), the
# images and the schedule.  Evaluation: VOC 11-point AP at IoU 0.5 (the
# real metric) and its mean over IoU 0.5:0.95 ("AP").
#
#   python tools/train.py \
#       configs/demo/faster-rcnn_r18-w32_fpn_dap_mini-voc.py \
#       --cfg-options load_from=<step-3 checkpoint>
_base_ = ['../finetune/faster-rcnn_r50_fpn_dap-in1k_14e_voc07.py']

classes = ('triangle', 'star', 'ring', 'arrow', 'semicircle')
metainfo = dict(classes=classes)
width = 32
fpn_channels = 64
model = dict(
    # the demo's step-1 classifier's input and style, as in step 3 (the real
    # DAP-IN1K config has the MSRA Caffe ResNet's)
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(depth=18, base_channels=width, style='pytorch'),
    neck=dict(
        in_channels=[width, 2 * width, 4 * width, 8 * width],
        out_channels=fpn_channels),
    rpn_head=dict(in_channels=fpn_channels, feat_channels=fpn_channels),
    roi_head=dict(
        # one bilinear sample per 7x7 bin (the real configs: 2x2): the
        # RoIs here span only a few feature cells, and mmcv's CPU RoIAlign
        # cost grows with the samples
        bbox_roi_extractor=dict(
            roi_layer=dict(sampling_ratio=1), out_channels=fpn_channels),
        bbox_head=dict(
            in_channels=fpn_channels, fc_out_channels=256,
            num_classes=len(classes))),
    train_cfg=dict(
        # anchors crossing the border are used (the real configs ignore
        # them, as the original): the demo keeps the real anchor sizes
        # (32-512 px) on images 1/5 of the real size, where no anchor above
        # 64 px would lie inside a 128-px image
        rpn=dict(allowed_border=-1),
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        # 64 RoIs per image (mmdet: 512): these small images hold 1-4
        # objects, and on a CPU mmcv's RoIAlign (backward above all) was
        # 40% of an iteration at 128
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(
        rpn=dict(nms_pre=300, max_per_img=100),
        rcnn=dict(max_per_img=50)))
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
        data_root=data_root,
        metainfo=metainfo,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    iou_thrs=[0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95])
test_evaluator = val_evaluator

# the real schedule (14 epochs, x0.1 at 10) shortened to 6 epochs with the
# step at 4/6 of them, at batch 4 with a higher LR
max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=1 / 3, by_epoch=False, begin=0,
         end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[4], gamma=0.1)
]
optim_wrapper = dict(optimizer=dict(lr=0.02))
auto_scale_lr = dict(base_batch_size=4)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
