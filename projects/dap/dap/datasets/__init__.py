"""mmdet datasets and transforms of DAP step 3 (detector pre-training)."""
from .imagenet_pseudo_box import ImageNetPseudoBoxDataset
from .transforms import (LoadImageRandomChoiceResize, decode_resized,
                         reduction_factor, target_size)

__all__ = [
    'ImageNetPseudoBoxDataset', 'LoadImageRandomChoiceResize',
    'decode_resized', 'reduction_factor', 'target_size'
]
