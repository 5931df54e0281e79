# DAP-IN1K -> k-shot COCO train2017 (low-data transfer).  Pick the split with
#   --cfg-options fewshot.shot=5 fewshot.seed=1
# (k = 5, 10, 20, 50, 100; splits by tools/dataset_converters/
# make_fewshot_splits.py); the schedule is scaled to the split's size, see
# fewshot_coco.py.
_base_ = [
    './faster-rcnn_r50_fpn_dap-in1k_1x_coco.py',
    './_base_/fewshot_coco.py',
]
