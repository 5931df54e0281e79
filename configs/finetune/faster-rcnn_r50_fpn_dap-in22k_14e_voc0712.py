# DAP-IN22K -> VOC2007+2012 trainval, tested on VOC2007 test (11-point AP50):
# as DAP-IN1K with the ImageNet-22K pre-training and weight decay 1e-5.
# The 22K classifier's PyTorch-style backbone and RGB ImageNet mean / std, as
# in the 22K pre-training.
_base_ = './faster-rcnn_r50_fpn_dap-in1k_14e_voc0712.py'

# the step-3 result of configs/dap/dap_faster-rcnn_r50_fpn_1e_in22k.py
load_from = 'work_dirs/dap_faster-rcnn_r50_fpn_1e_in22k/iter_221831.pth'
model = dict(
    data_preprocessor=_base_.in22k_data_preprocessor,
    backbone=dict(style=_base_.in22k_backbone.style))
optim_wrapper = dict(optimizer=dict(weight_decay=1e-5))
