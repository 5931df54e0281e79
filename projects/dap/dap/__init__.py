"""DAP: Detection-Aware Pre-training with Weak Supervision, on OpenMMLab.

Importing this package registers every DAP module with the mmdet / mmpretrain
registries (configs use ``custom_imports=dict(imports=['projects.dap.dap'])``)
and makes mmengine load local checkpoints with ``weights_only=True`` and
exactly the globals mmengine checkpoints need (``utils/checkpoint.py``).
"""
from . import _quiet_imports  # noqa: F401  (first: before mmpretrain)
from .box_file import (BoxFileError, PseudoBoxFile, ShardWriter,
                       image_list_fingerprint, merge_shards, write_box_file)
from .cam_box_metric import CAMBoxMetric
from .cam_transforms import LoadImageForCAM
from .datasets import (ImageListError, ImageNetPseudoBoxDataset,
                       IndexedImageNet, IndexedImageNet21k,
                       LoadImageRandomChoiceResize, decode_image,
                       decode_resized)
from .hooks import CAMBoxHook, CAMBoxRunError
from .models import CAMBoxConfigError, CAMBoxGenerator
from .samplers import ResumableSampler
from .transfer import (DetectorTransferRunner, TransferReport,
                       transfer_state_dict)
from .utils import (exact_safe_globals, load_checkpoint_safely,
                    register_checkpoint_loader, safe_checkpoint_globals)

register_checkpoint_loader()

__all__ = [
    'BoxFileError', 'PseudoBoxFile', 'ShardWriter', 'image_list_fingerprint',
    'merge_shards', 'write_box_file', 'ImageListError',
    'ImageNetPseudoBoxDataset', 'IndexedImageNet', 'IndexedImageNet21k',
    'LoadImageRandomChoiceResize', 'decode_resized', 'exact_safe_globals',
    'load_checkpoint_safely', 'register_checkpoint_loader',
    'safe_checkpoint_globals', 'DetectorTransferRunner', 'TransferReport',
    'transfer_state_dict', 'CAMBoxMetric', 'LoadImageForCAM', 'decode_image',
    'CAMBoxHook', 'CAMBoxRunError', 'CAMBoxConfigError', 'CAMBoxGenerator',
    'ResumableSampler'
]
