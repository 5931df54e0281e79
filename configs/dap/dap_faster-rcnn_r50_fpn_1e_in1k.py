# DAP step 3: Faster R-CNN R50-FPN pre-trained for one epoch on ImageNet-1K
# with the CAM pseudo boxes of step 2 (8 GPUs x 8 images, LR 0.008).
#
#   bash tools/dist_train.sh configs/dap/dap_faster-rcnn_r50_fpn_1e_in1k.py 8
#   mpirun -n 8 python tools/train.py \
#       configs/dap/dap_faster-rcnn_r50_fpn_1e_in1k.py --launcher mpi
#
# Data (mmpretrain's ImageNet layout; see data/README.md):
#   data/imagenet/train/<wnid>/*.JPEG, data/imagenet/meta/train.txt
#   data/imagenet/pseudo_boxes/in1k_r101.dapbox   (step 2 output)
# The backbone starts from the MSRA Caffe ResNet-50 that every IN-1K yaml of
# the original names (catalog://ImageNetPretrained/MSRA/R-50; BGR, std 1),
# not from the torchvision classifier that made the CAMs of step 2.  The
# detector and its defaults: ../_base_/models/faster-rcnn_r50_fpn_dap.py.
_base_ = [
    '../_base_/models/faster-rcnn_r50_fpn_dap.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['projects.dap.dap'], allow_failed_imports=False)

num_classes = 1000  # the image-level ImageNet classes; no background slot
images_per_gpu = 8  # 8 GPUs x 8 = 64
model = dict(
    roi_head=dict(bbox_head=dict(num_classes=num_classes)),
    # 2000 proposals per GPU batch: 250 per image
    train_cfg=dict(
        rpn_proposal=dict(max_per_img=_base_.rpn_proposals_per_gpu_batch //
                          images_per_gpu)))

# random short side per image, long side <= 1333, decoded at reduced size
dap_scales = [(1333, 96), (1333, 160), (1333, 320), (1333, 640)]
train_pipeline = [
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='LoadImageRandomChoiceResize', scales=dap_scales,
        keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
data_root = 'data/imagenet/'
train_dataloader = dict(
    batch_size=images_per_gpu,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type='ImageNetPseudoBoxDataset',
        data_root=data_root,
        ann_file='meta/train.txt',  # '' scans train/<wnid>/ folders instead
        data_prefix=dict(img='train/'),
        box_file='pseudo_boxes/in1k_r101.dapbox',
        pipeline=train_pipeline))

# pre-training only: no validation or test
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None

# one epoch of the 1,281,167 IN-1K train images at batch 64 (iteration
# based so that a killed run resumes exactly; set train_cfg.max_iters for
# another image list)
num_images = 1281167
batch_size = 64
max_iters = (num_images + batch_size - 1) // batch_size  # 20019
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters)
# linear warm-up from 0.01x over 2000 iterations, then constant
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=2000)
]
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.008, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(bias_lr_mult=2., bias_decay_mult=0.))
auto_scale_lr = dict(enable=False, base_batch_size=batch_size)

default_hooks = dict(
    checkpoint=dict(
        by_epoch=False, interval=2000, max_keep_ckpts=3, save_last=True))
log_processor = dict(by_epoch=False)
# the detector's num_classes must equal the box file's class count
custom_hooks = [dict(type='NumClassCheckHook')]
