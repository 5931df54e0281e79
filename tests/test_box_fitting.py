"""CAM box fitting: hand-computed maps, parity with a literal per-image
reference (scipy.ndimage.label + loops), batched == single, bad input."""
import math

import numpy as np
import pytest
import torch
from helpers.box_fitting import THRESHOLDS, fit_one, reference_fit
from scipy import ndimage

from projects.dap.dap.models.box_fitting import (FALLBACK_THRESHOLD,
                                                 _scale_to_image,
                                                 fit_cam_boxes)


def smooth_cam(rng, height, width, sigma=None):
    """A smooth random field, min-max normalised like the original."""
    sigma = rng.uniform(0.3, 4.0) if sigma is None else sigma
    field = ndimage.gaussian_filter(
        rng.standard_normal((height, width)), sigma)
    field -= field.min()
    return field / field.max() if field.max() > 0 else field


def assert_same(got, want, atol=1e-4):
    boxes, scores, ths = want
    assert got.boxes.shape == boxes.shape
    np.testing.assert_allclose(got.boxes, boxes, rtol=0, atol=atol)
    np.testing.assert_allclose(got.scores, scores, rtol=0, atol=atol)
    np.testing.assert_array_equal(got.thresholds, ths)


def uniform_fit(n):
    """Moment-fitted length of a uniform run of n cells: the variance of
    0..n-1 is (n^2 - 1) / 12, so the length is sqrt(n^2 - 1) (not n)."""
    return max(1.0, math.sqrt(n * n - 1))


# --------------------------------------------------------------------------
# Hand-computed maps.
# --------------------------------------------------------------------------
def test_single_uniform_rectangle():
    cam = np.zeros((10, 12))
    cam[2:5, 3:8] = 1.0  # rows 2..4 (3 cells), columns 3..7 (5 cells)
    # Weights are uniform (1.22), so cx = 5, cy = 3 and the sizes are
    # sqrt(5^2 - 1) = sqrt(24) = 4.898979... and sqrt(3^2 - 1) = sqrt(8).
    w, h = math.sqrt(24), math.sqrt(8)
    expected = [5.5 - w / 2, 3.5 - h / 2, 5.5 + w / 2, 3.5 + h / 2]
    np.testing.assert_allclose(
        expected, [3.0505103, 2.0857864, 7.9494897, 4.9142136], atol=1e-6)
    boxes, scores, _ = fit_one(cam)
    # The same box at all four thresholds: NMS keeps the first one.
    np.testing.assert_allclose(boxes, [expected], atol=1e-12)
    np.testing.assert_allclose(scores, [1.0])
    raw = fit_one(cam, nms_iou=None)
    np.testing.assert_allclose(raw.boxes, [expected] * 4, atol=1e-12)
    np.testing.assert_allclose(raw.scores, [1.0] * 4)
    np.testing.assert_allclose(raw.thresholds, THRESHOLDS)
    kept = fit_one(cam)
    assert kept.thresholds.tolist() == [0.2]


@pytest.mark.parametrize('side,kept', [(2, False), (3, True)])
def test_second_blob_kept_or_dropped_by_area_rule(side, kept):
    cam = np.zeros((12, 12))
    cam[1:4, 1:6] = 0.9  # 3 x 5: rectangle area 15
    cam[7:7 + side, 7:7 + side] = 0.8  # 2 x 2 = 4 < 7.5 or 3 x 3 = 9 >= 7.5
    raw = fit_one(cam, nms_iou=None)
    big = [
        3.5 - uniform_fit(5) / 2, 2.5 - uniform_fit(3) / 2,
        3.5 + uniform_fit(5) / 2, 2.5 + uniform_fit(3) / 2
    ]
    c = 7 + side / 2  # centre of the small blob's cells + 0.5
    small = [
        c - uniform_fit(side) / 2, c - uniform_fit(side) / 2,
        c + uniform_fit(side) / 2, c + uniform_fit(side) / 2
    ]
    per_t = [big, small] if kept else [big]
    np.testing.assert_allclose(raw.boxes, per_t * 4, atol=1e-12)
    np.testing.assert_allclose(raw.thresholds,
                               np.repeat(THRESHOLDS, len(per_t)))
    assert_same(fit_one(cam), reference_fit(cam), atol=1e-12)


