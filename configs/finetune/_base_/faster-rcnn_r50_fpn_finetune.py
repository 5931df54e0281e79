# Faster R-CNN R50-FPN set up as DAP pre-trains it, for fine-tuning the whole
# detector (DAP step 4).  Leaf configs add a dataset/schedule and say where
# the weights come from:
#   DAP: `load_from` = the pre-trained detector; DetectorTransferRunner copies
#        every tensor except the class-specific fc_cls / fc_reg and logs it;
#        training starts at iteration 0 (`--resume` resumes as usual).
#   CLS: `load_from = None`; the backbone's init_cfg loads the classifier.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['projects.dap.dap'], allow_failed_imports=False)

runner_type = 'DetectorTransferRunner'
transfer_cfg = dict(
    # regexes of the class-specific tensors, left at mmdet's head init
    reinit=[r'(^|\.)fc_cls\.', r'(^|\.)fc_reg\.'],
    # ...unless the checkpoint's tensor has the same shape (e.g. a
    # class-agnostic fc_reg: 4 outputs before and after)
    keep_matching_shapes=True,
    # any other missing/unused/mis-shaped tensor is an error
    strict=True)

model = dict(
    # the pre-training's normalisation (configs/dap: RGB, ImageNet mean /
    # std, for IN-1K and IN-22K alike)
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        # frozen BN everywhere and a frozen stem + res2, as in pre-training
        # (maskrcnn-benchmark FrozenBatchNorm2d, FREEZE_CONV_BODY_AT=2)
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        # weights come from `load_from` (DAP) or the CLS leaf's init_cfg;
        # nothing is downloaded
        init_cfg=None),
    roi_head=dict(
        # RoIAlign 7x7 with sampling ratio 2, as the original configs
        bbox_roi_extractor=dict(
            roi_layer=dict(type='RoIAlign', output_size=7,
                           sampling_ratio=2))))
