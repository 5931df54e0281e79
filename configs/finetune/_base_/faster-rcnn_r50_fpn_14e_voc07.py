# Fine-tuning on VOC2007 trainval, testing on VOC2007 test (DAP step 4):
# batch 16 (8 GPUs x 2), SGD LR 0.01, 14 epochs with x0.1 at epoch 10,
# short side 640 / long side <= 1066 for train and test, 11-point AP50.
# mmdet has no VOC07-only base: the 07+12 ConcatDataset of voc0712.py is
# replaced by VOC2007 trainval alone.
_base_ = [
    './faster-rcnn_r50_fpn_finetune.py',
    'mmdet::_base_/datasets/voc0712.py',
]
model = dict(roi_head=dict(bbox_head=dict(num_classes=20)))

data_root = 'data/VOCdevkit/'
img_scale = (1066, 640)  # (long, short) limits, keep ratio
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=_base_.images_per_gpu,  # x 8 GPUs = 16
    num_workers=2,
    dataset=dict(
        _delete_=True,
        type='VOCDataset',
        data_root=data_root,
        ann_file='VOC2007/ImageSets/Main/trainval.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        # difficult objects are ignored; small boxes are kept (the original
        # loader did not drop them, unlike mmdet's bbox_min_size=32)
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='VOCMetric', metric='mAP', eval_mode='11points')
test_evaluator = val_evaluator

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=14, val_interval=2)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    # maskrcnn-benchmark's default warm-up: linear from 1/3 over 500 iters
    dict(
        type='LinearLR', start_factor=1 / 3, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=14,
        by_epoch=True,
        milestones=[10],
        gamma=0.1)
]
optim_wrapper = dict(
    type='OptimWrapper',
    # weight decay 1e-4 for ImageNet-1K pre-training (IN-22K leaves: 1e-5)
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4),
    # bias LR x2 and no bias weight decay, as the original solver
    paramwise_cfg=dict(bias_lr_mult=2., bias_decay_mult=0.))
# LR 0.01 is for a total batch of 16 (8 GPUs x 2); --auto-scale-lr rescales
auto_scale_lr = dict(enable=False, base_batch_size=16)
