"""Datasets of DAP and what they read: step 2's image list and loading
(mmpretrain), step 3's pseudo-box dataset and transforms (mmdet), the image
decoding of both steps, the resumable sampler, and the pseudo-box file
(``box_file``) that step 2 writes and step 3 reads."""
from .box_file import (BoxFileError, PseudoBoxFile, ShardWriter,
                       image_list_fingerprint, merge_shards, write_box_file)
from .cam_transforms import LoadImageForCAM
from .image_decoding import (decode_image, decode_resized, reduction_factor,
                             target_size)
from .image_list import ImageListError, ImageListIndex
from .imagenet_list import IndexedImageNet, IndexedImageNet21k
from .imagenet_pseudo_box import ImageNetPseudoBoxDataset
from .samplers import ResumableSampler
from .transforms import LoadImageRandomChoiceResize

__all__ = [
    'BoxFileError', 'PseudoBoxFile', 'ShardWriter', 'image_list_fingerprint',
    'merge_shards', 'write_box_file', 'LoadImageForCAM', 'decode_image',
    'decode_resized', 'reduction_factor', 'target_size', 'ImageListError',
    'ImageListIndex', 'IndexedImageNet', 'IndexedImageNet21k',
    'ImageNetPseudoBoxDataset', 'ResumableSampler',
    'LoadImageRandomChoiceResize'
]
