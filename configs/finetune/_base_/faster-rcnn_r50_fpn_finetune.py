# Faster R-CNN R50-FPN set up as DAP pre-trains it, for fine-tuning the whole
# detector (DAP step 4).  Leaf configs add a dataset/schedule and say where
# the weights come from:
#   DAP: `load_from` = the pre-trained detector; DetectorTransferRunner copies
#        every tensor except the class-specific fc_cls / fc_reg and logs it;
#        training starts at iteration 0 (`--resume` resumes as usual).
#   CLS: `load_from = None`; the backbone's init_cfg loads the classifier.
_base_ = [
    '../../_base_/models/faster-rcnn_r50_fpn_dap.py',
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

# The detector, its normalisation (IN-1K: the MSRA Caffe ResNet's; IN-22K
# leaves switch to the 22K classifier's) and the original's defaults come
# from ../../_base_/models/faster-rcnn_r50_fpn_dap.py, as in pre-training.
# The weights come from `load_from` (DAP) or the CLS leaf's init_cfg.
model = dict(backbone=dict(init_cfg=None))
