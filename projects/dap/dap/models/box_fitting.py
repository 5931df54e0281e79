"""Fit pseudo boxes to fused class activation maps (DAP step 2, points 8-10).

The original algorithm, per map and per threshold ``t`` (in the given order):

1. ``binary = cam > t``; 4-connected components;
2. rank components by the area of their bounding rectangle, largest
   first; equal areas rank the higher ``scipy.ndimage.label`` label first
   (the original's ``np.argsort(areas)[::-1]``); keep those with rectangle
   area >= ``min_area_ratio`` x the largest, at most ``max_per_threshold``;
3. per kept component, weights ``w = cam + bias`` on the cells of ``binary``
   inside the component's bounding rectangle (cells of other blobs inside
   that rectangle count too); centre = weighted mean of the cell indices,
   ``Ix``/``Iy`` = weighted variances; box size ``max(1, sqrt(12 I))``,
   ``x1 = cx + 0.5 - w / 2``, ``x2 = x1 + w`` (cell ``i`` spans
   ``[i, i + 1]``), same for y.

With ``image_hw`` (what generation uses) boxes are then scaled to pixels
and clipped to ``[0, W - 1]`` x ``[0, H - 1]``, scored (area / area of the
first raw box) and put through maskrcnn-benchmark's ``boxlist_nms`` as the
original does: widths and heights count ``+1``, a box is suppressed when
its IoU with a kept box is ``>= nms_iou``, boxes are visited in descending
score order and the kept ones are returned in their raw order.  Without
``image_hw`` (boxes in CAM cells) the NMS is the same but without the
``+1``, a pixel convention that means nothing on the cell grid.

Where the original leaves the outcome to rounding noise, exact ties in
real arithmetic are made explicit: scores equal to 9 decimals keep the raw
order (one component found at several thresholds gives the same box several
times) and an IoU within 1e-9 of ``nms_iou`` counts as equal to it.

Degenerate maps, which the original never defined (it divided by zero):

* a threshold that no cell exceeds is skipped;
* if no threshold yields a component, or the map is constant (no spatial
  information at all), the result is one box covering the whole map,
  ``[0, 0, W, H]``, with score 1 and threshold :data:`FALLBACK_THRESHOLD`;
* should clipping leave the first box empty (less than 1e-9 of the largest
  box's area; the original divided by zero), the largest box is the score
  reference, and if all are empty every score is 1.

Implementation: everything in float64 numpy, no per-image Python loop.  The
maps of a batch are stacked (NaN-separated) in cache-sized chunks; the
horizontal runs of ``cam > t`` for all thresholds are found at once,
labelled into components by a vectorised union-find on the runs, and the
weighted moments of each kept rectangle are summed over the runs it holds
from row-wise prefix sums.  A map's result does not depend on the other
maps of the batch, bit for bit.
"""
from typing import List, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]

# Cells per chunk: keeps a chunk's working set in the CPU cache.
_CHUNK_CELLS = 1 << 15
# Scores equal to this many decimals tie (the raw order decides), and IoUs
# within _IOU_TOL of the NMS threshold count as equal to it: exact ties in
# real arithmetic (one component found at several thresholds, mirror-image
# blobs) must not be decided by rounding noise.
_TIE_DIGITS = 9
_IOU_TOL = 1e-9
# A first box with less than this fraction of the largest box's area counts
# as clipped to nothing (rounding decides between 0 and 1e-13 there).
_EMPTY = 1e-9

#: Threshold reported for the whole-map fallback box (no threshold made it).
FALLBACK_THRESHOLD = -1.0


class CamBoxes(NamedTuple):
    """Boxes of one map: ``boxes`` (K, 4) xyxy, ``scores`` (K,) and the
    ``thresholds`` (K,) that produced each box (all float64)."""
    boxes: np.ndarray
    scores: np.ndarray
    thresholds: np.ndarray


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _check_params(thresholds: Sequence[float], bias: float,
                  max_per_threshold: int, min_area_ratio: float,
                  nms_iou: Optional[float]) -> np.ndarray:
    thr = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if thr.size == 0 or not np.isfinite(thr).all():
        raise ValueError(f'thresholds must be a non-empty sequence of finite '
                         f'numbers, got {thresholds!r}')
    if not np.isfinite(bias) or thr.min() + bias < 0:
        # cam > t >= -bias keeps every weight cam + bias strictly positive.
        raise ValueError(f'bias + min(thresholds) must be >= 0 so that all '
                         f'weights are positive, got bias={bias!r}')
    if int(max_per_threshold) != max_per_threshold or max_per_threshold < 1:
        raise ValueError(f'max_per_threshold must be a positive integer, got '
                         f'{max_per_threshold!r}')
    if not 0 <= min_area_ratio <= 1:
        raise ValueError(
            f'min_area_ratio must be in [0, 1], got {min_area_ratio!r}')
    if nms_iou is not None and not 0 < nms_iou <= 1:
        raise ValueError(f'nms_iou must be in (0, 1] or None, got {nms_iou!r}')
    return thr


