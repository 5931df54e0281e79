from .cam_box_generator import (CAMBoxConfigError, CAMBoxGenerator,
                                load_classifier_weights)

__all__ = ['CAMBoxConfigError', 'CAMBoxGenerator', 'load_classifier_weights']
