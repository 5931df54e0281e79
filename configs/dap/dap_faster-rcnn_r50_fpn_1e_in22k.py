# DAP step 3, ImageNet-22K (21841 classes), ResNet-50: 16 GPUs x 4 images
# (4 nodes), LR 0.008, WD 1e-5, from the authors' IN-22K classifier
# (PyTorch style, RGB ImageNet mean / std, as the 22K yamls).
# Data (mmpretrain's ImageNet-21k layout):
#   data/imagenet21k/train/<wnid>/*.JPEG, data/imagenet21k/meta/train.txt
#   data/imagenet21k/pseudo_boxes/in22k_r50.dapbox   (step 2 output)
# The step-1 classifier: --cfg-options model.backbone.init_cfg.checkpoint=P
_base_ = './dap_faster-rcnn_r50_fpn_1e_in1k.py'

num_classes = 21841
images_per_gpu = 4  # 16 GPUs x 4 = 64
model = dict(
    data_preprocessor=_base_.in22k_data_preprocessor,
    backbone=_base_.in22k_backbone,
    roi_head=dict(bbox_head=dict(num_classes=num_classes)),
    # 2000 proposals per GPU batch: 500 per image
    train_cfg=dict(
        rpn_proposal=dict(max_per_img=_base_.rpn_proposals_per_gpu_batch //
                          images_per_gpu)))

train_dataloader = dict(
    batch_size=images_per_gpu,
    dataset=dict(
        data_root='data/imagenet21k/',
        box_file='pseudo_boxes/in22k_r50.dapbox'))

# one epoch of the 14,197,122 IN-22K (fall11) images at batch 64
train_cfg = dict(max_iters=(14197122 + 64 - 1) // 64)  # 221831
# the 22K yamls set no warm-up: maskrcnn-benchmark's default, linear from
# 1/3 over 500 iterations
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1 / 3, by_epoch=False, begin=0, end=500)
]
optim_wrapper = dict(optimizer=dict(weight_decay=1e-5))
