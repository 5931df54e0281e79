"""DAP: Detection-Aware Pre-training with Weak Supervision, on OpenMMLab.

Importing this package registers every DAP module with the mmdet / mmpretrain
registries (configs use ``custom_imports=dict(imports=['projects.dap.dap'])``)
and makes mmengine load local checkpoints with ``weights_only=True`` and
exactly the globals mmengine checkpoints need (``utils/checkpoint.py``).
"""
from . import utils  # noqa: F401  (first: its quiet_imports before mmpretrain)
from .datasets import (BoxFileError, ImageListError, ImageNetPseudoBoxDataset,
                       IndexedImageNet, IndexedImageNet21k, LoadImageForCAM,
                       LoadImageRandomChoiceResize, PseudoBoxFile,
                       ResumableSampler, ShardWriter, decode_image,
                       decode_resized, image_list_fingerprint, merge_shards,
                       write_box_file)
from .engine import (CAMBoxHook, CAMBoxRunError, DetectorTransferRunner,
                     TransferReport, transfer_state_dict)
from .evaluation import CAMBoxMetric
from .models import CAMBoxConfigError, CAMBoxGenerator
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
