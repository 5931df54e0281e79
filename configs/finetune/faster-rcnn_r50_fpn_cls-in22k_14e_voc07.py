# CLS baseline (ImageNet-22K) -> VOC2007 trainval, tested on VOC2007 test
# (11-point AP50): only the backbone is pre-trained: the ImageNet-22K
# classifier (mmpretrain keys) that DAP-IN22K pre-training started from; weight
# decay 1e-5.
_base_ = './faster-rcnn_r50_fpn_dap-in22k_14e_voc07.py'

load_from = None
# (_delete_: the DAP leaf's init_cfg is None)
model = dict(
    backbone=dict(
        init_cfg=dict(_delete_=True, **_base_.in22k_backbone.init_cfg)))
