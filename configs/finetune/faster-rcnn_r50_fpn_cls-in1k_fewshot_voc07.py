# CLS-IN1K -> k-shot VOC2007 trainval (low-data transfer).  Pick the split with
#   --cfg-options fewshot.shot=5 fewshot.seed=1
# (k = 5, 10, 20, 50, 100; splits by tools/dataset_converters/
# make_fewshot_splits.py); the schedule is scaled to the split's size, see
# fewshot_voc07.py.
_base_ = [
    './faster-rcnn_r50_fpn_cls-in1k_14e_voc07.py',
    './_base_/fewshot_voc07.py',
]
