"""How DAP's runs are driven: step 2's CAM-box hook and the runner that
transfers a pre-trained detector's weights (steps 3 -> 4)."""
from .hooks import CAMBoxHook, CAMBoxRunError, image_key
from .transfer import (DetectorTransferRunner, TransferReport,
                       extract_state_dict, transfer_state_dict)

__all__ = [
    'CAMBoxHook', 'CAMBoxRunError', 'image_key', 'DetectorTransferRunner',
    'TransferReport', 'extract_state_dict', 'transfer_state_dict'
]
