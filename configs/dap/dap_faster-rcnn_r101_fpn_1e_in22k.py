# DAP step 3, ImageNet-22K, ResNet-101, with class-agnostic box regression
# (as DAP's 22K R101 run): 16 GPUs x 4 images, LR 0.008, WD 1e-5.
# The step-1 classifier: --cfg-options model.backbone.init_cfg.checkpoint=P
_base_ = './dap_faster-rcnn_r50_fpn_1e_in22k.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(checkpoint='work_dirs/classifier/in22k_r101.pth')),
    roi_head=dict(bbox_head=dict(reg_class_agnostic=True)))
