"""Video clips in the pipeline: streamed hashing, sampled-frame detection, roll-up, annotation.

Plain functions, no Prefect. A clip is read through fsspec as a file object (local clips by
path), so its bytes are never all in memory; only the sampled frames are decoded.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fsspec.implementations.local import LocalFileSystem
from PIL import Image, ImageDraw

from flows.access.privacy import blur_boxes
from flows.pipeline.discovery import open_source
from flows.store import ids
from models_ml import DetectorEnsemble
from models_ml._types import Detection
from models_ml.video import (
    SampledFrame,
    VideoError,
    VideoInfo,
    frame_at,
    is_video,
    sample_frames,
    write_clip,
)

__all__ = [
    "ClipResult",
    "FrameResult",
    "VideoError",
    "analyse_clip",
    "annotate_clip",
    "clip_thumbnail",
    "draw_boxes",
    "is_video",
    "open_file",
    "rollup",
    "sha256_stream",
]

HASH_CHUNK = 8 * 1024 * 1024
COLOURS = {"animal": (255, 200, 0), "person": (255, 40, 40), "vehicle": (40, 160, 255)}
#: The threshold of a category ``thresholds`` does not name (settings.detection_thresholds
#: names every category dbt counts): as in dbt's detection_rules, it never counts.
NEVER_COUNTED = float("inf")


@contextmanager
def open_file(uri: str, rel_path: str) -> Iterator[str | IO[bytes]]:
    """A clip under the source root: its local path, or an fsspec file object (streamed)."""
    fs, root = open_source(uri)
    full = f"{root}/{rel_path}"
    if isinstance(fs, LocalFileSystem):
        yield full
        return
    with fs.open(full, "rb", block_size=HASH_CHUNK) as fh:
        yield fh


def sha256_stream(uri: str, rel_path: str, chunk: int = HASH_CHUNK) -> tuple[str, int]:
    """The media_id (SHA-256, hex) and size of a file, read ``chunk`` bytes at a time."""
    fs, root = open_source(uri)
    with fs.open(f"{root}/{rel_path}", "rb") as fh:
        return ids.media_id_of_chunks(iter(lambda: fh.read(chunk), b""))


@dataclass
class FrameResult:
    frame_number: int
    time_s: float
    detections: list[Detection]


@dataclass
class ClipResult:
    info: VideoInfo
    frames: list[FrameResult] = field(default_factory=list)
    error: VideoError | None = None  # the clip broke after ``frames`` were read


def analyse_clip(
    source: str | IO[bytes],
    info: VideoInfo,
    ensemble: DetectorEnsemble,
    conf_floor: float,
    rate: float = 1.0,
    max_frames: int | None = None,
    on_frame: Callable[[SampledFrame, list[Detection]], None] | None = None,
) -> ClipResult:
    """Run the detectors on the sampled frames of a clip (one frame in memory at a time)."""
    result = ClipResult(info)
    try:
        for frame in sample_frames(source, rate=rate, max_frames=max_frames):
            dets = ensemble.detect(frame.image, conf_floor=conf_floor)
            result.frames.append(FrameResult(frame.frame_number, frame.time_s, dets))
            if on_frame is not None:
                on_frame(frame, dets)
    except VideoError as exc:
        if not result.frames:
            raise
        result.error = exc
    return result


def counting_models(ensemble: DetectorEnsemble) -> dict[str, str]:
    """The detector counted per category (as the marts count): the first member keeping it."""
    out: dict[str, str] = {}
    for member in ensemble.members:
        for category in member.categories:
            out.setdefault(category, member.detector.model_id)
    return out


def rollup(
    frames: list[FrameResult],
    thresholds: dict[str, float],
    counted: dict[str, str] | None = None,
) -> dict[str, dict[str, float]]:
    """Per category: the best confidence in any frame and MaxN (most boxes in one frame).

    Only boxes at or above the category's threshold, and (with ``counted``, category ->
    model id) only the counted detector's boxes, count towards MaxN: two detectors boxing
    the same animal is one animal.
    """
    out: dict[str, dict[str, float]] = {}
    for fr in frames:
        per_frame: dict[str, int] = {}
        for det in fr.detections:
            entry = out.setdefault(det.category, {"max_confidence": 0.0, "max_n": 0})
            entry["max_confidence"] = max(entry["max_confidence"], float(det.confidence))
            if counted is not None and counted.get(det.category) != det.model:
                continue
            if det.confidence >= thresholds.get(det.category, NEVER_COUNTED):
                per_frame[det.category] = per_frame.get(det.category, 0) + 1
        for cat, n in per_frame.items():
            out[cat]["max_n"] = max(out[cat]["max_n"], n)
    return out


def draw_boxes(
    img: Image.Image, boxes: list[tuple[str, str, float, tuple[float, float, float, float]]]
) -> Image.Image:
    """``img`` with each (category, label, confidence, normalised xywh) box and its label."""
    out = img.convert("RGB")
    draw = ImageDraw.Draw(out)
    width = max(2, max(out.size) // 200)
    for category, label, conf, (x, y, w, h) in boxes:
        colour = COLOURS.get(category, (255, 255, 255))
        box = (x * out.width, y * out.height, (x + w) * out.width, (y + h) * out.height)
        draw.rectangle(box, outline=colour, width=width)
        text = f"{label} {conf:.2f}"
        tx, ty = box[0] + width, max(0.0, box[1] - 12)
        draw.rectangle((tx - 1, ty, tx + 6 * len(text) + 1, ty + 11), fill=colour)
        draw.text((tx, ty), text, fill=(0, 0, 0))
    return out


def draw_banner(img: Image.Image, text: str) -> None:
    """``text`` on a dark band across the top of ``img`` (in place)."""
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, img.width, 14), fill=(0, 0, 0))
    draw.text((4, 1), text, fill=(255, 255, 255))


def annotate_clip(
    source: str,
    out_path: Path,
    ensemble: DetectorEnsemble,
    thresholds: dict[str, float],
    conf_floor: float,
    rate: float = 1.0,
    blur_people: bool = False,
    label_frame: Callable[[Any, list[Detection]], str] | None = None,
) -> tuple[ClipResult, int]:
    """Write ``out_path``: every sampled frame with its boxes (above the thresholds) drawn,
    as an MP4 playing at ``rate`` frames per second (H.264 when FFmpeg has it); with
    ``blur_people``, every person box of a frame (any confidence) blurred first; with
    ``label_frame`` (a behaviour head's verdict), its text in a banner on top."""
    from models_ml.video import probe

    info = probe(source)
    result = ClipResult(info)
    counted = counting_models(ensemble)

    def frames() -> Iterator[Image.Image]:
        for frame in sample_frames(source, rate=rate):
            dets = ensemble.detect(frame.image, conf_floor=conf_floor)
            result.frames.append(FrameResult(frame.frame_number, frame.time_s, dets))
            kept = [
                (d.category, d.label, d.confidence, (d.bbox.x, d.bbox.y, d.bbox.w, d.bbox.h))
                for d in dets
                if d.confidence >= thresholds.get(d.category, NEVER_COUNTED)
                and counted.get(d.category, d.model) == d.model
            ]
            image = frame.image.convert("RGB")
            if blur_people:
                people = [d.bbox for d in dets if d.category == "person"]
                blur_boxes(image, [(b.x, b.y, b.w, b.h) for b in people])
            drawn = draw_boxes(image, kept)
            if label_frame is not None:
                draw_banner(drawn, label_frame(frame, dets))
            yield drawn

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fps = rate if rate > 0 else (info.fps or 1.0)
    written = write_clip(str(out_path), frames(), fps=fps)
    return result, written


def clip_thumbnail(
    warehouse: Path,
    source_uri: str,
    file_path: str,
    media_id: str,
    seen: list[tuple[str, str, float]],
    size: int = 640,
    blur_people: bool = False,
) -> bytes | None:
    """A JPEG of the frame holding the best of ``seen`` (model, label, confidence) boxes,
    with the matching boxes of that frame drawn (and with ``blur_people``, every person box
    of the frame blurred first); None when the clip cannot be read."""
    from flows.store import warehouse as _warehouse

    if not seen:
        return None
    labels = {(m, lab) for m, lab, _ in seen}
    floor = min(c for _, _, c in seen)
    frame_number: int | None = None
    with _warehouse.connect(warehouse) as con:
        for model, label, conf in sorted(seen, key=lambda s: -s[2]):  # species rows: no box
            row = con.execute(
                "select frame_number from raw.detections where media_id = ? and model_name = ? "
                "and lower(label) = ? and frame_number is not null "
                "order by abs(confidence - ?), frame_number limit 1",
                [media_id, model, label, conf],
            ).fetchone()
            if row is not None:
                frame_number = int(row[0])
                break
        if frame_number is None:
            return None
        rows = con.execute(
            "select model_name, lower(label), category, confidence, bbox_x, bbox_y, bbox_w, "
            "bbox_h from raw.detections where media_id = ? and frame_number = ? "
            "and confidence >= ?",
            [media_id, frame_number, floor],
        ).fetchall()
        people = con.execute(
            "select bbox_x, bbox_y, bbox_w, bbox_h from raw.detections where media_id = ? "
            "and frame_number = ? and category = 'person' and bbox_x is not null",
            [media_id, frame_number],
        ).fetchall()
    boxes = [
        (cat, lab, float(c), (float(x), float(y), float(w), float(h)))
        for m, lab, cat, c, x, y, w, h in rows
        if (m, lab) in labels
    ]
    try:
        with open_file(source_uri, file_path) as src:
            img = frame_at(src, frame_number)
    except (VideoError, OSError) as exc:
        import logging

        logging.getLogger(__name__).warning("no thumbnail from %s (%s)", file_path, exc)
        return None
    img = img.convert("RGB")
    img.thumbnail((size, size))
    if blur_people:
        blur_boxes(img, [(float(x), float(y), float(w), float(h)) for x, y, w, h in people])
    out = io.BytesIO()
    draw_boxes(img, boxes).save(out, format="JPEG", quality=80)
    return out.getvalue()
