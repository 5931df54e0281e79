# Fine-tuning on COCO 2017 train, testing on val2017: the standard 1x
# schedule at 800/1333 (batch 16, LR 0.02, 12 epochs with x0.1 at 8 and 11;
# the original's 90k iterations with steps at 60k/80k are the same length).
_base_ = [
    './faster-rcnn_r50_fpn_finetune.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
]
model = dict(roi_head=dict(bbox_head=dict(num_classes=80)))

param_scheduler = [
    # maskrcnn-benchmark's default warm-up: linear from 1/3 over 500 iters
    dict(
        type='LinearLR', start_factor=1 / 3, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=12,
        by_epoch=True,
        milestones=[8, 11],
        gamma=0.1)
]
optim_wrapper = dict(
    # weight decay 1e-4 for ImageNet-1K pre-training (IN-22K leaves: 1e-5)
    optimizer=dict(lr=0.02, weight_decay=1e-4),
    # bias LR x2 and no bias weight decay, as the original solver
    paramwise_cfg=dict(bias_lr_mult=2., bias_decay_mult=0.))
auto_scale_lr = dict(enable=False, base_batch_size=16)
