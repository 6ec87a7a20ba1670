"""Which files are media, by extension: the one list (standard library only, so the settings,
the edge box and the video reader all read it without importing PyAV or pydantic)."""

from __future__ import annotations

__all__ = ["MEDIA_EXTENSIONS", "PHOTO_EXTENSIONS", "VIDEO_EXTENSIONS"]

#: Still photos picked up by default (what Pillow decodes for the detectors).
PHOTO_EXTENSIONS = ("jpg", "jpeg", "png", "tif", "tiff")
#: Clip types picked up by default (any codec FFmpeg decodes; models_ml/video.py).
VIDEO_EXTENSIONS = ("mp4", "avi", "mov")
#: The default of the ``extensions`` setting: photos and clips.
MEDIA_EXTENSIONS = PHOTO_EXTENSIONS + VIDEO_EXTENSIONS
