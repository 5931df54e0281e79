# CLS baseline (ImageNet-1K) -> COCO train2017, tested on val2017 (box AP):
# the same fine-tuning, but only the backbone is pre-trained: the step-1
# classifier (mmpretrain keys) that DAP-IN1K pre-training started from.
_base_ = './faster-rcnn_r50_fpn_dap-in1k_1x_coco.py'

load_from = None
model = dict(
    backbone=dict(
        init_cfg=dict(
            _delete_=True,  # the base has init_cfg=None
            type='Pretrained',
            checkpoint='work_dirs/classifier/in1k_r50.pth',
            prefix='backbone.')))
