"""IoU of axis-aligned boxes in continuous coordinates.

The one IoU of the evaluation and the demo (box fitting's NMS has its own,
with maskrcnn-benchmark's +1 pixel convention).
"""
import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xyxy boxes (anything reshapeable to
    (n, 4)); 0 where the union is empty."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.clip(
        np.minimum(a[:, None, 2], b[None, :, 2]) -
        np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(
        np.minimum(a[:, None, 3], b[None, :, 3]) -
        np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
