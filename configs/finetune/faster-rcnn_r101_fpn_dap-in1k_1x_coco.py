# DAP-IN1K, ResNet-101 -> COCO train2017, tested on val2017 (box AP).
_base_ = './faster-rcnn_r50_fpn_dap-in1k_1x_coco.py'

model = dict(backbone=dict(depth=101))
# the step-3 result of configs/dap/dap_faster-rcnn_r101_fpn_1e_in1k.py
load_from = 'work_dirs/dap_faster-rcnn_r101_fpn_1e_in1k/iter_40037.pth'
