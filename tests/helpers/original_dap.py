"""The original DAP box path, written out literally (for tests and
benchmarks; see tests/test_box_fitting_original.py).

``original_compute_cam_box`` is ``compute_cam_box`` of the authors'
``code/compute_box_imagenet1k.py`` (float32 torch, ``scipy.ndimage``), and
``original_boxlist_nms`` is maskrcnn-benchmark's ``boxlist_nms`` with its CPU
kernel (``nms_cpu.cpp``): +1 in widths and heights, suppressed at IoU >=
the threshold, boxes visited in descending score order, the kept ones
returned in raw order.  Training used ``boxlist_nms(p, 0.8)``.

Two sorts decide ties there.  ``np.argsort(areas)[::-1]`` ranks components of
equal rectangle area; with the numpy of the time (quicksort, which is an
insertion sort up to 16 elements) that puts the higher label first, and
``kind='stable'`` says so here, because numpy >= 1.25 on AVX-512 CPUs sorts
ties in no defined order.  torch's ``sort`` of the scores likewise leaves
equal scores unordered; ``stable=True`` keeps the raw order, which only
decides *which* of two identical boxes survives.
"""
import numpy as np
import torch
from scipy import ndimage


def moments(m, gx, gy):
    M = m.sum()
    cx, cy = (m * gx).sum() / M, (m * gy).sum() / M
    Ix, Iy = (m * (gx - cx)**2).sum() / M, (m * (gy - cy)**2).sum() / M
    return cx.item(), cy.item(), Ix.item(), Iy.item()


def xyxy_by_moments(cam):
    gy, gx = torch.meshgrid(
        torch.arange(cam.shape[0], dtype=torch.float32),
        torch.arange(cam.shape[1], dtype=torch.float32),
        indexing='ij')
    cx, cy, Ix, Iy = moments(cam, gx, gy)
    w, h = max(1.0, np.sqrt(Ix * 12)), max(1.0, np.sqrt(Iy * 12))
    x1, y1 = cx + 0.5 - w / 2, cy + 0.5 - h / 2
    return x1, y1, x1 + w, y1 + h


def original_compute_cam_box(cam0,
                             img_size,
                             scale=576,
                             k=4,
                             ths=(0.2, 0.3, 0.4, 0.5),
                             bias=0.22):
    """Boxes (float32, pixels) and scores; ``img_size`` = (W, H)."""
    cam0 = torch.as_tensor(cam0, dtype=torch.float32)
    rx = ry = 32
    r = float(min(img_size)) / scale
    ry, rx = ry * r, rx * r
    boxes = []
    for th in ths:
        label_image = cam0 > th
        cam = (cam0 + bias) * label_image
        label_image, max_label = ndimage.label(label_image.numpy())
        object_slices = ndimage.find_objects(label_image, max_label)
        if not len(object_slices):
            continue
        areas = [(obj[0].stop - obj[0].start) * (obj[1].stop - obj[1].start)
                 for obj in object_slices]
        ind = np.argsort(areas, kind='stable')[::-1]  # see module docstring
        a0 = areas[ind[0]] * 0.5
        kk = 0
        for o in ind:
            obj, area = object_slices[o], areas[o]
            if area < a0 or kk == k:
                break
            kk += 1
            mask = torch.zeros_like(cam)
            mask[obj] = 1.0
            x1, y1, x2, y2 = xyxy_by_moments(cam * mask)
            if (x2 - x1) * (y2 - y1) > 0.01 or not boxes:
                y1, x1, y2, x2 = y1 * ry, x1 * rx, y2 * ry, x2 * rx
                boxes.append(np.r_[np.clip(x1, 0, img_size[0] - 1),
                                   np.clip(y1, 0, img_size[1] - 1),
                                   np.clip(x2, 0, img_size[0] - 1),
                                   np.clip(y2, 0, img_size[1] - 1)])
    bbox = torch.as_tensor(np.stack(boxes), dtype=torch.float32)  # BoxList
    scores = (bbox[:, 2:] - bbox[:, :2]).prod(1)
    return bbox, scores / scores[0]


def original_boxlist_nms(bbox, scores, threshold):
    """maskrcnn-benchmark's nms_cpu_kernel, then ``boxlist[keep]``."""
    x1, y1, x2, y2 = bbox.unbind(1)
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.sort(dim=0, descending=True, stable=True)[1]
    suppressed = torch.zeros(len(bbox), dtype=torch.bool)
    for _i in range(len(bbox)):
        i = order[_i]
        if suppressed[i]:
            continue
        for _j in range(_i + 1, len(bbox)):
            j = order[_j]
            if suppressed[j]:
                continue
            w = torch.clamp(
                torch.min(x2[i], x2[j]) - torch.max(x1[i], x1[j]) + 1, min=0)
            h = torch.clamp(
                torch.min(y2[i], y2[j]) - torch.max(y1[i], y1[j]) + 1, min=0)
            inter = w * h
            if inter / (areas[i] + areas[j] - inter) >= threshold:
                suppressed[j] = True
    keep = torch.nonzero(~suppressed).squeeze(1)
    return bbox[keep], scores[keep]
