# DAP demo, step 4 (DAP init), low-data: a template for k-shot splits of
# mini-VOC trainval, run per (k, seed) by the low-data sweep
# (projects/dap/dap/fewshot, as tools/fewshot_sweep.py does for the real
# configs), which writes each run's config with the split and the schedule
# scaled to it: max(min_iters, ceil(E epochs x N images / batch 4))
# iterations (./_base_/fewshot_mini-voc.py: min_iters).
_base_ = [
    './faster-rcnn_r18-w32_fpn_dap_mini-voc.py',
    './_base_/fewshot_mini-voc.py',
]
