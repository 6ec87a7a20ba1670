"""Box arithmetic: exact expected values on small synthetic arrays."""

from __future__ import annotations

import numpy as np
import pytest

from models_ml._boxes import batched_nms, box_iou, cxcywh_to_xyxy, nms, to_normalised_xywh


def test_cxcywh_to_xyxy() -> None:
    boxes = np.array([[50.0, 40.0, 20.0, 10.0], [0.0, 0.0, 4.0, 6.0]])
    np.testing.assert_array_equal(
        cxcywh_to_xyxy(boxes), [[40.0, 35.0, 60.0, 45.0], [-2.0, -3.0, 2.0, 3.0]]
    )


def test_cxcywh_to_xyxy_empty() -> None:
    assert cxcywh_to_xyxy(np.zeros((0, 4))).shape == (0, 4)


def test_box_iou() -> None:
    box = np.array([0.0, 0.0, 10.0, 10.0])
    others = np.array(
        [
            [0.0, 0.0, 10.0, 10.0],  # same: 1
            [5.0, 0.0, 15.0, 10.0],  # half overlap: 50 / 150
            [20.0, 20.0, 30.0, 30.0],  # disjoint: 0
            [3.0, 3.0, 3.0, 3.0],  # empty: 0
        ]
    )
    np.testing.assert_allclose(box_iou(box, others), [1.0, 1 / 3, 0.0, 0.0])


def test_nms_keeps_best_of_overlapping_and_disjoint_boxes() -> None:
    boxes = np.array(
        [
            [0.0, 0.0, 10.0, 10.0],
            [1.0, 1.0, 11.0, 11.0],  # IoU with box 0 = 81/119 = 0.68
            [50.0, 50.0, 60.0, 60.0],
            [0.0, 0.0, 10.0, 10.5],  # IoU with box 0 = 100/105
        ]
    )
    scores = np.array([0.8, 0.9, 0.3, 0.7])
    # box 1 wins first and suppresses 0 (IoU 0.68) and 3 (85.5/119.5 = 0.72); 2 is disjoint
    np.testing.assert_array_equal(nms(boxes, scores, 0.45), [1, 2])
    # a looser threshold keeps everything except the near-duplicate of box 0
    np.testing.assert_array_equal(nms(boxes, scores, 0.9), [1, 0, 2])


def test_nms_iou_equal_to_threshold_is_kept() -> None:
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]])  # IoU exactly 1/3
    np.testing.assert_array_equal(nms(boxes, np.array([0.9, 0.8]), 1 / 3), [0, 1])
    np.testing.assert_array_equal(nms(boxes, np.array([0.9, 0.8]), 0.33), [0])


def test_nms_ties_keep_lower_index_first() -> None:
    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 6.0, 6.0], [0.0, 0.0, 1.0, 1.0]])
    np.testing.assert_array_equal(nms(boxes, np.array([0.5, 0.5, 0.5]), 0.5), [0, 1])


def test_nms_empty_and_mismatch() -> None:
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)
    with pytest.raises(ValueError, match="scores"):
        nms(np.zeros((2, 4)), np.zeros(3), 0.5)


def test_batched_nms_never_suppresses_across_classes() -> None:
    boxes = np.array(
        [
            [0.0, 0.0, 10.0, 10.0],
            [0.0, 0.0, 10.0, 10.0],
            [0.5, 0.0, 10.0, 10.0],
            [-5.0, -5.0, 2.0, 2.0],
        ]
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    classes = np.array([0, 1, 0, 1])
    # box 2 is suppressed by box 0 (same class); box 1 survives beside box 0 (other class)
    np.testing.assert_array_equal(batched_nms(boxes, scores, classes, 0.45), [0, 1, 3])
    assert batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), 0.45).shape == (0,)


def test_to_normalised_xywh_divides_by_ratio() -> None:
    # ratio 0.5: input px -> original px doubles; original image 200 x 100
    xywh, keep = to_normalised_xywh(np.array([[10.0, 10.0, 60.0, 30.0]]), 0.5, 200, 100)
    np.testing.assert_allclose(xywh, [[0.1, 0.2, 0.5, 0.4]])
    np.testing.assert_array_equal(keep, [0])


def test_to_normalised_xywh_clips_and_drops_empty_boxes() -> None:
    boxes = np.array(
        [
            [-10.0, -10.0, 50.0, 25.0],  # sticks out top-left
            [80.0, 40.0, 150.0, 90.0],  # sticks out bottom-right
            [120.0, 10.0, 140.0, 20.0],  # entirely in the right padding: dropped
            [10.0, 60.0, 20.0, 70.0],  # entirely in the bottom padding: dropped
            [30.0, 30.0, 30.0, 40.0],  # zero width: dropped
        ]
    )
    xywh, keep = to_normalised_xywh(boxes, 1.0, 100, 50)
    np.testing.assert_allclose(xywh, [[0.0, 0.0, 0.5, 0.5], [0.8, 0.8, 0.2, 0.2]])
    np.testing.assert_array_equal(keep, [0, 1])
    assert ((xywh >= 0) & (xywh <= 1)).all()


def test_to_normalised_xywh_empty() -> None:
    xywh, keep = to_normalised_xywh(np.zeros((0, 4)), 0.5, 10, 10)
    assert xywh.shape == (0, 4)
    assert keep.shape == (0,)
