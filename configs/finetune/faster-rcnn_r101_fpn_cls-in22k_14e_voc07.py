# CLS baseline (ImageNet-22K), ResNet-101 -> VOC2007 trainval, tested on
# VOC2007 test (11-point AP50).
_base_ = './faster-rcnn_r50_fpn_cls-in22k_14e_voc07.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(checkpoint='work_dirs/classifier/in22k_r101.pth')))