def test_nested_thresholds_weight_the_moments():
    cam = np.zeros((9, 9))
    cam[2:7, 2:7] = 0.35  # a 5 x 5 ring at 0.35 ...
    cam[3:6, 3:6] = 1.0  # ... around a 3 x 3 core at 1.0, centre cell (4, 4)
    # t = 0.2, 0.3: the whole 5 x 5 square; ring weight 0.57 (16 cells),
    # core weight 1.22 (9 cells): sum w = 9.12 + 10.98 = 20.1.
    # Columns at dx = +-2 are all ring: 2 * 5 * 0.57 * 4 = 22.8; columns at
    # dx = +-1 hold 2 ring + 3 core cells: 2 * (1.14 + 3.66) * 1 = 9.6.
    # var = 32.4 / 20.1, the same in y by symmetry.
    outer = math.sqrt(12 * 32.4 / 20.1)
    # t = 0.4, 0.5: the uniform 3 x 3 core: sqrt(3^2 - 1) = sqrt(8).
    inner = math.sqrt(8)
    raw = fit_one(cam, nms_iou=None)
    expected = [[4.5 - s / 2, 4.5 - s / 2, 4.5 + s / 2, 4.5 + s / 2]
                for s in (outer, outer, inner, inner)]
    np.testing.assert_allclose(raw.boxes, expected, atol=1e-12)
    np.testing.assert_allclose(raw.scores,
                               [1, 1, (inner / outer)**2, (inner / outer)**2])
    # NMS: the t=0.3 copy is suppressed by the t=0.2 box (IoU 1), the core
    # box has IoU 8 / outer^2 = 0.41 with it and stays.
    nms = fit_one(cam)
    np.testing.assert_allclose(
        nms.boxes, [expected[0], expected[2]], atol=1e-12)
    np.testing.assert_allclose(nms.thresholds, [0.2, 0.4])


def test_other_blobs_inside_the_rectangle_count():
    cam = np.zeros((7, 7))
    cam[1, 1:6] = 1.0  # a U: top bar, columns 1..5 of row 1 ...
    cam[1:6, 1] = 1.0  # ... left bar
    cam[1:6, 5] = 1.0  # ... right bar
    cam[4, 3] = 1.0  # a separate single cell inside the U's rectangle
    raw = fit_one(cam, thresholds=(0.5, ), nms_iou=None)
    # The U (13 cells) plus the inner cell (4, 3): 14 cells, equal weights.
    # x: column 1 and 5 hold 5 cells each, columns 2 and 4 one each (top
    # bar), column 3 two (top bar + inner cell): mean 3, sum of dx^2 =
    # 5*4 + 5*4 + 1 + 1 + 0 = 42 -> var 3.
    # y: row 1 holds 5 cells, rows 2, 3, 5 two each, row 4 three:
    # mean = (5 + 2*2 + 2*3 + 3*4 + 2*5) / 14 = 37 / 14.
    cy = 37 / 14
    var_y = (5 * (1 - cy)**2 + 2 * (2 - cy)**2 + 2 * (3 - cy)**2 + 3 *
             (4 - cy)**2 + 2 * (5 - cy)**2) / 14
    w, h = math.sqrt(12 * 3), math.sqrt(12 * var_y)
    u_box = [3.5 - w / 2, cy + 0.5 - h / 2, 3.5 + w / 2, cy + 0.5 + h / 2]
    # The inner cell is its own component: rectangle area 1 < 0.5 * 25.
    np.testing.assert_allclose(raw.boxes, [u_box], atol=1e-12)


def test_ties_in_rectangle_area_rank_the_higher_label_first():
    cam = np.zeros((6, 9))
    cam[4, 1:3] = 0.9  # 1 x 2, first cell (4, 1): label 3
    cam[1, 6:8] = 0.9  # 1 x 2, first cell (1, 6): label 1
    cam[2:4, 4] = 0.9  # 2 x 1, first cell (2, 4): label 2
    raw = fit_one(cam, thresholds=(0.5, ), max_per_threshold=2, nms_iou=None)
    half = uniform_fit(2) / 2
    # np.argsort([2, 2, 2])[::-1] = [2, 1, 0]: labels 3 and 2
    np.testing.assert_allclose(
        raw.boxes, [[2 - half, 4, 2 + half, 5], [4, 3 - half, 5, 3 + half]],
        atol=1e-12)


