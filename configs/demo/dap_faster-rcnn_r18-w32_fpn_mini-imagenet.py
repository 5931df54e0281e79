# DAP demo, step 3: Faster R-CNN pre-trained on the mini-ImageNet pseudo
# boxes of step 2.  Inherits the real IN-1K R50 config and shrinks it for
# 2 CPU cores: the demo classifier's ResNet-18 at half width (with matching
# FPN / head widths), the mini-ImageNet sizes, a short schedule.  What DAP
# changes stays as in the real config: frozen BN, frozen stem + res2, random
# short side per image, bias LR x2, linear warm-up then constant LR.
#
#   python tools/train.py \
#       configs/demo/dap_faster-rcnn_r18-w32_fpn_mini-imagenet.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=<step-1 checkpoint> \
#       train_dataloader.dataset.box_file=<step-2 box file>
_base_ = ['../dap/dap_faster-rcnn_r50_fpn_1e_in1k.py']

classes = ('ellipse', 'rectangle', 'triangle', 'diamond', 'cross', 'star',
           'ring', 'hexagon')
width = 32  # the step-1 classifier's base channels
fpn_channels = 64
model = dict(
    # The demo starts from its own step-1 classifier, not from the MSRA Caffe
    # ResNet that the real IN-1K config names: a PyTorch-style mmpretrain
    # ResNet-18 trained on RGB input with mmpretrain's ImageNet mean / std
    # (resnet18-w32_mini-imagenet.py), so that is what the detector gets.
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        depth=18,
        base_channels=width,
        style='pytorch',
        init_cfg=dict(
            _delete_=True,
            type='Pretrained',
            checkpoint='work_dirs/dap_demo/step1_classifier/classifier.pth',
            prefix='backbone.')),
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

# the real config's short sides (96..640) span 0.25x-1.6x of a ~400 px
# ImageNet image; the same span of the ~112 px mini-ImageNet images
dap_scales = [(1333, 80), (1333, 112), (1333, 144), (1333, 176)]
train_pipeline = [
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='LoadImageRandomChoiceResize', scales=dap_scales,
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

# about one pass over the 2000 images at batch 8; warm-up and LR scaled
# from the real 2000 warm-up iterations / LR 0.008 at batch 64 to a short
# run (a higher LR: 250 iterations instead of 20k)
max_iters = 250
train_cfg = dict(max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=50)
]
optim_wrapper = dict(optimizer=dict(lr=0.02))
auto_scale_lr = dict(base_batch_size=8)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
