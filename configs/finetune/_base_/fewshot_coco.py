# Low-data fine-tuning on a k-shot split of COCO train2017 made by
#   python tools/dataset_converters/make_fewshot_splits.py coco \
#       data/coco/annotations/instances_train2017.json \
#       --shots 5 10 20 50 100 --seeds 0 1 2
# Choose the split with `--cfg-options fewshot.shot=5 fewshot.seed=1`.
# DetectorTransferRunner points the train set at the split and turns the
# 1x schedule into iterations scaled to the split's size, same LR:
#   max_iters = max(min_iters, ceil(12 epochs * N images / batch 16)),
#   LR steps at 8/12 and 11/12 of max_iters, evaluation at the end (val2017).
fewshot = dict(
    shot=10,
    seed=0,
    ann_file='annotations/instances_train2017_{shot}shot_seed{seed}.json',
    min_iters=1000)
