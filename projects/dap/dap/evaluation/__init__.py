"""Evaluation of step 2: the CAM-box metric and the box IoU it and the
pseudo-box tools measure with."""
from .box_iou import box_iou
from .cam_box_metric import CAMBoxMetric

__all__ = ['box_iou', 'CAMBoxMetric']
