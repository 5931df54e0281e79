"""DAP: Detection-Aware Pre-training with Weak Supervision, on OpenMMLab.

Importing this package registers every DAP module with the mmdet / mmpretrain
registries (configs use ``custom_imports=dict(imports=['projects.dap.dap'])``)
and allow-lists the globals mmengine checkpoints need for ``torch.load`` with
``weights_only=True``.
"""
from . import _quiet_imports  # noqa: F401  (first: before mmpretrain)
from .box_file import (BoxFileError, PseudoBoxFile, ShardWriter,
                       image_list_fingerprint, merge_shards, write_box_file,
                       write_box_file_arrays)
from .cam_box_metric import CAMBoxMetric
from .cam_transforms import LoadImageForCAM, decode_image
from .datasets import (ImageNetPseudoBoxDataset, LoadImageRandomChoiceResize,
                       decode_resized)
from .hooks import CAMBoxHook, CAMBoxRunError
from .models import CAMBoxConfigError, CAMBoxGenerator
from .samplers import ResumableSampler
from .transfer import (DetectorTransferRunner, TransferReport,
                       transfer_state_dict)
from .utils import (load_checkpoint_safely, register_safe_globals,
                    safe_checkpoint_globals)

register_safe_globals()

__all__ = [
    'BoxFileError', 'PseudoBoxFile', 'ShardWriter', 'image_list_fingerprint',
    'merge_shards', 'write_box_file', 'write_box_file_arrays',
    'ImageNetPseudoBoxDataset', 'LoadImageRandomChoiceResize',
    'decode_resized', 'load_checkpoint_safely', 'register_safe_globals',
    'safe_checkpoint_globals',
    'DetectorTransferRunner', 'TransferReport', 'transfer_state_dict',
    'CAMBoxMetric', 'LoadImageForCAM', 'decode_image', 'CAMBoxHook',
    'CAMBoxRunError', 'CAMBoxConfigError', 'CAMBoxGenerator',
    'ResumableSampler'
]
