# DAP-IN1K -> VOC2007+2012 trainval, tested on VOC2007 test (11-point AP50):
# the whole DAP-pre-trained Faster R-CNN R50-FPN is fine-tuned; only fc_cls /
# fc_reg start afresh (DetectorTransferRunner logs what was transferred).
_base_ = './_base_/faster-rcnn_r50_fpn_14e_voc0712.py'

# the step-3 result of configs/dap/dap_faster-rcnn_r50_fpn_1e_in1k.py;
# point to yours with --cfg-options load_from=PATH
load_from = 'work_dirs/dap_faster-rcnn_r50_fpn_1e_in1k/iter_20019.pth'
