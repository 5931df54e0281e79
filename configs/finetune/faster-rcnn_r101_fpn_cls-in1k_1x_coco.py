# CLS baseline (ImageNet-1K), ResNet-101 -> COCO train2017, tested on val2017
# (box AP).
_base_ = './faster-rcnn_r50_fpn_cls-in1k_1x_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(checkpoint='open-mmlab://detectron2/resnet101_caffe')))