def test_threshold_without_cells_is_skipped():
    cam = np.zeros((5, 5))
    cam[1:4, 1:4] = 0.45  # exceeds 0.2, 0.3, 0.4 but not 0.5
    cam[0, 0] = 0.01
    raw = fit_one(cam, nms_iou=None)
    np.testing.assert_allclose(raw.thresholds, [0.2, 0.3, 0.4])


def test_nms_larger_box_wins_and_iou_threshold():
    cam = np.zeros((3, 9))
    cam[1, 2:7] = 0.3  # 5 cells above 0.2 ...
    cam[1, 3:7] = 0.6  # ... of which 4 exceed 0.5
    raw = fit_one(cam, thresholds=(0.5, 0.2), nms_iou=None)
    assert len(raw.boxes) == 2
    # Both boxes are 1 high and the t=0.5 one lies inside the t=0.2 one,
    # so their IoU is the ratio of their widths.
    small, large = raw.boxes[:, 2] - raw.boxes[:, 0]
    assert small < large
    np.testing.assert_allclose(raw.boxes[:, 1::2], [[1, 2], [1, 2]])
    ratio = small / large
    both = fit_one(cam, thresholds=(0.5, 0.2), nms_iou=ratio + 0.01)
    # Kept boxes stay in their raw order (boxlist_nms), not score order.
    np.testing.assert_allclose(both.boxes, raw.boxes)
    np.testing.assert_allclose(both.scores, [1, large / small])
    # Suppressed at IoU == nms_iou (>=, as maskrcnn-benchmark), not only >.
    assert len(fit_one(cam, thresholds=(0.5, 0.2), nms_iou=ratio).boxes) == 1
    one = fit_one(cam, thresholds=(0.5, 0.2), nms_iou=ratio - 0.01)
    # The larger box wins even though its threshold came second.
    np.testing.assert_allclose(one.boxes, raw.boxes[1:])
    assert one.thresholds.tolist() == [0.2]


@pytest.mark.parametrize('value', [0.0, 0.3, 1.0, -2.0])
@pytest.mark.parametrize('shape', [(1, 1), (4, 7), (18, 24)])
def test_constant_map_gives_the_whole_map(value, shape):
    cam = np.full(shape, value)
    for nms in (0.8, None):
        res = fit_one(cam, nms_iou=nms)
        np.testing.assert_array_equal(res.boxes, [[0, 0, shape[1], shape[0]]])
        np.testing.assert_array_equal(res.scores, [1.0])
        np.testing.assert_array_equal(res.thresholds, [FALLBACK_THRESHOLD])


def test_map_below_every_threshold_gives_the_whole_map():
    cam = np.linspace(0, 0.2, 30).reshape(5, 6)  # max 0.2 is not > 0.2
    boxes, scores, _ = fit_one(cam)
    np.testing.assert_array_equal(boxes, [[0, 0, 6, 5]])
    np.testing.assert_array_equal(scores, [1.0])


def test_thin_maps():
    row = np.array([[0.0, 0.9, 0.9, 0.1, 1.0]])  # 1 x 5
    raw = fit_one(row, nms_iou=None)
    assert_same(raw, reference_fit(row, nms_iou=None), atol=1e-12)
    # Blobs (1, 2) and (4) at every threshold: area 2 and 1 (kept).
    assert len(raw.boxes) == 8
    np.testing.assert_allclose(raw.boxes[1], [4, 0, 5, 1])
    column = row.T.copy()
    assert_same(fit_one(column), reference_fit(column), atol=1e-12)


