"""The original's detector defaults (maskrcnn-benchmark's, where DAP's yaml
files leave them), shared by every pre-training and fine-tune config through
configs/_base_/models/faster-rcnn_r50_fpn_dap.py.

test_dap_configs.py and test_finetune_configs.py call
:func:`assert_original_defaults` on every config they load; here the values
are checked to act as they should in a built model.
"""
import math
import os.path as osp

import pytest
import torch
from conftest import REPO
from mmengine.config import Config

SHARED = osp.join(REPO, 'configs', '_base_', 'models',
                  'faster-rcnn_r50_fpn_dap.py')


def assert_original_defaults(model):
    """What every DAP and CLS detector shares with the original's."""
    rpn, roi = model.rpn_head, model.roi_head
    # smooth L1 box losses: beta 1/9 in the RPN, 1 in the box head
    assert rpn.loss_bbox == dict(
        type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0)
    assert roi.bbox_head.loss_bbox == dict(
        type='SmoothL1Loss', beta=1.0, loss_weight=1.0)
    # unaligned RoIAlign (maskrcnn-benchmark's has no half-pixel shift)
    assert roi.bbox_roi_extractor.roi_layer.aligned is False
    assert roi.bbox_roi_extractor.roi_layer.output_size == 7
    # anchors crossing the border ignored (STRADDLE_THRESH = 0)
    assert model.train_cfg.rpn.allowed_border == 0
    # low-quality matches without mmdet's 0.3 floor
    assert model.train_cfg.rpn.assigner.min_pos_iou == 1e-6
    assert model.train_cfg.rpn.assigner.match_low_quality is True
    # Caffe2 XavierFill for the FPN and the box head's shared FCs
    c2 = dict(
        type='Kaiming',
        a=1,
        mode='fan_in',
        nonlinearity='leaky_relu',
        distribution='uniform',
        bias=0)
    assert model.neck.init_cfg == dict(layer='Conv2d', **c2)
    assert model.roi_head.bbox_head.init_cfg[0] == dict(
        override=dict(name='shared_fcs'), **c2)
    # frozen BN, frozen stem + res2
    assert model.backbone.frozen_stages == 1 and model.backbone.norm_eval
    assert model.backbone.norm_cfg == dict(type='BN', requires_grad=False)


def test_shared_base_holds_the_defaults():
    cfg = Config.fromfile(SHARED)
    assert_original_defaults(cfg.model)
    # 2000 proposals per GPU batch, 2 images per GPU when fine-tuning
    assert cfg.model.train_cfg.rpn_proposal.max_per_img == 1000
    assert cfg.rpn_proposals_per_gpu_batch == 2000


@pytest.fixture(scope='module')
def built():
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import projects.dap.dap  # noqa: F401
    cfg = Config.fromfile(SHARED)
    cfg.model.backbone.init_cfg = None
    cfg.model.roi_head.bbox_head.num_classes = 20
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def test_c2_xavier_fill_is_what_the_layers_get(built):
    """uniform(+-sqrt(3 / fan_in)) with zero bias (torch's Xavier uniform
    would give +-sqrt(6 / (fan_in + fan_out)))."""
    layers = [c.conv for c in built.neck.lateral_convs] + \
        [c.conv for c in built.neck.fpn_convs] + \
        list(built.roi_head.bbox_head.shared_fcs)
    for layer in layers:
        w = layer.weight.detach()
        fan_in = w[0].numel()
        bound = math.sqrt(3 / fan_in)
        assert w.abs().max() <= bound
        assert w.abs().max() > 0.98 * bound
        # a uniform(-b, b) has standard deviation b / sqrt(3)
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
        assert not layer.bias.detach().any()
    head = built.roi_head.bbox_head
    assert head.fc_cls.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert head.fc_reg.weight.std().item() == pytest.approx(0.001, rel=0.05)
    assert built.rpn_head.rpn_conv.weight.std().item() == pytest.approx(
        0.01, rel=0.05)


def test_losses_and_roi_align_act_as_configured(built):
    from mmcv.ops import RoIAlign
    from mmdet.models.losses import SmoothL1Loss
    assert isinstance(built.rpn_head.loss_bbox, SmoothL1Loss)
    assert built.rpn_head.loss_bbox.beta == pytest.approx(1 / 9)
    assert isinstance(built.roi_head.bbox_head.loss_bbox, SmoothL1Loss)
    assert built.roi_head.bbox_head.loss_bbox.beta == 1.0
    layers = built.roi_head.bbox_roi_extractor.roi_layers
    assert all(
        isinstance(r, RoIAlign) and r.aligned is False
        and r.sampling_ratio == 2 for r in layers)
    # unaligned: a 1x1 RoI over one cell of a ramp samples the ramp at
    # the cell's corner-based coordinates, not shifted by half a pixel
    feat = torch.arange(8.).repeat(8, 1)[None, None]  # value = x
    roi = torch.tensor([[0., 2., 2., 4., 4.]])
    out = layers[0].__class__(1, 1.0, 2, aligned=False)(feat, roi)
    aligned = layers[0].__class__(1, 1.0, 2, aligned=True)(feat, roi)
    assert out.item() == pytest.approx(3.0)
    assert aligned.item() == pytest.approx(2.5)


def test_border_anchors_are_ignored(built):
    """allowed_border=0: an anchor reaching outside the image gets neither
    a positive nor a negative label.  As maskrcnn-benchmark's
    visibility test: x1 >= -0, y1 >= -0, x2 < W + 0, y2 < H + 0."""
    from mmdet.models.task_modules.prior_generators import anchor_inside_flags
    anchors = torch.tensor([[0., 0., 32., 32.], [-1., 0., 31., 32.],
                            [10., 10., 63.9, 63.9], [10., 10., 64., 64.],
                            [40., 40., 70., 70.]])
    valid = torch.ones(5, dtype=torch.bool)
    inside = anchor_inside_flags(anchors, valid, (64, 64),
                                 built.train_cfg['rpn']['allowed_border'])
    assert inside.tolist() == [True, False, True, False, False]
