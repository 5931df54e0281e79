# DAP-IN1K -> k-shot VOC2007 trainval (low-data transfer).
# A template: tools/fewshot_sweep.py runs it per (k, seed) (default shots and
# seeds: projects/dap/dap/fewshot/splits.py), the schedule scaled to each
# split; see fewshot_voc07.py.
_base_ = [
    './faster-rcnn_r50_fpn_dap-in1k_14e_voc07.py',
    './_base_/fewshot_voc07.py',
]
# AP (mean over IoU 0.5:0.95) next to the VOC07 AP50, which is unchanged
val_evaluator = dict(
    iou_thrs=[0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95])
test_evaluator = val_evaluator
