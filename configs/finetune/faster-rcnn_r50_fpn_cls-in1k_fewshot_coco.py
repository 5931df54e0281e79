# CLS-IN1K -> k-shot COCO train2017 (low-data transfer).
# A template: tools/fewshot_sweep.py runs it per (k, seed) (default shots and
# seeds: projects/dap/dap/fewshot/splits.py), the schedule scaled to each
# split; see fewshot_coco.py.
_base_ = [
    './faster-rcnn_r50_fpn_cls-in1k_1x_coco.py',
    './_base_/fewshot_coco.py',
]
