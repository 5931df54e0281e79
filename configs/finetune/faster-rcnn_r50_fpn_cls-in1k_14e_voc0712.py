# CLS baseline (ImageNet-1K) -> VOC2007+2012 trainval, tested on VOC2007 test
# (11-point AP50): the same fine-tuning, but only the backbone is pre-trained:
# the MSRA Caffe ResNet-50 that DAP-IN1K pre-training started from (the
# original's catalog://ImageNetPretrained/MSRA/R-50).
_base_ = './faster-rcnn_r50_fpn_dap-in1k_14e_voc0712.py'

load_from = None
# (_delete_: the DAP leaf's init_cfg is None)
model = dict(
    backbone=dict(
        init_cfg=dict(_delete_=True, **_base_.msra_caffe_backbone.init_cfg)))