def _as_maps(cams: Union[ArrayLike, Sequence[ArrayLike]],
             valid_hw: Optional[ArrayLike]) -> List[np.ndarray]:
    """The valid 2-D float64 region of every map."""
    if isinstance(cams, (torch.Tensor, np.ndarray)):
        arr = _to_numpy(cams)
        if arr.ndim != 3 or arr.size == 0:
            raise ValueError(f'a padded batch of maps must be a non-empty '
                             f'(N, H, W) array, got shape {arr.shape}')
        n, hp, wp = arr.shape
        if valid_hw is None:
            return list(arr)
        hw = _to_numpy(valid_hw).reshape(-1, 2)
        if (hw.shape[0] != n or (hw != np.round(hw)).any() or (hw < 1).any()
                or (hw > [hp, wp]).any()):
            raise ValueError(f'valid_hw must hold {n} integer (h, w) pairs '
                             f'within 1..{(hp, wp)}, got {valid_hw!r}')
        return [a[:h, :w] for a, (h, w) in zip(arr, hw.astype(np.int64))]
    if valid_hw is not None:
        raise ValueError('valid_hw is only for a padded (N, H, W) batch')
    maps = [_to_numpy(c) for c in cams]
    if not maps:
        raise ValueError('no maps given')
    for i, m in enumerate(maps):
        if m.ndim != 2 or m.size == 0:
            raise ValueError(f'map {i} must be a non-empty 2-D array, got '
                             f'shape {m.shape}')
    return maps


def _label_runs(run_key: np.ndarray, run_x0: np.ndarray, run_x1: np.ndarray,
                key_first: np.ndarray, key_count: np.ndarray) -> np.ndarray:
    """4-connected components of horizontal runs; returns each run's root.

    Runs come in raster order; ``run_key`` numbers (threshold, row) so that
    the next row has key + 1, and ``key_first``/``key_count`` locate the
    runs of each key.  Two runs of one threshold in consecutive rows are
    connected when they share a column.  The root of a component is its
    first run, i.e. the one holding the component's first cell in raster
    order.  Vectorised union-find: hook every root onto the smallest
    neighbouring root, then pointer-jump; the number of trees per component
    at least halves every round.
    """
    below = run_key + 1
    count = key_count[below]
    src = np.repeat(np.arange(run_key.size), count)
    offset = np.zeros(run_key.size, dtype=np.int64)
    np.cumsum(count[:-1], out=offset[1:])
    dst = np.repeat(key_first[below] - offset, count) + np.arange(src.size)
    touch = np.flatnonzero((run_x0[dst] < run_x1[src])
                           & (run_x0[src] < run_x1[dst]))
    src, dst = src[touch], dst[touch]
    # First hook: every run onto its leftmost upper neighbour (src < dst),
    # which already joins most components into chains.
    parent = np.arange(run_key.size)
    np.minimum.at(parent, dst, src)
    while True:
        while True:  # pointer jumping until every run points at a root
            jumped = parent[parent]
            parent = jumped[jumped]
            if np.array_equal(jumped, parent):
                break
        pu, pv = parent[src], parent[dst]
        diff = np.flatnonzero(pu != pv)
        if not diff.size:
            return parent
        # Roots only ever merge, so edges inside one tree are done for good.
        src, dst, pu, pv = src[diff], dst[diff], pu[diff], pv[diff]
        np.minimum.at(parent, np.maximum(pu, pv), np.minimum(pu, pv))


class _BadMap(Exception):
    """A map (index in its chunk) holds NaN or inf."""


