"""Alert thumbnails: a fresh JPEG (no EXIF, so no GPS) at most THUMBNAIL_PX wide or high with
the matched boxes drawn and, for channels that are not rangers', people blurred; for a clip,
the sampled frame of the best box."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Sequence

from flows.access.privacy import blur_boxes
from flows.alerts.rules import Hit
from flows.pipeline.discovery import read_file
from flows.settings import Settings

log = logging.getLogger(__name__)

THUMBNAIL_PX = 640


def thumbnail(
    data: bytes, boxes: Iterable[tuple[float, float, float, float]], max_pixels: int,
    size: int = THUMBNAIL_PX, blur: Iterable[tuple[float, float, float, float]] = (),
) -> bytes | None:  # fmt: skip
    """A JPEG at most ``size`` px wide or high with the ``blur`` boxes blurred and the
    ``boxes`` drawn; None if it cannot be made. A new encode: no EXIF (GPS) goes with it."""
    from PIL import ImageDraw

    from models_ml import ImageRejected, decode_rgb, open_image

    try:
        rgb = decode_rgb(open_image(data, max_pixels=max_pixels), draft_size=(size, size))
        rgb.thumbnail((size, size))
        blur_boxes(rgb, blur)
        draw = ImageDraw.Draw(rgb)
        width = max(2, max(rgb.size) // 200)
        for x, y, w, h in boxes:
            box = (x * rgb.width, y * rgb.height, (x + w) * rgb.width, (y + h) * rgb.height)
            draw.rectangle(box, outline=(255, 40, 40), width=width)
        out = io.BytesIO()
        rgb.save(out, format="JPEG", quality=80)
        return out.getvalue()
    except (ImageRejected, OSError, ValueError) as exc:
        log.warning("no thumbnail for an alert (%s); the alert goes without one", exc)
        return None


def hit_thumbnail(
    settings: Settings, hit: Hit, people: Sequence[tuple[float, float, float, float]] | None = None
) -> bytes | None:
    """The alert's thumbnail; ``people`` given (channels that are not rangers'): those person
    boxes blurred (for a clip: every person box of the frame shown)."""
    from flows.pipeline import video as _video
    from flows.pipeline.intake import is_clip

    data = b""
    if not _video.is_video(hit.file_path):
        try:
            data = read_file(hit.source_uri, hit.file_path)
        except OSError as exc:
            log.warning("cannot read %s for a thumbnail (%s)", hit.file_path, exc)
            return None
    if is_clip(hit.file_path, data):  # the sampled frame of the best box, with its boxes
        seen = [(s.model, s.label, s.confidence) for s in hit.seen]
        return _video.clip_thumbnail(
            settings.warehouse_path, hit.source_uri, hit.file_path, hit.media_id, seen,
            THUMBNAIL_PX, blur_people=people is not None,
        )  # fmt: skip
    boxes = [s.bbox for s in hit.seen if s.bbox is not None]
    return thumbnail(data, boxes, settings.max_image_pixels, blur=people or ())
