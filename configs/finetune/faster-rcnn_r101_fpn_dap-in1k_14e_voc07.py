# DAP-IN1K, ResNet-101 -> VOC2007 trainval, tested on VOC2007 test (11-point
# AP50).
_base_ = './faster-rcnn_r50_fpn_dap-in1k_14e_voc07.py'

model = dict(backbone=dict(depth=101))
# the step-3 result of configs/dap/dap_faster-rcnn_r101_fpn_1e_in1k.py
load_from = 'work_dirs/dap_faster-rcnn_r101_fpn_1e_in1k/iter_40037.pth'
