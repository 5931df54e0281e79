# DAP step 3, ImageNet-1K, ResNet-101: 8 GPUs x 4 images, LR 0.004.
# The step-1 R101 classifier: --cfg-options
#   model.backbone.init_cfg.checkpoint=PATH
_base_ = './dap_faster-rcnn_r50_fpn_1e_in1k.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(checkpoint='work_dirs/classifier/in1k_r101.pth')))

batch_size = 32
train_dataloader = dict(batch_size=4)
train_cfg = dict(max_iters=(1281167 + batch_size - 1) // batch_size)  # 40037
optim_wrapper = dict(optimizer=dict(lr=0.004))
auto_scale_lr = dict(base_batch_size=batch_size)
