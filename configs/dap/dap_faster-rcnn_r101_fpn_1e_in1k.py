# DAP step 3, ImageNet-1K, ResNet-101: 8 GPUs x 4 images, LR 0.004, from the
# MSRA Caffe ResNet-101 (catalog://ImageNetPretrained/MSRA/R-101).
_base_ = './dap_faster-rcnn_r50_fpn_1e_in1k.py'

images_per_gpu = 4  # 8 GPUs x 4 = 32
model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(checkpoint='open-mmlab://detectron2/resnet101_caffe')),
    # 2000 proposals per GPU batch: 500 per image
    train_cfg=dict(
        rpn_proposal=dict(max_per_img=_base_.rpn_proposals_per_gpu_batch //
                          images_per_gpu)))

batch_size = 32
train_dataloader = dict(batch_size=images_per_gpu)
train_cfg = dict(max_iters=(1281167 + batch_size - 1) // batch_size)  # 40037
optim_wrapper = dict(optimizer=dict(lr=0.004))
auto_scale_lr = dict(base_batch_size=batch_size)
