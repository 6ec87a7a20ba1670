"""trapflow's inference library: images in, typed detections out (numpy, Pillow, onnxruntime).

No Prefect or Streamlit in here. onnxruntime telemetry is switched off before anything in
this package can import it (a user's own value wins).
"""

import os

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from ._imageops import (
    DEFAULT_MAX_PIXELS,
    ImageRejected,
    decode_rgb,
    letterbox,
    load_rgb,
    open_image,
)
from ._types import (
    CATEGORY_IDS,
    DETECTION_CATEGORIES,
    BBox,
    Detection,
    ExifRecord,
    PreprocessedImage,
)
from .detector import MD_CLASS_NAMES, YoloxDetector
from .ensemble import DetectorEnsemble
from .exif import read_exif
from .person_cue import APPAREL_AND_GEAR, ApparelPersonCue
from .registry import ModelSpec, load_manifest
from .session import create_session

__all__ = [
    "APPAREL_AND_GEAR",
    "CATEGORY_IDS",
    "DEFAULT_MAX_PIXELS",
    "DETECTION_CATEGORIES",
    "MD_CLASS_NAMES",
    "ApparelPersonCue",
    "BBox",
    "Detection",
    "DetectorEnsemble",
    "ExifRecord",
    "ImageRejected",
    "ModelSpec",
    "PreprocessedImage",
    "YoloxDetector",
    "create_session",
    "decode_rgb",
    "letterbox",
    "load_manifest",
    "load_rgb",
    "open_image",
    "read_exif",
]
