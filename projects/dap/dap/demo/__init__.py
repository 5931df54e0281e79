"""The end-to-end demo: an embedded benchmark and its report."""
from .benchmark import (DOWNSTREAM_CLASSES, PRETRAIN_CLASSES, SHAPE_FAMILY,
                        make_demo_data, make_mini_imagenet, make_mini_voc,
                        read_voc_boxes, render_scene)

__all__ = [
    'DOWNSTREAM_CLASSES', 'PRETRAIN_CLASSES', 'SHAPE_FAMILY',
    'make_demo_data', 'make_mini_imagenet', 'make_mini_voc',
    'read_voc_boxes', 'render_scene'
]
