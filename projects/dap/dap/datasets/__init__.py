"""Datasets of DAP: step 2's image list (mmpretrain), step 3's pseudo-box
dataset and transforms (mmdet), and the image decoding of both steps."""
from .image_decoding import (decode_image, decode_resized, reduction_factor,
                             target_size)
from .image_list import ImageListError, ImageListIndex
from .imagenet_list import IndexedImageNet, IndexedImageNet21k
from .imagenet_pseudo_box import ImageNetPseudoBoxDataset
from .transforms import LoadImageRandomChoiceResize

__all__ = [
    'ImageListError', 'ImageListIndex', 'IndexedImageNet',
    'IndexedImageNet21k', 'ImageNetPseudoBoxDataset',
    'LoadImageRandomChoiceResize', 'decode_image', 'decode_resized',
    'reduction_factor', 'target_size'
]
