# DAP-IN1K -> COCO train2017, tested on val2017 (box AP):
# the whole DAP-pre-trained Faster R-CNN R50-FPN is fine-tuned; only fc_cls /
# fc_reg start afresh (DetectorTransferRunner logs what was transferred).
_base_ = './_base_/faster-rcnn_r50_fpn_1x_coco.py'

# the step-3 result of configs/dap/dap_faster-rcnn_r50_fpn_1e_in1k.py;
# point to yours with --cfg-options load_from=PATH
load_from = 'work_dirs/dap_faster-rcnn_r50_fpn_1e_in1k/iter_20019.pth'