# --------------------------------------------------------------------------
# Parity with the reference on random maps.
# --------------------------------------------------------------------------
def random_maps(seed, num=300):
    rng = np.random.default_rng(seed)
    maps = [
        smooth_cam(rng, int(rng.integers(1, 30)), int(rng.integers(1, 41)))
        for _ in range(num)
    ]
    # Quantised maps: plateaus, many exact ties and equal boxes.
    maps += [
        np.round(
            rng.random(
                (int(rng.integers(1, 12)), int(rng.integers(1, 12)))) * 4) / 4
        for _ in range(num // 3)
    ]
    return maps


@pytest.mark.parametrize('seed', range(6))
@pytest.mark.parametrize('nms_iou', [0.8, None])
def test_random_maps_match_reference(seed, nms_iou):
    maps = random_maps(seed)
    results = fit_cam_boxes(maps, nms_iou=nms_iou)
    assert len(results) == len(maps)
    for cam, got in zip(maps, results):
        assert_same(got, reference_fit(cam, nms_iou=nms_iou), atol=1e-9)


@pytest.mark.parametrize('params', [
    dict(
        thresholds=(0.5, 0.1, 0.3),
        bias=0.0,
        max_per_threshold=2,
        min_area_ratio=0.2),
    dict(
        thresholds=(0.6, ), bias=1.0, max_per_threshold=1, min_area_ratio=1.0),
    dict(thresholds=(0.2, 0.3, 0.4, 0.5), min_area_ratio=0.0, nms_iou=0.3),
])
def test_other_parameters_match_reference(params):
    maps = random_maps(7, 150)
    ref_params = dict(
        thresholds=params['thresholds'],
        bias=params.get('bias', 0.22),
        k=params.get('max_per_threshold', 4),
        ratio=params['min_area_ratio'],
        nms_iou=params.get('nms_iou', 0.8))
    for cam, got in zip(maps, fit_cam_boxes(maps, **params)):
        assert_same(got, reference_fit(cam, **ref_params), atol=1e-9)


def test_image_sizes_scale_and_clip_before_scoring():
    rng = np.random.default_rng(3)
    sizes = [(int(h), int(w)) for h, w in rng.integers(40, 900, (200, 2))]
    maps = []
    for h, w in sizes:  # the 576-scale grid of an image of this size
        scale = 576 / min(h, w)
        maps.append(
            smooth_cam(rng, math.ceil(round(h * scale) / 32),
                       math.ceil(round(w * scale) / 32)))
    results = fit_cam_boxes(maps, image_hw=sizes)
    for cam, hw, got in zip(maps, sizes, results):
        assert_same(got, reference_fit(cam, image_hw=hw), atol=1e-9)
        assert (got.boxes[:, 0::2] <= hw[1] - 1).all()
        assert (got.boxes[:, 1::2] <= hw[0] - 1).all()
    one = fit_one(maps[0], image_hw=sizes[0])
    for a, b in zip(one, results[0]):
        np.testing.assert_array_equal(a, b)


def test_tiny_images_pixel_offset_and_sub_pixel_scores():
    """Images smaller than the CAM grid: boxes of a few pixels, where the
    NMS's +1 pixel and scores relative to a sub-pixel first box matter."""
    rng = np.random.default_rng(11)
    maps = [smooth_cam(rng, 18, 24) for _ in range(100)]
    sizes = [(int(h), int(w)) for h, w in rng.integers(10, 40, (100, 2))]
    for cam, hw, got in zip(maps, sizes, fit_cam_boxes(maps, image_hw=sizes)):
        assert_same(got, reference_fit(cam, image_hw=hw), atol=1e-9)


def test_sub_pixel_first_box_is_the_score_reference():
    # A 9 x 12 image: one cell of the 576-scale grid is 32 * 9 / 576 = 0.5
    # pixels, so the first box (the peak cell at t = 0.5) is 0.25 px^2.
    cam = np.zeros((3, 4))
    cam[1, 1], cam[2, 1] = 1.0, 0.3
    res = fit_one(cam, thresholds=(0.5, 0.2), image_hw=(9, 12), nms_iou=None)
    np.testing.assert_allclose(res.boxes[0], [0.5, 0.5, 1, 1])
    # t = 0.2: the column of weights 1.22, 0.52 is 0.5 px wide and
    # sqrt(12 * 1.22 * 0.52) / 1.74 cells high: its score is that height
    assert res.scores[0] == 1.0
    assert res.scores[1] == pytest.approx(
        math.sqrt(12 * 1.22 * 0.52) / 1.74, rel=1e-12)


def test_iou_within_tolerance_of_the_threshold_counts_as_equal():
    # Two single cells in one row, a cell apart, on a 9 x 12 image (cells of
    # 0.5 px): [0, 0, .5, .5] and [1, 0, 1.5, .5].  With the +1 pixel the
    # intersection is 0.5 x 1.5 = 0.75 of a union 2 * 2.25 - 0.75 = 3.75:
    # IoU 0.2, exactly (weights 1 and 0.25 keep every sum exact).  Equal
    # areas: the later component ranks first.
    cam = np.zeros((3, 4))
    cam[0, 0] = cam[0, 2] = 0.75
    for nms_iou, kept in ((0.2, 1), (0.2 + 1e-9, 1), (0.2 + 2e-9, 2)):
        res = fit_one(
            cam,
            thresholds=(0.5, ),
            bias=0.25,
            image_hw=(9, 12),
            nms_iou=nms_iou)
        assert len(res.boxes) == kept, nms_iou
        np.testing.assert_array_equal(res.boxes[0], [1, 0, 1.5, 0.5])


def test_every_box_clipped_to_nothing_scores_one():
    cam = np.zeros((18, 19))
    cam[5:8, 18] = 1.0  # only in the last column, clipped away
    res = fit_one(cam, image_hw=(576, 577))
    np.testing.assert_array_equal(res.boxes[:, [0, 2]], 576)
    np.testing.assert_array_equal(res.scores, np.ones(len(res.scores)))


def test_first_box_clipped_to_nothing():
    # A 576 x 577 image: the 576-scale grid has 19 columns of 32 pixels, the
    # last one starts at x = 576 = W - 1, so a box in it is clipped empty.
    cam = np.zeros((18, 19))
    cam[5:8, 18] = 1.0  # rectangle area 3: the first box at every threshold
    cam[10, 3:5] = 0.9  # rectangle area 2 >= 1.5: kept too
    res = fit_one(cam, image_hw=(576, 577), nms_iou=None)
    assert len(res.boxes) == 8
    empty = res.boxes[0::2]
    np.testing.assert_array_equal(empty[:, [0, 2]], 576)
    # The first box is empty: scores are relative to the largest box.
    np.testing.assert_array_equal(res.scores, [0, 1] * 4)
    nms = fit_one(cam, image_hw=(576, 577))
    # Identical empty boxes are duplicates (1 pixel wide with the +1); the
    # rest are NMS-ed as usual; the kept two in raw order.
    np.testing.assert_array_equal(nms.boxes, res.boxes[[0, 1]])
    np.testing.assert_array_equal(nms.scores, [0, 1])
    assert_same(nms, reference_fit(cam, image_hw=(576, 577)), atol=1e-12)


# --------------------------------------------------------------------------
# Batched == single, input types.
# --------------------------------------------------------------------------
def test_batched_equals_single_exactly():
    maps = random_maps(11, 200)
    for nms in (0.8, None):
        batched = fit_cam_boxes(maps, nms_iou=nms)
        for cam, got in zip(maps, batched):
            single = fit_one(cam, nms_iou=nms)
            for a, b in zip(single, got):
                np.testing.assert_array_equal(a, b)
            boxes, scores, _ = fit_one(cam, nms_iou=nms)
            np.testing.assert_array_equal(boxes, got.boxes)
            np.testing.assert_array_equal(scores, got.scores)


def test_batch_with_maps_without_components():
    """Maps without components between others do not merge the groups of
    their neighbours: map 0's last group (threshold index 1) and map 4's
    first (index 0) stay apart, so map 4 keeps both blobs."""
    first = np.zeros((10, 10))
    first[1:7, 1:6] = 0.35  # area 30, above 0.2 and 0.3 only
    last = np.zeros((10, 10))
    last[0:3, 0:3] = 0.25  # area 9 and 6 >= 9 / 2, above 0.2 only
    last[6:8, 5:8] = 0.25
    last[9, 0] = 1.0
    maps = [first] + [np.zeros((10, 10))] * 3 + [last]
    batched = fit_cam_boxes(maps, nms_iou=None)
    for cam, got in zip(maps, batched):
        assert_same(got, reference_fit(cam, nms_iou=None), atol=1e-12)
    # both blobs at 0.2 (the peak is too small there), the peak at 0.3-0.5
    np.testing.assert_array_equal(batched[4].thresholds,
                                  [0.2, 0.2, 0.3, 0.4, 0.5])


def test_padded_batch_and_torch_inputs():
    rng = np.random.default_rng(5)
    maps = [
        smooth_cam(rng, int(h), int(w))
        for h, w in rng.integers(1, 25, (40, 2))
    ]
    hw = np.array([m.shape for m in maps])
    padded = np.full((len(maps), hw[:, 0].max(), hw[:, 1].max()), 7.0)
    for m, p in zip(maps, padded):
        p[:m.shape[0], :m.shape[1]] = m
    want = fit_cam_boxes(maps)
    for got in (fit_cam_boxes(padded, valid_hw=hw),
                fit_cam_boxes(
                    torch.from_numpy(padded), valid_hw=torch.from_numpy(hw)),
                fit_cam_boxes([torch.from_numpy(m) for m in maps])):
        for a, b in zip(got, want):
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y)
    # float32 tensors are widened to float64 exactly.
    m32 = torch.from_numpy(maps[0]).float()
    for a, b in zip(fit_one(m32), fit_one(m32.numpy())):
        np.testing.assert_array_equal(a, b)
    # A padded batch without valid_hw uses the whole padded maps.
    full = fit_cam_boxes(padded[:3])
    for a, b in zip(full, fit_cam_boxes(list(padded[:3]))):
        np.testing.assert_array_equal(a.boxes, b.boxes)


