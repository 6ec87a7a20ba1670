"""Value objects passed between the inference stages (frozen, typed, no behaviour)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

#: MegaDetector's detection categories (batch-output format 1.x): id -> name.
DETECTION_CATEGORIES: dict[str, str] = {"1": "animal", "2": "person", "3": "vehicle"}
CATEGORY_IDS: dict[str, int] = {name: int(i) for i, name in DETECTION_CATEGORIES.items()}


@dataclass(frozen=True)
class BBox:
    """A box normalised to the image size, MegaDetector style: x_min, y_min, width, height."""

    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class Detection:
    """One box from one model: ``category`` animal/person/vehicle, ``label`` the model's class."""

    category: str
    label: str
    confidence: float
    bbox: BBox
    model: str  # "name@version"


@dataclass(frozen=True)
class PreprocessedImage:
    """The model input for one image plus what is needed to map boxes back to the original."""

    arr: np.ndarray  # float32 [3, H, W] in the model's channel order and scaling
    ratio: float  # resize ratio applied before letterboxing (input px = original px * ratio)
    orig_width: int
    orig_height: int
    pad_x: float = 0.0  # left padding in input px (centred letterbox; 0 for top-left)
    pad_y: float = 0.0  # top padding in input px


@dataclass(frozen=True)
class ExifRecord:
    """What the header of one image says. Every field may be missing; ``warnings`` says why."""

    captured_at: datetime | None = (
        None  # naive local camera time, sub-seconds included when present
    )
    utc_offset: str | None = None  # "+02:00" from OffsetTimeOriginal/OffsetTime, when present
    timestamp_tag: str | None = None  # which tag captured_at came from (DateTimeOriginal, ...)
    latitude: float | None = None  # signed decimal degrees (south negative)
    longitude: float | None = None  # signed decimal degrees (west negative)
    altitude: float | None = None  # metres, negative below sea level
    make: str | None = None
    model: str | None = None
    serial: str | None = None
    width: int | None = None
    height: int | None = None
    orientation: int | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)
