# Faster R-CNN R50-FPN as the original DAP built it: maskrcnn-benchmark's
# defaults wherever DAP's yaml files leave them, and the backbone
# initialisation each yaml names.  Every DAP pre-training and fine-tuning
# config, DAP and CLS alike, inherits this file, so the comparison is fair.
# Each value below differs from mmdet's default; the comment says what the
# original does.
_base_ = 'mmdet::_base_/models/faster-rcnn_r50_fpn.py'

# --- backbone initialisation and input normalisation ----------------------
# IN-1K (every IN-1K yaml: DAP pre-training and the CLS baselines):
# catalog://ImageNetPretrained/MSRA/R-50, the MSRA Caffe ResNet (stride in
# the 1x1 conv, frozen BN), fed BGR 0-255 minus maskrcnn-benchmark's
# PIXEL_MEAN, std 1.  This is the model's default below.
msra_caffe_data_preprocessor = dict(
    type='DetDataPreprocessor',
    mean=[102.9801, 115.9465, 122.7717],
    std=[1.0, 1.0, 1.0],
    bgr_to_rgb=False,
    pad_size_divisor=32)
msra_caffe_backbone = dict(
    style='caffe',
    init_cfg=dict(
        type='Pretrained',
        checkpoint='open-mmlab://detectron2/resnet50_caffe'))
# IN-22K (the 22K yamls): the authors' own classifier, PyTorch style
# (STRIDE_IN_1X1=False), RGB with ImageNet mean / std; the 22K configs take
# these two as `_base_.in22k_data_preprocessor` / `_base_.in22k_backbone`.
in22k_data_preprocessor = dict(
    type='DetDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_size_divisor=32)
in22k_backbone = dict(
    style='pytorch',
    init_cfg=dict(
        type='Pretrained',
        checkpoint='work_dirs/classifier/in22k_r50.pth',
        prefix='backbone.'))

# --- proposals ------------------------------------------------------------
# maskrcnn-benchmark keeps FPN_POST_NMS_TOP_N_TRAIN = 2000 proposals per GPU
# *batch* (FPN_POST_NMS_PER_BATCH=True; DAP kept it on purpose), mmdet keeps
# max_per_img per image: 2000 / images per GPU.  A config that changes the
# images per GPU sets `images_per_gpu`, the loader's batch_size and
#   max_per_img=_base_.rpn_proposals_per_gpu_batch // images_per_gpu
# together; on the command line: --cfg-options train_dataloader.batch_size=B
#   model.train_cfg.rpn_proposal.max_per_img=<2000 // B>
rpn_proposals_per_gpu_batch = 2000
images_per_gpu = 2  # the fine-tuning batch: 8 GPUs x 2 = 16

# Caffe2's XavierFill (maskrcnn-benchmark's c2_xavier_fill / make_fc):
# uniform(+-sqrt(3 / fan_in)), bias 0; mmdet's FPN and box-head FCs use
# torch's Xavier uniform instead.
c2_xavier_fill = dict(
    type='Kaiming',
    a=1,
    mode='fan_in',
    nonlinearity='leaky_relu',
    distribution='uniform',
    bias=0)

model = dict(
    data_preprocessor=msra_caffe_data_preprocessor,
    backbone=dict(
        msra_caffe_backbone,
        # frozen BN everywhere and a frozen stem + res2 (FrozenBatchNorm2d,
        # FREEZE_CONV_BODY_AT=2)
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True),
    neck=dict(init_cfg=dict(layer='Conv2d', **c2_xavier_fill)),
    rpn_head=dict(
        # smooth L1 with beta 1/9 (mmdet: L1)
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0)),
    roi_head=dict(
        # RoIAlign 7x7, sampling ratio 2 (POOLER_SAMPLING_RATIO), without the
        # half-pixel alignment maskrcnn-benchmark's ROIAlign does not have
        bbox_roi_extractor=dict(
            roi_layer=dict(
                type='RoIAlign',
                output_size=7,
                sampling_ratio=2,
                aligned=False)),
        bbox_head=dict(
            # smooth L1 with beta 1 (mmdet: L1)
            loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0),
            init_cfg=[
                dict(override=dict(name='shared_fcs'), **c2_xavier_fill),
                dict(type='Normal', std=0.01, override=dict(name='fc_cls')),
                dict(type='Normal', std=0.001, override=dict(name='fc_reg'))
            ])),
    train_cfg=dict(
        rpn=dict(
            # anchors crossing the image border are ignored
            # (STRADDLE_THRESH=0; mmdet: all anchors are used)
            allowed_border=0,
            # every ground-truth box gets its best anchors whatever their
            # IoU (Matcher allow_low_quality_matches has no floor; mmdet:
            # 0.3, which leaves small pseudo boxes without a positive).  The
            # floor stays above 0: without maskrcnn-benchmark's +1 a box
            # clipped to zero width overlaps no anchor, and 0 would make
            # every anchor its positive.
            assigner=dict(min_pos_iou=1e-6)),
        rpn_proposal=dict(max_per_img=rpn_proposals_per_gpu_batch //
                          images_per_gpu)))
