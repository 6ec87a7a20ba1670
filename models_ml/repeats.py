"""Repeat-detection elimination (MegaDetector's method), as pure numpy.

A rock or a branch that a detector mistakes for an animal is boxed in the same place in many
images of the same camera. Boxes of one camera (and one model) are grouped greedily: a box
joins the first group whose first box it overlaps with IoU >= ``iou``. A group seen in at least
``min_occurrences`` distinct images is a static false positive; its boxes are *marked*, never
deleted. As in MegaDetector, only boxes with ``min_confidence <= confidence <= max_confidence``
and an area of at most ``max_box_area`` (fraction of the image) are candidates: a big box is
more likely a real animal that stayed in front of the camera.

Grouping only depends on the set of boxes (they are visited in ``detection_id`` order), so
recomputing a camera after new images arrive gives the same answer as computing it once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._boxes import box_iou


@dataclass(frozen=True)
class RepeatParams:
    iou: float = 0.9
    min_occurrences: int = 20  # MegaDetector's default occurrence threshold
    max_box_area: float = 0.2
    min_confidence: float = 0.1
    max_confidence: float = 1.0


@dataclass(frozen=True)
class BoxRecord:
    detection_id: str
    media_id: str
    x: float
    y: float
    w: float
    h: float
    confidence: float


@dataclass(frozen=True)
class RepeatFlag:
    detection_id: str
    cluster_id: str
    occurrences: int  # distinct images the group appears in
    detail: str


def is_candidate(box: BoxRecord, params: RepeatParams) -> bool:
    area = box.w * box.h
    return (
        params.min_confidence <= box.confidence <= params.max_confidence
        and 0.0 < area <= params.max_box_area
    )


def find_repeats(
    boxes: Sequence[BoxRecord], params: RepeatParams = RepeatParams(), key: str = ""
) -> list[RepeatFlag]:
    """The boxes of one camera (``key`` names it) that recur in >= ``min_occurrences`` images."""
    cands = sorted((b for b in boxes if is_candidate(b, params)), key=lambda b: b.detection_id)
    if not cands:
        return []
    xyxy = np.array([[b.x, b.y, b.x + b.w, b.y + b.h] for b in cands], dtype=np.float64)
    reps: list[int] = []  # index of each group's first box
    rep_boxes = np.zeros((len(cands), 4), dtype=np.float64)
    group = np.empty(len(cands), dtype=np.intp)
    for i in range(len(cands)):
        if reps:
            ious = box_iou(xyxy[i], rep_boxes[: len(reps)])
            best = int(np.argmax(ious))
            if ious[best] >= params.iou:
                group[i] = best
                continue
        group[i] = len(reps)
        rep_boxes[len(reps)] = xyxy[i]
        reps.append(i)
    flags: list[RepeatFlag] = []
    for g, rep in enumerate(reps):
        members = np.flatnonzero(group == g)
        images = {cands[int(m)].media_id for m in members}
        if len(images) < params.min_occurrences:
            continue
        r = cands[rep]
        cluster = hashlib.md5(
            f"{key}\x1f{r.detection_id}".encode(), usedforsecurity=False
        ).hexdigest()
        detail = (
            f"same box (IoU >= {params.iou}) in {len(images)} images at this camera "
            f"(x={r.x:.3f} y={r.y:.3f} w={r.w:.3f} h={r.h:.3f}): likely a static false "
            "positive such as a rock or branch"
        )
        flags.extend(
            RepeatFlag(cands[int(m)].detection_id, cluster, len(images), detail) for m in members
        )
    return flags
