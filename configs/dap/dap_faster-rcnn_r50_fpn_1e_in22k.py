# DAP step 3, ImageNet-22K (21841 classes), ResNet-50: 8 GPUs x 8 images,
# LR 0.008, WD 1e-5; RGB normalisation (inherited, = mmpretrain's).
# Data (mmpretrain's ImageNet-21k layout):
#   data/imagenet21k/train/<wnid>/*.JPEG, data/imagenet21k/meta/train.txt
#   data/imagenet21k/pseudo_boxes/in22k_r50.dapbox   (step 2 output)
# The step-1 classifier: --cfg-options model.backbone.init_cfg.checkpoint=P
_base_ = './dap_faster-rcnn_r50_fpn_1e_in1k.py'

num_classes = 21841
model = dict(
    backbone=dict(
        init_cfg=dict(checkpoint='work_dirs/classifier/in22k_r50.pth')),
    roi_head=dict(bbox_head=dict(num_classes=num_classes)))

train_dataloader = dict(
    dataset=dict(
        data_root='data/imagenet21k/',
        box_file='pseudo_boxes/in22k_r50.dapbox'))

# one epoch of the 14,197,122 IN-22K (fall11) images at batch 64
train_cfg = dict(max_iters=(14197122 + 64 - 1) // 64)  # 221831
optim_wrapper = dict(optimizer=dict(weight_decay=1e-5))
