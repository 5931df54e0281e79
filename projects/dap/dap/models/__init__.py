"""Step 2's model: class activation maps of an mmpretrain classifier
(``cam``) and the multi-threshold boxes fitted to them (``box_fitting``),
put together as the registered :class:`CAMBoxGenerator`."""
from .box_fitting import CamBoxes, fit_cam_boxes
from .cam import CAMExtractor
from .cam_box_generator import (CAMBoxConfigError, CAMBoxGenerator,
                                load_classifier_weights)

__all__ = [
    'CamBoxes', 'fit_cam_boxes', 'CAMExtractor', 'CAMBoxConfigError',
    'CAMBoxGenerator', 'load_classifier_weights'
]
