# Low-data fine-tuning on k-shot splits of VOC2007 trainval: a template.
# tools/fewshot_sweep.py makes the splits (trainval_{k}shot_seed{s}.txt beside
# trainval.txt) and, per (k, seed), writes a run config with the split and
# this schedule scaled to the split's size, same LR
# (projects/dap/dap/fewshot/schedule.py):
#   max_iters = max(min_iters, ceil(14 epochs * N images / batch 16)),
#   LR step at 10/14 of max_iters, evaluation (VOC2007 test) at max_iters,
#   a checkpoint every checkpoint_interval iterations (to resume) and at the
#   end, the last max_keep_ckpts kept.  Training this template directly is
#   refused.  (Only `fewshot` here: a key in two _base_ files is an error.)
# split_dir: where the split files are (default: beside the source list); an
# absolute folder for a read-only dataset copy, e.g. --cfg-options
# fewshot.split_dir=$PWD/work_dirs/splits/voc07
fewshot = dict(
    min_iters=1000, checkpoint_interval=500, max_keep_ckpts=1, split_dir=None)
