# CLS baseline (ImageNet-22K) -> COCO train2017, tested on val2017 (box AP):
# only the backbone is pre-trained: the ImageNet-22K classifier (mmpretrain
# keys) that DAP-IN22K pre-training started from; weight decay 1e-5.
_base_ = './faster-rcnn_r50_fpn_dap-in22k_1x_coco.py'

load_from = None
# (_delete_: the DAP leaf's init_cfg is None)
model = dict(
    backbone=dict(
        init_cfg=dict(_delete_=True, **_base_.in22k_backbone.init_cfg)))
