# DAP step 2: CAM pseudo boxes for ImageNet-1K train from a ResNet-101
# classifier (the original default). Every parameter of the original
# algorithm is spelled out with its original value.
#   python tools/generate_pseudo_boxes.py THIS_CONFIG --checkpoint CKPT
_base_ = [
    'mmpretrain::_base_/models/resnet101.py',
    'mmpretrain::_base_/default_runtime.py',
]
default_scope = 'mmpretrain'
custom_imports = dict(imports=['projects.dap.dap'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='CAMBoxGenerator',
    classifier={{_base_.model}},
    checkpoint=None,  # --checkpoint (mmpretrain classifier weights)
    # CAM: GT-class CAM of layer4 (stride 32) at two short sides, each
    # averaged with its horizontal flip, min-max normalised, the 288 map
    # nearest-upsampled to the 576 grid and averaged.
    scales=(288, 576),
    flip=True,
    stride=32,
    fusion_scale=576,
    mean=[123.675, 116.28, 103.53],  # ImageNet RGB mean/std (0-255)
    std=[58.395, 57.12, 57.375],
    # boxes: per threshold up to k components with bounding-rectangle area
    # >= min_area_ratio x the largest, moment fit with weights cam + bias,
    # then NMS over the <= 16 boxes (score = area / area of the first box).
    thresholds=(0.2, 0.3, 0.4, 0.5),
    bias=0.22,
    max_per_threshold=4,
    min_area_ratio=0.5,
    nms_iou=0.8,
    # images of the same padded size per forward: 1 (the original's batch
    # size) gives bit-identical boxes on any number of ranks; larger is
    # faster on GPUs (last bits may change, so it is part of the config)
    max_batch=1)

test_pipeline = [
    # decodes by content, any mode -> RGB; unreadable images are recorded
    # as failed instead of stopping the run. draft_short_side=576 decodes
    # big JPEGs at reduced size (faster, not bit-exact with the original).
    dict(type='LoadImageForCAM', draft_short_side=None),
    dict(
        type='PackInputs',
        meta_keys=('sample_idx', 'img_path', 'ori_shape', 'img_shape',
                   'load_error')),
]
test_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    dataset=dict(
        # mmpretrain's ImageNet (same samples and arguments) with the list
        # in an index on disk, built once next to it
        # (meta/train.txt.dapindex; index_dir= to put it elsewhere): flat
        # memory per rank instead of one Python dict per image
        type='IndexedImageNet',
        data_root='data/imagenet',
        split='train',  # meta/train.txt: "<class dir>/<file> <label>"
        pipeline=test_pipeline),
    # skips images finished by an earlier (killed) run, no padding
    sampler=dict(type='ResumableSampler'),
    # images keep their own sizes
    collate_fn=dict(type='pseudo_collate'))
test_evaluator = dict(type='CAMBoxMetric')
test_cfg = dict(type='TestLoop')

custom_hooks = [
    # shards under {work_dir}/cam_box_shards (keep them to resume); the
    # merged box file is where configs/dap reads it (--out to change)
    dict(
        type='CAMBoxHook',
        out_file='data/imagenet/pseudo_boxes/in1k_r101.dapbox',
        flush_every=1000),
]
default_hooks = dict(logger=dict(type='LoggerHook', interval=50))
