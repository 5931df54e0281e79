# DAP demo, step 4 (CLS baseline): the same fine-tuning as the DAP-init demo
# config, but only the backbone is pre-trained -- the step-1 classifier that
# DAP pre-training started from (as configs/finetune/*_cls-in1k_*.py).
_base_ = ['./faster-rcnn_r18-w32_fpn_dap_mini-voc.py']

load_from = None
model = dict(
    backbone=dict(
        init_cfg=dict(
            _delete_=True,
            type='Pretrained',
            checkpoint='work_dirs/dap_demo/step1_classifier/classifier.pth',
            prefix='backbone.')))
