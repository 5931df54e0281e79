"""Datasets of DAP: step 2's image list (mmpretrain) and step 3's pseudo-box
dataset and transforms (mmdet)."""
from .image_list import ImageListError, ImageListIndex
from .imagenet_list import IndexedImageNet, IndexedImageNet21k
from .imagenet_pseudo_box import ImageNetPseudoBoxDataset
from .transforms import (LoadImageRandomChoiceResize, decode_resized,
                         reduction_factor, target_size)

__all__ = [
    'ImageListError', 'ImageListIndex', 'IndexedImageNet',
    'IndexedImageNet21k', 'ImageNetPseudoBoxDataset',
    'LoadImageRandomChoiceResize',
    'decode_resized', 'reduction_factor', 'target_size'
]
