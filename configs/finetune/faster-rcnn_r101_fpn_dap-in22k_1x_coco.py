# DAP-IN22K, ResNet-101 -> COCO train2017, tested on val2017 (box AP).
# That pre-training used class-agnostic box regression; the fine-tuning
# keeps mmdet's class-specific fc_reg (re-initialised) like every other
# variant.  With --cfg-options
# model.roi_head.bbox_head.reg_class_agnostic=True the pre-trained fc_reg
# (4 outputs) has the model's shape and is transferred too.
_base_ = './faster-rcnn_r50_fpn_dap-in22k_1x_coco.py'

model = dict(backbone=dict(depth=101))
# the step-3 result of configs/dap/dap_faster-rcnn_r101_fpn_1e_in22k.py
load_from = 'work_dirs/dap_faster-rcnn_r101_fpn_1e_in22k/iter_221831.pth'
