# The demo detector, shared by step 3 (configs/demo/dap_*) and step 4
# (configs/demo/faster-rcnn_*): Faster R-CNN on the step-1 classifier's
# ResNet-18 at half width, with matching FPN / head widths, so that every
# tensor of the step-3 detector transfers.  The two leaves inherit different
# real configs, which both define `model`; mmengine refuses a key from two
# bases, so the parts are named `demo_*` here and each leaf puts them into
# its `model` (with its own number of classes).
width = 32  # the step-1 classifier's base channels
fpn_channels = 64
# The demo starts from its own step-1 classifier, not from the MSRA Caffe
# ResNet that the real configs name: a PyTorch-style mmpretrain ResNet-18
# trained on RGB input with mmpretrain's ImageNet mean / std
# (resnet18-w32_mini-imagenet.py), so that is what the detector gets.
demo_data_preprocessor = dict(
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True)
demo_backbone = dict(depth=18, base_channels=width, style='pytorch')
demo_neck = dict(
    in_channels=[width, 2 * width, 4 * width, 8 * width],
    out_channels=fpn_channels)
demo_rpn_head = dict(in_channels=fpn_channels, feat_channels=fpn_channels)
# one bilinear sample per 7x7 bin (the real configs: 2x2): the RoIs here
# span only a few feature cells, and mmcv's CPU RoIAlign cost grows with the
# samples
demo_bbox_roi_extractor = dict(
    roi_layer=dict(sampling_ratio=1), out_channels=fpn_channels)
demo_bbox_head = dict(in_channels=fpn_channels, fc_out_channels=256)
demo_train_cfg = dict(
    # anchors crossing the border are used (the real configs ignore them, as
    # the original): the demo keeps the real anchor sizes (32-512 px) on
    # images 1/5 of the real size, where no anchor above 64 px would lie
    # inside a 128-px image
    rpn=dict(allowed_border=-1),
    rpn_proposal=dict(nms_pre=1000, max_per_img=300),
    # 64 RoIs per image (mmdet: 512): these small images hold 1-4 objects,
    # and on a CPU mmcv's RoIAlign (backward above all) was 40% of an
    # iteration at 128
    rcnn=dict(sampler=dict(num=64)))
demo_test_cfg = dict(
    rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=50))
