# Low-data fine-tuning on a k-shot split of VOC2007 trainval made by
#   python tools/dataset_converters/make_fewshot_splits.py voc \
#       data/VOCdevkit/VOC2007 --shots 5 10 20 50 100 --seeds 0 1 2
# Choose the split with `--cfg-options fewshot.shot=5 fewshot.seed=1`.
# DetectorTransferRunner points the train set at the split and turns the
# full schedule into iterations scaled to the split's size, same LR:
#   max_iters = max(min_iters, ceil(14 epochs * N images / batch 16)),
#   LR step at 10/14 of max_iters, evaluation at the end (VOC2007 test).
fewshot = dict(
    shot=10,
    seed=0,
    ann_file='VOC2007/ImageSets/Main/trainval_{shot}shot_seed{seed}.txt',
    min_iters=1000)
