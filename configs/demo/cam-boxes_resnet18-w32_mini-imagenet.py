# DAP demo, step 2: CAM pseudo boxes on the generated mini-ImageNet from the
# step-1 classifier (configs/demo/resnet18-w32_mini-imagenet.py).  Inherits
# the original-default config and changes only the classifier and the
# scales: the demo classifier sees 112 px images at stride 16, so the CAM
# scales keep the original's ratio to the training size (288 / 224 and
# 576 / 224) and give the original's CAM grids (9x9 and 18x18 cells).
#
#   python tools/generate_pseudo_boxes.py \
#       configs/demo/cam-boxes_resnet18-w32_mini-imagenet.py \
#       --checkpoint <step-1 checkpoint>
_base_ = ['../cam_boxes/cam-boxes_resnet101_8xb32_in1k.py']

classes = ('ellipse', 'rectangle', 'triangle', 'diamond', 'cross', 'star',
           'ring', 'hexagon')
width = 32
model = dict(
    classifier=dict(
        backbone=dict(
            depth=18,
            stem_channels=width,
            base_channels=width,
            strides=(1, 2, 2, 1)),  # as the step-1 classifier: stride 16
        head=dict(num_classes=len(classes), in_channels=8 * width)),
    stride=16,
    scales=(144, 288),
    fusion_scale=288,
    max_batch=16)

test_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root='data/dap_demo/mini_imagenet',
        metainfo=dict(classes=classes)))
# progress.json for the demo's progress bar (projects/dap/dap/demo)
custom_imports = dict(
    imports=['projects.dap.dap.demo'], allow_failed_imports=False)
custom_hooks = [
    dict(type='CAMBoxHook', flush_every=400),
    dict(type='ProgressFileHook')
]
default_hooks = dict(logger=dict(type='LoggerHook', interval=20))