# --------------------------------------------------------------------------
# Cell -> pixel scaling, bad input.
# --------------------------------------------------------------------------
def test_scale_to_image():
    boxes = np.array([[1.0, 2.0, 3.0, 4.0], [-0.5, 10.0, 40.0, 30.0],
                      [0.0, -1.0, 0.5, 0.0]])
    ih, iw = np.full(3, 300), np.full(3, 400)
    # 400 x 300 image (W x H): a cell is 32 * 300 / 576 = 16.6667 pixels.
    out = _scale_to_image(boxes, ih, iw, cam_scale=576, stride=32)
    c = 32 * 300 / 576
    np.testing.assert_allclose(out, [[c, 2 * c, 3 * c, 4 * c],
                                     [0, 10 * c, 399, 299], [0, 0, c / 2, 0]])
    out = _scale_to_image(boxes, ih, iw, cam_scale=288, stride=16)
    np.testing.assert_allclose(out[0], [c, 2 * c, 3 * c, 4 * c])
    # each box by its own image: the second in a 100 x 50 (W x H) one, its
    # cell 32 * 50 / 576 px, clipped to that image's 99 and 49
    out = _scale_to_image(boxes[:2], np.array([300, 50]), np.array([400, 100]),
                          576, 32)
    np.testing.assert_allclose(out[0], [c, 2 * c, 3 * c, 4 * c])
    np.testing.assert_allclose(out[1], [0, 10 * 32 * 50 / 576, 99, 49])


