# CLS baseline (ImageNet-1K), ResNet-101 -> VOC2007 trainval, tested on VOC2007
# test (11-point AP50).
_base_ = './faster-rcnn_r50_fpn_cls-in1k_14e_voc07.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(checkpoint='open-mmlab://detectron2/resnet101_caffe')))
