"""Box arithmetic for the detectors: format conversion, NMS, normalisation (pure numpy)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating]
IndexArray = npt.NDArray[np.intp]


def cxcywh_to_xyxy(boxes: FloatArray) -> FloatArray:
    """``[N, 4]`` centre x, centre y, width, height -> ``[N, 4]`` x1, y1, x2, y2."""
    boxes = np.asarray(boxes)
    half = boxes[:, 2:4] / 2
    return np.concatenate([boxes[:, 0:2] - half, boxes[:, 0:2] + half], axis=1)


def box_iou(box: FloatArray, boxes: FloatArray) -> FloatArray:
    """IoU of one ``[4]`` xyxy box with each row of ``[N, 4]`` xyxy boxes (0 if both empty)."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = max(float(box[2] - box[0]), 0.0) * max(float(box[3] - box[1]), 0.0)
    widths = np.clip(boxes[:, 2] - boxes[:, 0], 0, None)
    union = area + widths * np.clip(boxes[:, 3] - boxes[:, 1], 0, None) - inter
    out: FloatArray = np.zeros(inter.shape, dtype=np.float64)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def nms(boxes_xyxy: FloatArray, scores: FloatArray, iou: float) -> IndexArray:
    """Greedy non-maximum suppression.

    Returns the indices of the kept boxes, highest score first. A box is dropped when its IoU
    with an already kept box is greater than ``iou`` (torchvision semantics); ties in score
    keep the lower index first.
    """
    boxes_xyxy = np.asarray(boxes_xyxy, dtype=np.float64)
    scores = np.asarray(scores)
    if boxes_xyxy.shape[0] != scores.shape[0]:
        raise ValueError(f"{boxes_xyxy.shape[0]} boxes but {scores.shape[0]} scores")
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        if not rest.size:
            break
        order = rest[box_iou(boxes_xyxy[best], boxes_xyxy[rest]) <= iou]
    return np.asarray(keep, dtype=np.intp)


def batched_nms(
    boxes_xyxy: FloatArray, scores: FloatArray, classes: npt.NDArray[np.integer], iou: float
) -> IndexArray:
    """NMS within each class (boxes of different classes never suppress each other).

    Uses the coordinate-offset trick: each class is shifted to its own disjoint region.
    Returns kept indices, highest score first.
    """
    boxes_xyxy = np.asarray(boxes_xyxy, dtype=np.float64)
    if boxes_xyxy.shape[0] == 0:
        return np.zeros(0, dtype=np.intp)
    span = float(boxes_xyxy.max() - min(boxes_xyxy.min(), 0.0)) + 1.0
    offsets = np.asarray(classes, dtype=np.float64)[:, None] * span
    return nms(boxes_xyxy + offsets, scores, iou)


def to_normalised_xywh(
    xyxy_input_px: FloatArray, ratio: float, orig_w: int, orig_h: int
) -> tuple[npt.NDArray[np.float64], IndexArray]:
    """Map ``[N, 4]`` xyxy boxes in model-input pixels back to the original image.

    Divides by the letterbox ``ratio``, clips to the image and returns MegaDetector-style
    ``[M, 4]`` top-left x, y, width, height in [0, 1] plus the indices (into the input) of
    the M boxes kept: boxes with no area left after clipping are dropped.
    """
    xyxy = np.asarray(xyxy_input_px, dtype=np.float64).reshape(-1, 4) / ratio
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, orig_w) / orig_w
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, orig_h) / orig_h
    wh = xyxy[:, 2:4] - xyxy[:, 0:2]
    keep = np.flatnonzero((wh[:, 0] > 0) & (wh[:, 1] > 0))
    return np.concatenate([xyxy[keep, 0:2], wh[keep]], axis=1), keep
