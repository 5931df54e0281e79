"""The box-fitting reference shared by the tests and the benchmark.

``reference_fit`` is the original algorithm (DAP step 2, points 8-10)
written out literally, one map at a time, with ``scipy.ndimage.label`` and
Python loops; ``fit_one`` calls the project's batched fitter on one map.
"""
import math

import numpy as np
from scipy import ndimage

from projects.dap.dap.models.box_fitting import (FALLBACK_THRESHOLD,
                                                 fit_cam_boxes)

THRESHOLDS = (0.2, 0.3, 0.4, 0.5)
CROSS = ndimage.generate_binary_structure(2, 1)  # 4-connectivity


def fit_one(cam, image_hw=None, **kwargs):
    """The project's fitter on one map: its :class:`CamBoxes`."""
    hw = None if image_hw is None else [image_hw]
    return fit_cam_boxes([cam], image_hw=hw, **kwargs)[0]


def _rectangles_by_mask(labels, num):
    """(y0, y1, x0, x1) of each component, one ``labels == i`` mask each:
    the literal way."""
    for i in range(1, num + 1):  # label order = raster order
        ys, xs = np.nonzero(labels == i)
        yield ys.min(), ys.max() + 1, xs.min(), xs.max() + 1


def _rectangles_by_find_objects(labels, num):
    """The same rectangles from ``ndimage.find_objects`` (faster)."""
    for sy, sx in ndimage.find_objects(labels):
        yield sy.start, sy.stop, sx.start, sx.stop


def reference_fit(cam,
                  thresholds=THRESHOLDS,
                  bias=0.22,
                  k=4,
                  ratio=0.5,
                  nms_iou=0.8,
                  image_hw=None,
                  cam_scale=576,
                  stride=32,
                  find_objects=False):
    """``(boxes, scores, thresholds)`` of one map, the original's way.

    ``find_objects`` takes the component rectangles from
    ``ndimage.find_objects`` instead of one mask per component (the same
    rectangles; the benchmark's tuned loop).
    """
    rectangles = (
        _rectangles_by_find_objects if find_objects else _rectangles_by_mask)
    cam = np.asarray(cam, dtype=np.float64)
    height, width = cam.shape
    boxes, ths = [], []
    if cam.max() != cam.min():  # a constant map has no boxes of its own
        for t in thresholds:
            binary = cam > t
            labels, num = ndimage.label(binary, structure=CROSS)
            comps = [((y1 - y0) * (x1 - x0), y0, y1, x0, x1)
                     for y0, y1, x0, x1 in rectangles(labels, num)]
            # largest first, equal areas: the higher label first (the
            # original's np.argsort(areas)[::-1])
            comps = comps[::-1]
            comps.sort(key=lambda c: -c[0])
            kept = [c for c in comps if c[0] >= ratio * comps[0][0]][:k]
            for _, y0, y1, x0, x1 in kept:
                w = (cam[y0:y1, x0:x1] + bias) * binary[y0:y1, x0:x1]
                yy, xx = np.mgrid[y0:y1, x0:x1]
                cx = (w * xx).sum() / w.sum()
                cy = (w * yy).sum() / w.sum()
                ix = (w * (xx - cx)**2).sum() / w.sum()
                iy = (w * (yy - cy)**2).sum() / w.sum()
                bw = max(1.0, math.sqrt(12 * ix))
                bh = max(1.0, math.sqrt(12 * iy))
                x1, y1 = cx + 0.5 - bw / 2, cy + 0.5 - bh / 2
                boxes.append([x1, y1, x1 + bw, y1 + bh])
                ths.append(t)
    if not boxes:
        boxes, ths = [[0.0, 0.0, width, height]], [FALLBACK_THRESHOLD]
    boxes, ths = np.array(boxes), np.array(ths)
    if image_hw is not None:
        ih, iw = image_hw
        boxes = boxes * (stride * min(ih, iw) / cam_scale)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, iw - 1)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, ih - 1)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    ref = areas[0] if areas[0] > 1e-9 * areas.max() else areas.max()
    scores = areas / ref if ref > 0 else np.ones(len(areas))
    if nms_iou is None:
        return boxes, scores, ths
    # maskrcnn-benchmark's NMS: +1 in pixels, suppressed at IoU >= nms_iou,
    # the kept boxes in raw order
    offset = 0.0 if image_hw is None else 1.0
    order = sorted(range(len(boxes)), key=lambda i: -np.round(scores[i], 9))
    keep = []
    for i in order:
        if all(iou(boxes[i], boxes[j], offset) < nms_iou - 1e-9 for j in keep):
            keep.append(i)
    keep.sort()
    return boxes[keep], scores[keep], ths[keep]


def iou(a, b, offset=0.0):
    """IoU of two xyxy boxes, widths and heights counting ``offset``."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + offset)
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + offset)
    union = ((a[2] - a[0] + offset) * (a[3] - a[1] + offset) +
             (b[2] - b[0] + offset) * (b[3] - b[1] + offset) - iw * ih)
    if union <= 0:  # two empty boxes: duplicates or not
        return float(np.array_equal(a, b))
    return iw * ih / union