def _chunk_raw_boxes(maps: List[np.ndarray], thr: np.ndarray, bias: float,
                     max_per_threshold: int, min_area_ratio: float):
    """Raw boxes of a few maps (a cache-sized chunk of the batch).

    Returns ``img`` (index into ``maps``), ``tidx`` (threshold index),
    ``boxes`` (R, 4) sorted by image, threshold, rank, and ``constant``
    (per map: max == min).
    """
    num, num_t = len(maps), thr.size
    hs = np.fromiter((m.shape[0] for m in maps), np.int64, num)
    ws = np.fromiter((m.shape[1] for m in maps), np.int64, num)
    width = int(ws.max())
    # All maps stacked into rows.  Padding holds -bias: never above a
    # threshold (t >= -bias) and of weight cam + bias = 0.  A NaN row below
    # every map keeps maps apart (NaN is never above a threshold either);
    # the padding column on the right keeps thresholds apart.
    starts = np.zeros(num, dtype=np.int64)
    np.cumsum(hs[:-1] + 1, out=starts[1:])
    n_rows = int(hs.sum()) + num
    rows = np.full((n_rows, width + 1), -bias)
    nan_row = np.full((1, width), np.nan)
    hi, lo = np.empty(num), np.empty(num)
    # Maps come sorted by width: copy each run of equal widths in one go.
    group = (np.flatnonzero(np.diff(ws)) + 1).tolist()
    for g0, g1 in zip([0] + group, group + [num]):
        w, sep = ws[g0], nan_row[:, :ws[g0]]
        block = np.concatenate([a for m in maps[g0:g1] for a in (m, sep)])
        rows[starts[g0]:starts[g0] + len(block), :w] = block
        seg = (starts[g0:g1] - starts[g0]) * w
        hi[g0:g1] = np.fmax.reduceat(block.reshape(-1), seg)  # NaN skipped
        lo[g0:g1] = np.fmin.reduceat(block.reshape(-1), seg)
    if n_rows * (width + 1) - np.count_nonzero(np.isfinite(rows)) != int(
            ws.sum()):  # anything but the NaN rows is a bad value
        raise _BadMap(
            next(i for i, m in enumerate(maps) if not np.isfinite(m).all()))
    constant = hi == lo

    # Row-wise prefix sums of w = cam + bias, w * x, w * x^2 (x = column),
    # laid out x-major so that the scan is one vector add per column.
    # Only cells inside runs (cam > t >= -bias, so w > 0) are ever summed.
    xs = np.arange(width, dtype=np.float64)[:, None]
    pref = np.empty((width + 1, 3, n_rows))
    pref[0] = 0.0
    weight = pref[1:, 0]
    np.add(rows[:, :width].T, bias, out=weight)
    np.multiply(weight, xs, out=pref[1:, 1])
    np.multiply(pref[1:, 1], xs, out=pref[1:, 2])
    for i in range(1, width + 1):
        np.add(pref[i - 1], pref[i], out=pref[i])
    pref = pref.reshape(-1)  # index: (x * 3 + channel) * n_rows + row

    # Horizontal runs of cam > t, all thresholds at once, in raster order of
    # the (threshold, row, x) stack.
    with np.errstate(invalid='ignore'):
        binary = (rows[None] > thr[:, None, None]).reshape(-1)
    edges = np.flatnonzero(binary[1:] != binary[:-1]) + 1
    if binary[0]:
        edges = np.concatenate([[0], edges])
    run_start, run_end = edges[0::2], edges[1::2]
    run_t, rem = np.divmod(run_start, n_rows * (width + 1))
    run_row, run_x0 = np.divmod(rem, width + 1)
    run_x1 = run_x0 + (run_end - run_start)
    # Key of a run: its (threshold, row); the next row's key is key + 1
    # (the last row of every threshold is a NaN row without runs).
    run_key = run_t * n_rows + run_row
    key_count = np.bincount(run_key, minlength=num_t * n_rows + 1)
    key_first = np.cumsum(key_count) - key_count

    # Components: bounding rectangles, ranked per (map, threshold) by area,
    # ties by first cell (component ids follow their root = first run).
    root = _label_runs(run_key, run_x0, run_x1, key_first, key_count)
    is_root = root == np.arange(root.size)
    comp = (np.cumsum(is_root) - 1)[root]
    top, ct, left = run_row[is_root], run_t[is_root], run_x0[is_root]
    bottom, right = top.copy(), run_x1[is_root]
    np.maximum.at(bottom, comp, run_row)
    np.minimum.at(left, comp, run_x0)
    np.maximum.at(right, comp, run_x1)
    img = np.searchsorted(starts, top, side='right') - 1
    rh, rw = bottom - top + 1, right - left
    area = rh * rw
    span = int(area.max()) + 1 if area.size else 1
    # Descending area; equal areas: the higher component (label) first, as
    # the original's ``np.argsort(areas)[::-1]`` ranks them.  Components
    # come in label order, so a stable sort of the reversed keys does it.
    key = ((img * num_t + ct) * span + (span - 1 - area))[::-1]
    order = (key.size - 1) - np.argsort(key, kind='stable')
    img, ct, top, left, rh, rw, area = (
        a[order] for a in (img, ct, top, left, rh, rw, area))
    group = img * num_t + ct
    pos = np.arange(group.size)
    head = np.ones(group.size, dtype=bool)
    head[1:] = group[1:] != group[:-1]
    head = np.maximum.accumulate(np.where(head, pos, 0))
    keep = ((pos - head < max_per_threshold)
            & (area >= min_area_ratio * area[head]))
    img, ct, top, left, rh, rw = (
        a[keep] for a in (img, ct, top, left, rh, rw))
    if img.size == 0:
        return img, ct, np.zeros((0, 4)), constant

    # Weighted moments of each kept rectangle: for each of its rows, the
    # runs of its threshold clipped to its columns, summed from the prefix
    # sums.  Pairs are ordered (rectangle, row, run); the result of a map
    # does not depend on the other maps of the batch, to the last bit.
    seg = np.zeros(img.size, dtype=np.int64)
    np.cumsum(rh[:-1], out=seg[1:])
    rect = np.repeat(np.arange(img.size), rh)
    row = np.repeat(top - seg, rh) + np.arange(rect.size)
    row_key = ct[rect] * n_rows + row
    first, count = key_first[row_key], key_count[row_key]
    offset = np.zeros(row.size, dtype=np.int64)
    np.cumsum(count[:-1], out=offset[1:])
    pair_row = np.repeat(np.arange(row.size), count)
    run = np.repeat(first - offset, count) + np.arange(pair_row.size)
    pair_rect = rect[pair_row]
    x0 = left[pair_rect]
    a = np.maximum(run_x0[run], x0)
    b = np.minimum(run_x1[run], x0 + rw[pair_rect])
    # Drop runs outside the rectangle: the same cells then always give the
    # same sums, bit for bit, whatever the runs around them look like.
    inside = np.flatnonzero(b > a)
    a, b, pair_rect = a[inside], b[inside], pair_rect[inside]
    prow = row[pair_row[inside]]
    vals = np.empty((5, prow.size))
    a = a * (3 * n_rows) + prow
    b = b * (3 * n_rows) + prow
    for c in range(3):
        np.subtract(pref[b], pref[a], out=vals[c])
        a += n_rows
        b += n_rows
    y = (prow - starts[img[pair_rect]]).astype(np.float64)
    np.multiply(vals[0], y, out=vals[3])
    np.multiply(vals[3], y, out=vals[4])
    first = np.zeros(img.size, dtype=np.int64)
    np.cumsum(np.bincount(pair_rect, minlength=img.size)[:-1], out=first[1:])
    s0, sx, sxx, sy, syy = np.add.reduceat(vals, first, axis=1)
    cx, cy = sx / s0, sy / s0
    bw = np.maximum(1.0, np.sqrt(12.0 * np.maximum(sxx / s0 - cx * cx, 0)))
    bh = np.maximum(1.0, np.sqrt(12.0 * np.maximum(syy / s0 - cy * cy, 0)))
    x1 = cx + 0.5 - bw / 2
    y1 = cy + 0.5 - bh / 2
    return img, ct, np.stack([x1, y1, x1 + bw, y1 + bh], axis=1), constant


