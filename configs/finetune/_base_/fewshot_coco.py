# Low-data fine-tuning on k-shot splits of COCO train2017: a template.
# tools/fewshot_sweep.py makes the splits
# (instances_train2017_{k}shot_seed{s}.json beside instances_train2017.json)
# and, per (k, seed), writes a run config with the split and the 1x schedule
# scaled to the split's size, same LR (projects/dap/dap/fewshot/schedule.py):
#   max_iters = max(min_iters, ceil(12 epochs * N images / batch 16)),
#   LR steps at 8/12 and 11/12 of max_iters, evaluation (val2017) at
#   max_iters, a checkpoint every checkpoint_interval iterations (to resume)
#   and at the end, the last max_keep_ckpts kept.  Training this template
#   directly is refused.  (Only `fewshot` here: a key in two _base_ files is
#   an error.)
# split_dir: where the split files are (default: beside the source list); an
# absolute folder for a read-only dataset copy, e.g. --cfg-options
# fewshot.split_dir=$PWD/work_dirs/splits/coco
fewshot = dict(
    min_iters=1000, checkpoint_interval=500, max_keep_ckpts=1, split_dir=None)