def test_parameter_boundaries_and_pass_through():
    """Boundary values are accepted, a single threshold may be a number, and
    every option reaches the fitting."""
    rng = np.random.default_rng(8)
    cam = smooth_cam(rng, 12, 15)
    # bias + min(thresholds) == 0 still keeps every weight positive
    assert_same(
        fit_one(cam, thresholds=(-0.22, 0.4)),
        reference_fit(cam, thresholds=(-0.22, 0.4)),
        atol=1e-9)
    # nms_iou = 1 suppresses only exact duplicates
    assert_same(
        fit_one(cam, nms_iou=1.0), reference_fit(cam, nms_iou=1.0), atol=1e-9)
    for a, b in zip(
            fit_one(cam, thresholds=0.3), fit_one(cam, thresholds=[0.3])):
        np.testing.assert_array_equal(a, b)
    # bias, cam_scale and stride of the one-map function (576 x 720 image
    # at scale 288 with stride 16: an 18 x 23 grid, here its 12 x 15 part)
    options = dict(bias=0.5, cam_scale=288, stride=16)
    got = fit_one(cam, image_hw=(576, 720), nms_iou=None, **options)
    assert_same(
        got,
        reference_fit(cam, image_hw=(576, 720), nms_iou=None, **options),
        atol=1e-9)
    default = reference_fit(cam, image_hw=(576, 720), nms_iou=None)
    assert not np.allclose(got.boxes, default[0])


