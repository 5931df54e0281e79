# DAP demo, step 1: the "ImageNet classifier" -- an mmpretrain ResNet-18 at
# half width (32 base channels) trained on the generated mini-ImageNet
# (8 shape classes, 96-128 px images).  Inherits mmpretrain's own ResNet /
# ImageNet / schedule bases and shrinks them for 2 CPU cores.
#
#   python tools/train.py configs/demo/resnet18-w32_mini-imagenet.py
#
# tools/run_dap_demo.py generates the data and runs this as its step 1.
_base_ = [
    'mmpretrain::_base_/models/resnet18.py',
    'mmpretrain::_base_/datasets/imagenet_bs32.py',
    'mmpretrain::_base_/schedules/imagenet_bs256.py',
    'mmpretrain::_base_/default_runtime.py',
]
classes = ('ellipse', 'rectangle', 'triangle', 'diamond', 'cross', 'star',
           'ring', 'hexagon')
width = 32  # base channels (torchvision ResNet-18: 64)
# Last stage at stride 16 (no downsampling in res5): the real step 1 trains
# at 224 px with stride 32, a 7x7 map, and its CAMs at 288 / 576 have 9x9 /
# 18x18 cells; at the demo's 112 px, stride 16 gives the same 7x7 map and,
# with the CAM scales 144 / 288, the same 9x9 / 18x18 CAM grids.  (Stride 32
# here meant 4x4 maps and CAMs so coarse that the top pseudo box was no
# better than a centred box: GT-known acc@0.5 29.6% vs 36.0%.)  The weights
# are the same tensors either way; detectors load them at stride 32.
model = dict(
    backbone=dict(
        stem_channels=width, base_channels=width, strides=(1, 2, 2, 1)),
    head=dict(num_classes=len(classes), in_channels=8 * width, topk=(1, )))
data_preprocessor = dict(num_classes=len(classes))

img_size = 112
train_pipeline = [
    dict(type='LoadImageFromFile'),
    # the object covers 30-75% of the short side; keep most of the image
    dict(
        type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.5, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=img_size, edge='short'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
data_root = 'data/dap_demo/mini_imagenet'
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

max_epochs = 12
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=30),
    dict(
        type='CosineAnnealingLR',
        by_epoch=True,
        begin=0,
        T_max=max_epochs,
        eta_min=1e-3),
]
auto_scale_lr = dict(base_batch_size=32)
randomness = dict(seed=0)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
# progress.json for the demo's progress bar (projects/dap/dap/demo)
custom_imports = dict(
    imports=['projects.dap.dap.demo'], allow_failed_imports=False)
custom_hooks = [dict(type='ProgressFileHook')]
