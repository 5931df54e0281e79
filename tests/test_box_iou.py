"""The IoU of the evaluation tool and the demo, against hand-computed
values."""
import numpy as np

from projects.dap.dap.evaluation.box_iou import box_iou


def test_iou_matrix_by_hand():
    a = [[0, 0, 2, 2], [0, 0, 4, 4]]
    b = [[1, 1, 3, 3], [1, 1, 2, 2], [2, 0, 4, 2], [5, 5, 6, 6]]
    want = [
        [1 / 7, 1 / 4, 0, 0],  # overlap 1 of 4 + 4 - 1; inside; touching
        [4 / 16, 1 / 16, 4 / 16, 0],  # the first three inside
    ]
    got = box_iou(np.asarray(a, np.float32), b)
    assert got.shape == (2, 4) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)


def test_one_box_either_side_and_empty_union():
    assert box_iou([0, 0, 10, 5], [5, 0, 15, 5]).tolist() == [[25 / 75]]
    assert box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)
    # two empty boxes have no union: IoU 0, not NaN
    assert box_iou([1, 1, 1, 1], [1, 1, 1, 1]).tolist() == [[0.0]]
    assert box_iou([1, 1, 1, 3], [0, 0, 2, 2]).tolist() == [[0.0]]  # no area
