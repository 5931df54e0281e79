# DAP-IN22K -> VOC2007 trainval, tested on VOC2007 test (11-point AP50):
# as DAP-IN1K with the ImageNet-22K pre-training and weight decay 1e-5.
# Normalisation (RGB, ImageNet mean/std) is the pre-training's, as for 1K.
_base_ = './faster-rcnn_r50_fpn_dap-in1k_14e_voc07.py'

# the step-3 result of configs/dap/dap_faster-rcnn_r50_fpn_1e_in22k.py
load_from = 'work_dirs/dap_faster-rcnn_r50_fpn_1e_in22k/iter_221831.pth'
optim_wrapper = dict(optimizer=dict(weight_decay=1e-5))