def test_nms_of_empty_boxes_without_offset():
    """Without the pixel offset two zero-area boxes have no IoU: they are
    duplicates when identical, else both kept; tiny boxes have one."""
    from projects.dap.dap.models.box_fitting import _batched_nms
    boxes = np.array([[2.0, 3.0, 2.0, 5.0], [2.0, 3.0, 2.0, 5.0],
                      [4.0, 3.0, 4.0, 3.0], [0.0, 0.0, 6.0, 6.0],
                      [9.0, 9.0, 9.5, 9.5], [9.0, 9.0, 9.5, 9.45]])
    keep = _batched_nms(
        np.zeros(6, dtype=np.int64),
        boxes,
        np.array([0.0, 0.0, 0.0, 1.0, 0.5, 0.5]),
        np.array([0]),
        np.array([6]),
        0.8,
        offset=0.0)
    assert keep.tolist() == [0, 2, 3, 4]  # IoU(4, 5) = 0.225 / 0.25


def test_padded_batch_shapes_and_valid_sizes():
    one = fit_cam_boxes(np.full((1, 1, 1), 0.5))
    np.testing.assert_array_equal(one[0].boxes, [[0, 0, 1, 1]])
    with pytest.raises(
            ValueError,
            match=r'non-empty \(N, H, W\) array, '
            r'got shape \(4, 4\)'):
        fit_cam_boxes(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r'got shape \(0, 3, 3\)'):
        fit_cam_boxes(np.zeros((0, 3, 3)))
    batch = np.zeros((2, 3, 3))
    for hw in ([[3, 3]], [[0, 3], [3, 3]], [[2.5, 3], [3, 3]]):
        with pytest.raises(
                ValueError,
                match=r'valid_hw must hold 2 integer '
                r'\(h, w\) pairs within 1..\(3, 3\)'):
            fit_cam_boxes(batch, valid_hw=hw)
    with pytest.raises(
            ValueError,
            match=r'^valid_hw is only for a padded '
            r'\(N, H, W\) batch$'):
        fit_cam_boxes([batch[0]], valid_hw=[[3, 3]])
    with pytest.raises(ValueError, match='^no maps given$'):
        fit_cam_boxes([])
    with pytest.raises(ValueError, match=r'bias \+ min\(thresholds\) must'):
        fit_one(batch[0], thresholds=(-0.5, ), bias=0.22)
    with pytest.raises(ValueError, match=r'nms_iou must be in \(0, 1\]'):
        fit_one(batch[0], nms_iou=1.5)


def test_bad_input_raises_clear_errors():
    good = np.zeros((4, 4))
    bad = good.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match='map 1 holds NaN'):
        fit_cam_boxes([good, bad, good])
    with pytest.raises(ValueError, match='map 0 holds NaN'):
        fit_one(np.full((2, 2), np.inf))
    with pytest.raises(ValueError, match='2-D'):
        fit_one(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match='2-D'):
        fit_one(np.zeros((0, 3)))
    with pytest.raises(ValueError, match='no maps'):
        fit_cam_boxes([])
    with pytest.raises(ValueError, match='valid_hw'):
        fit_cam_boxes(np.zeros((2, 3, 3)), valid_hw=[[3, 4], [1, 1]])
    with pytest.raises(ValueError, match='valid_hw'):
        fit_cam_boxes([good], valid_hw=[[4, 4]])
    with pytest.raises(ValueError, match='thresholds'):
        fit_one(good, thresholds=())
    with pytest.raises(ValueError, match='bias'):
        fit_one(good, thresholds=(-0.5, ), bias=0.22)
    with pytest.raises(ValueError, match='max_per_threshold'):
        fit_one(good, max_per_threshold=0)
    with pytest.raises(ValueError, match='min_area_ratio'):
        fit_one(good, min_area_ratio=1.5)
    with pytest.raises(ValueError, match='nms_iou'):
        fit_one(good, nms_iou=0.0)
    with pytest.raises(ValueError, match='image_hw'):
        fit_cam_boxes([good], image_hw=[[0, 10]])
    # a 1 x 1 image is valid: every box clipped to its one pixel
    boxes, *_ = fit_one(good, image_hw=(1, 1))
    np.testing.assert_array_equal(boxes, [[0, 0, 0, 0]])
