# DAP-IN1K -> VOC2007 trainval, tested on VOC2007 test (11-point AP50):
# the whole DAP-pre-trained Faster R-CNN R50-FPN is fine-tuned; only fc_cls /
# fc_reg start afresh (DetectorTransferRunner logs what was transferred).
#
#   bash tools/dist_train.sh \
#       configs/finetune/faster-rcnn_r50_fpn_dap-in1k_14e_voc07.py 8 \
#       --cfg-options load_from=<dap checkpoint> work_dir=<dir>
#   bash tools/dist_test.sh \
#       configs/finetune/faster-rcnn_r50_fpn_dap-in1k_14e_voc07.py \
#       <dir>/epoch_14.pth 8
_base_ = './_base_/faster-rcnn_r50_fpn_14e_voc07.py'

# the step-3 result of configs/dap/dap_faster-rcnn_r50_fpn_1e_in1k.py;
# point to yours with --cfg-options load_from=PATH
load_from = 'work_dirs/dap_faster-rcnn_r50_fpn_1e_in1k/iter_20019.pth'
