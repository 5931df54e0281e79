# DAP demo, step 4 (DAP init), low-data: a k-shot split of mini-VOC trainval
# (tools/dataset_converters/make_fewshot_splits.py), chosen with
#   --cfg-options fewshot.shot=5 fewshot.seed=1
# The schedule is scaled to the split's size as in the real few-shot
# configs: max(min_iters, ceil(6 epochs x N images / batch 4)) iterations.
_base_ = [
    './faster-rcnn_r18-w32_fpn_dap_mini-voc.py',
    '../finetune/_base_/fewshot_voc07.py',
]
fewshot = dict(min_iters=100)
