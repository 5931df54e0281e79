# CLS baseline (ImageNet-22K) -> VOC2007 trainval, tested on VOC2007 test
# (11-point AP50): only the backbone is pre-trained: the ImageNet-22K
# classifier (mmpretrain keys) that DAP-IN22K pre-training started from; weight
# decay 1e-5.
_base_ = './faster-rcnn_r50_fpn_dap-in22k_14e_voc07.py'

load_from = None
model = dict(
    backbone=dict(
        init_cfg=dict(
            _delete_=True,  # the base has init_cfg=None
            type='Pretrained',
            checkpoint='work_dirs/classifier/in22k_r50.pth',
            prefix='backbone.')))