def _raw_boxes(maps: List[np.ndarray], thr: np.ndarray, bias: float,
               max_per_threshold: int, min_area_ratio: float):
    """Raw boxes of all maps, processed in cache-sized chunks of similar
    width (the chunking cannot change any result)."""
    num = len(maps)
    hs = np.fromiter((m.shape[0] for m in maps), np.int64, num)
    ws = np.fromiter((m.shape[1] for m in maps), np.int64, num)
    order = np.argsort(ws * (hs.max() + 1) + hs, kind='stable')
    cells = np.cumsum((hs[order] + 1) * ws[order])
    ends = np.unique(
        np.searchsorted(
            cells,
            np.arange(1,
                      int(cells[-1]) // _CHUNK_CELLS + 1) * _CHUNK_CELLS) + 1)
    ends = np.append(ends[ends < num], num)
    parts, constant = [], np.zeros(num, dtype=bool)
    begin = 0
    for end in ends:
        idx = order[begin:end]
        try:
            img, tidx, boxes, const = _chunk_raw_boxes([maps[i]
                                                        for i in idx], thr,
                                                       bias, max_per_threshold,
                                                       min_area_ratio)
        except _BadMap as bad:
            raise ValueError(
                f'map {idx[bad.args[0]]} holds NaN or inf values') from None
        parts.append((idx[img], tidx, boxes))
        constant[idx] = const
        begin = end
    img, tidx, boxes = (np.concatenate(p) for p in zip(*parts))
    order = np.argsort(img, kind='stable')
    return img[order], tidx[order], boxes[order], constant


def _scale_to_image(boxes: np.ndarray, ih: np.ndarray, iw: np.ndarray,
                    cam_scale: int, stride: int) -> np.ndarray:
    """CAM cells -> original image pixels (reference step 9), per box.

    A cell of the ``cam_scale`` grid spans ``stride`` pixels of the image
    resized to short side ``cam_scale``, i.e. ``stride * min(W, H) /
    cam_scale`` original pixels.  x is clipped to ``[0, W - 1]`` and y to
    ``[0, H - 1]`` like the original.  ``ih``/``iw``: each box's image.
    """
    boxes = boxes * (stride * np.minimum(ih, iw) / cam_scale)[:, None]
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, (iw - 1)[:, None])
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, (ih - 1)[:, None])
    return boxes


def fit_cam_boxes(
    cams: Union[ArrayLike, Sequence[ArrayLike]],
    valid_hw: Optional[ArrayLike] = None,
    thresholds: Sequence[float] = (0.2, 0.3, 0.4, 0.5),
    bias: float = 0.22,
    max_per_threshold: int = 4,
    min_area_ratio: float = 0.5,
    nms_iou: Optional[float] = 0.8,
    image_hw: Optional[ArrayLike] = None,
    cam_scale: int = 576,
    stride: int = 32,
) -> List[CamBoxes]:
    """Boxes, scores and the threshold that produced each box, per map.

    Args:
        cams: a list of fused 2-D maps (torch or numpy) of any sizes, or a
            padded (N, H, W) batch whose valid top-left regions are given
            by ``valid_hw``.
        valid_hw: (N, 2) valid (height, width) per map of a padded batch;
            default: the whole map.
        thresholds: binarisation thresholds, used in the given order.
        bias: added to the map to weight the moments.
        max_per_threshold: at most this many components per threshold.
        min_area_ratio: keep components whose bounding-rectangle area is at
            least this fraction of the largest one's.
        nms_iou: NMS IoU (see the module docstring); ``None`` returns the
            raw boxes.
        image_hw: optional (N, 2) original image (height, width).  When
            given, boxes are scaled to image pixels and clipped *before*
            scoring and NMS, which is the order of the original (steps 9
            then 10); then they are exactly the original's boxes.
        cam_scale, stride: the CAM grid's image short side and its cell
            size in pixels of that image (a cell is ``stride * min(H, W) /
            cam_scale`` original pixels).

    Returns:
        One :class:`CamBoxes` per map, in CAM-cell units (cell ``i`` spans
        ``[i, i + 1]``) or pixels with ``image_hw``, in the original's order
        (threshold by threshold, then rectangle area descending), identical
        to fitting the map alone.
    """
    thr = _check_params(thresholds, bias, max_per_threshold, min_area_ratio,
                        nms_iou)
    maps = _as_maps(cams, valid_hw)
    num = len(maps)
    img, tidx, boxes, constant = _raw_boxes(maps, thr, float(bias),
                                            int(max_per_threshold),
                                            float(min_area_ratio))
    ths = thr[tidx]

    # Fallback: whole-map box for constant maps and maps without a box.
    fallback = constant | (np.bincount(img, minlength=num) == 0)
    if fallback.any():
        keep = ~fallback[img]
        fb = np.nonzero(fallback)[0]
        fb_boxes = np.zeros((fb.size, 4))
        fb_boxes[:, 2] = [maps[i].shape[1] for i in fb]
        fb_boxes[:, 3] = [maps[i].shape[0] for i in fb]
        img = np.concatenate([img[keep], fb])
        order = np.argsort(img, kind='stable')
        img = img[order]
        boxes = np.concatenate([boxes[keep], fb_boxes])[order]
        ths = np.concatenate([ths[keep],
                              np.full(fb.size, FALLBACK_THRESHOLD)])[order]

    if image_hw is not None:
        ihw = np.asarray(_to_numpy(image_hw)).reshape(-1, 2)
        if ihw.shape[0] != num or (ihw < 1).any():
            raise ValueError(f'image_hw must hold {num} positive (h, w) '
                             f'pairs, got {image_hw!r}')
        boxes = _scale_to_image(boxes, ihw[img, 0], ihw[img, 1], cam_scale,
                                stride)

    # Scores relative to the first raw box of each image.  Clipping to the
    # image can make that box empty (up to rounding): then use the image's
    # largest box, and give every box score 1 if all are empty.
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    counts = np.bincount(img, minlength=num)
    first = np.zeros(num, dtype=np.int64)
    np.cumsum(counts[:-1], out=first[1:])
    ref, largest = area[first], np.maximum.reduceat(area, first)
    ref = np.where(ref > _EMPTY * largest, ref, largest)
    ref = ref[img]
    scores = np.where(ref > 0, area / np.where(ref > 0, ref, 1.0), 1.0)

    if nms_iou is not None:
        keep = _batched_nms(
            img,
            boxes,
            scores,
            first,
            counts,
            nms_iou,
            offset=0.0 if image_hw is None else 1.0)
        img, boxes, scores, ths = (a[keep] for a in (img, boxes, scores, ths))
        counts = np.bincount(img, minlength=num)

    ends = np.cumsum(counts).tolist()
    return [
        CamBoxes(boxes[a:b], scores[a:b], ths[a:b])
        for a, b in zip([0] + ends[:-1], ends)
    ]


def _batched_nms(img: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
                 first: np.ndarray, counts: np.ndarray, iou_thr: float,
                 offset: float) -> np.ndarray:
    """maskrcnn-benchmark's greedy NMS per image, vectorised over images.

    ``img`` is sorted; ``first``/``counts`` locate each image's boxes.
    Boxes are visited in descending score order (ties: raw order); a box is
    suppressed when its IoU with a kept box is ``>= iou_thr``, widths and
    heights counting ``offset`` extra (1 in pixels, as maskrcnn-benchmark's
    ``boxlist_nms``).  Returns the flat indices of the kept boxes in their
    raw order, as ``boxlist_nms`` does.
    """
    order = np.argsort(-np.round(scores, _TIE_DIGITS), kind='stable')
    order = order[np.argsort(img[order], kind='stable')]
    boxes = boxes[order]
    rank = np.arange(img.size) - first[img]
    # All pairs (i, j) of one image with rank i < rank j.
    later = counts[img] - rank - 1
    pi = np.repeat(np.arange(img.size), later)
    start = np.zeros(img.size, dtype=np.int64)
    np.cumsum(later[:-1], out=start[1:])
    pj = np.repeat(start - np.arange(img.size) - 1, later)
    pj = np.arange(pi.size) - pj
    bi, bj = boxes[pi], boxes[pj]
    iw = np.minimum(bi[:, 2], bj[:, 2]) - np.maximum(bi[:, 0], bj[:, 0])
    ih = np.minimum(bi[:, 3], bj[:, 3]) - np.maximum(bi[:, 1], bj[:, 1])
    inter = np.maximum(iw + offset, 0) * np.maximum(ih + offset, 0)
    area = ((boxes[:, 2] - boxes[:, 0] + offset) *
            (boxes[:, 3] - boxes[:, 1] + offset))
    union = area[pi] + area[pj] - inter
    over = inter >= (iou_thr - _IOU_TOL) * union
    # Without the pixel offset, boxes clipped to nothing (zero area) only
    # overlap their exact duplicates.
    empty = union <= 0
    over[empty] = (bi[empty] == bj[empty]).all(axis=1)
    pi, pj = pi[over], pj[over]
    keep = np.ones(img.size, dtype=bool)
    if pi.size:
        by_rank = np.argsort(rank[pi], kind='stable')
        pi, pj = pi[by_rank], pj[by_rank]
        bounds = np.searchsorted(rank[pi], np.arange(int(counts.max()) + 1))
        for r in range(bounds.size - 1):
            i, j = pi[bounds[r]:bounds[r + 1]], pj[bounds[r]:bounds[r + 1]]
            keep[j[keep[i]]] = False
    # ``img`` is sorted, so the raw order per image is the flat order
    return np.sort(order[keep])
