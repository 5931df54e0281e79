# DAP step 2: CAM pseudo boxes for ImageNet-1K from a ResNet-50 classifier.
_base_ = ['./cam-boxes_resnet101_8xb32_in1k.py']

model = dict(classifier=dict(backbone=dict(depth=50)))
custom_hooks = [
    dict(
        type='CAMBoxHook',
        out_file='data/imagenet/pseudo_boxes/in1k_r50.dapbox',
        flush_every=1000),
]
