"""The end-to-end demo (``tools/run_dap_demo.py``): an embedded benchmark,
its presets, the stage engine and what each stage does, a progress hook
and the report."""
from .benchmark import (DOWNSTREAM_CLASSES, PRETRAIN_CLASSES, SHAPE_FAMILY,
                        make_demo_data, make_mini_imagenet, make_mini_voc,
                        read_voc_boxes, render_scene)
from .presets import DemoConfigs, load_preset, set_train_length
from .progress import ProgressBar, ProgressFileHook, read_progress

__all__ = [
    'DOWNSTREAM_CLASSES', 'PRETRAIN_CLASSES', 'SHAPE_FAMILY', 'make_demo_data',
    'make_mini_imagenet', 'make_mini_voc', 'read_voc_boxes', 'render_scene',
    'DemoConfigs', 'load_preset', 'set_train_length', 'ProgressBar',
    'ProgressFileHook', 'read_progress'
]
