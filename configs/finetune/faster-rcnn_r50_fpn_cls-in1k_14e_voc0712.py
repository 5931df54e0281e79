# CLS baseline (ImageNet-1K) -> VOC2007+2012 trainval, tested on VOC2007 test
# (11-point AP50): the same fine-tuning, but only the backbone is pre-trained:
# the step-1 classifier (mmpretrain keys) that DAP-IN1K pre-training started
# from.
_base_ = './faster-rcnn_r50_fpn_dap-in1k_14e_voc0712.py'

load_from = None
model = dict(
    backbone=dict(
        init_cfg=dict(
            _delete_=True,  # the base has init_cfg=None
            type='Pretrained',
            checkpoint='work_dirs/classifier/in1k_r50.pth',
            prefix='backbone.')))
