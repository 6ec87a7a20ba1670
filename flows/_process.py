"""One batch of new files: read, hash, read EXIF, detect, and load, as plain functions.

Bad input never stops a batch: every file that cannot be used gets a quarantine row with a
reason and what to do, and the rest of the batch goes through.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image

from flows import _warehouse
from flows._discovery import SourceFile, read_file, sha256_hex, site_and_camera
from models_ml import DetectorEnsemble, ImageRejected, decode_rgb, open_image, read_exif
from models_ml._types import CATEGORY_IDS, Detection, ExifRecord

log = logging.getLogger(__name__)

#: What each image format is called in file names.
FORMAT_EXTENSIONS = {
    "JPEG": {"jpg", "jpeg", "jpe"},
    "PNG": {"png"},
    "TIFF": {"tif", "tiff"},
    "MPO": {"jpg", "jpeg"},  # multi-picture JPEG, written by some cameras
    "WEBP": {"webp"},
}


@dataclass
class BatchStats:
    files: int = 0
    images: int = 0
    duplicates: int = 0
    detections: int = 0
    quarantined: int = 0  # skipped files
    warnings: int = 0  # processed, with a recorded problem
    read_s: float = 0.0
    detect_s: float = 0.0
    load_s: float = 0.0
    by_reason: dict[str, int] = field(default_factory=dict)

    def add(self, other: BatchStats) -> None:
        for name in ("files", "images", "duplicates", "detections", "quarantined", "warnings"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("read_s", "detect_s", "load_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, n in other.by_reason.items():
            self.by_reason[reason] = self.by_reason.get(reason, 0) + n


@dataclass(frozen=True)
class BatchContext:
    """Everything a batch needs besides its files."""

    source_uri: str
    warehouse: Path
    run_id: str
    layout: str | None
    max_image_pixels: int
    inference_floor: float
    ensemble: DetectorEnsemble


@lru_cache(maxsize=4)
def load_ensemble(
    model_dir: Path,
    animal_model: str,
    general_model: str,
    intra_op_threads: int,
    person_cue_model: str | None = None,
) -> DetectorEnsemble:
    """The detectors of this process: onnxruntime sessions are created once, then reused."""
    return DetectorEnsemble.from_models_dir(
        model_dir,
        animal_model=animal_model,
        general_model=general_model,
        intra_op_threads=intra_op_threads or None,
        person_cue_model=person_cue_model or None,
    )


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _quarantine_row(
    ctx: BatchContext,
    file: SourceFile,
    media_id: str | None,
    reason: str,
    error: str,
    action: str,
) -> dict[str, Any]:
    key = "\x1f".join([ctx.source_uri, file.path, media_id or "", reason])
    return {
        "quarantine_id": hashlib.md5(key.encode(), usedforsecurity=False).hexdigest(),
        "source_uri": ctx.source_uri,
        "file_path": file.path,
        "media_id": media_id,
        "file_size": file.size,
        "reason": reason,
        "error": error,
        "action": action,
        "run_id": ctx.run_id,
        "quarantined_at": _now(),
    }


def _file_row(
    ctx: BatchContext, file: SourceFile, media_id: str | None, status: str
) -> dict[str, Any]:
    return {
        "source_uri": ctx.source_uri,
        "file_path": file.path,
        "file_size": file.size,
        "file_modified_at": file.modified_at,
        "media_id": media_id,
        "status": status,
        "run_id": ctx.run_id,
        "seen_at": _now(),
    }


@dataclass
class _Prepared:
    """A new image, opened and decoded, ready for the detectors."""

    file: SourceFile
    media_id: str
    image_format: str
    exif: ExifRecord
    rgb: Image.Image | None = None
    rejected: ImageRejected | None = None
    exif_error: str | None = None


def _prepare(ctx: BatchContext, file: SourceFile, data: bytes, media_id: str) -> _Prepared:
    try:
        img = open_image(data, max_pixels=ctx.max_image_pixels)
    except ImageRejected as exc:
        return _Prepared(file, media_id, "", ExifRecord(), rejected=exc)
    fmt = img.format or ""
    exif_error = None
    try:
        exif = read_exif(data)
    except Exception as exc:  # a header Pillow opened but whose EXIF it cannot parse
        exif, exif_error = (
            ExifRecord(width=img.width, height=img.height),
            f"{type(exc).__name__}: {exc}",
        )
    try:
        rgb = decode_rgb(img, draft_size=ctx.ensemble.draft_size)
    except ImageRejected as exc:
        return _Prepared(file, media_id, fmt, exif, rejected=exc, exif_error=exif_error)
    return _Prepared(file, media_id, fmt, exif, rgb=rgb, exif_error=exif_error)


def _local(utc: datetime | None) -> datetime | None:
    """A UTC file time as this machine's wall time: cameras (and FAT cards) keep local time."""
    return utc.replace(tzinfo=UTC).astimezone().replace(tzinfo=None) if utc else None


def _media_row(ctx: BatchContext, p: _Prepared) -> dict[str, Any]:
    exif = p.exif
    site, camera = site_and_camera(p.file.path, ctx.layout)
    name = p.file.path.rsplit("/", 1)[-1]
    captured_at, source = (
        (exif.captured_at, "exif") if exif.captured_at else (_local(p.file.modified_at), "mtime")
    )
    return {
        "media_id": p.media_id,
        "source_uri": ctx.source_uri,
        "file_path": p.file.path,
        "file_name": name,
        "file_extension": name.rsplit(".", 1)[-1].lower() if "." in name else "",
        "file_size": p.file.size,
        "file_modified_at": p.file.modified_at,
        "media_type": "image",
        "image_format": p.image_format,
        "site_id": site,
        "camera_id": camera,
        "captured_at": captured_at,
        "utc_offset": exif.utc_offset,
        "timestamp_source": source,
        "timestamp_tag": exif.timestamp_tag if source == "exif" else None,
        "latitude": exif.latitude,
        "longitude": exif.longitude,
        "altitude": exif.altitude,
        "camera_make": exif.make,
        "camera_model": exif.model,
        "camera_serial": exif.serial,
        "width": exif.width,
        "height": exif.height,
        "orientation": exif.orientation,
        "exif_warnings": "; ".join(exif.warnings) or None,
        "run_id": ctx.run_id,
        "ingested_at": _now(),
    }


def _detection_rows(
    ctx: BatchContext, media_id: str, dets: list[Detection]
) -> list[dict[str, Any]]:
    rows = []
    for index, det in enumerate(dets):
        name, _, version = det.model.partition("@")
        key = f"{media_id}\x1f{det.model}\x1f{index}"
        rows.append(
            {
                "detection_id": hashlib.md5(key.encode(), usedforsecurity=False).hexdigest(),
                "media_id": media_id,
                "model_name": name,
                "model_version": version,
                "category": det.category,
                "category_id": CATEGORY_IDS[det.category],
                "label": det.label,
                "confidence": round(float(det.confidence), 6),
                "bbox_x": det.bbox.x,
                "bbox_y": det.bbox.y,
                "bbox_w": det.bbox.w,
                "bbox_h": det.bbox.h,
                "frame_number": None,
                "run_id": ctx.run_id,
                "detected_at": _now(),
            }
        )
    return rows


def _exif_problems(p: _Prepared) -> str:
    """EXIF that is there but wrong. An image with no EXIF at all is normal, not a problem."""
    problems = [w for w in p.exif.warnings if not w.startswith("no EXIF")]
    return "; ".join(filter(None, [p.exif_error, *problems]))


def _extension_warning(p: _Prepared) -> str | None:
    ext = p.file.path.rsplit(".", 1)[-1].lower()
    expected = FORMAT_EXTENSIONS.get(p.image_format)
    if expected is None or ext in expected:
        return None
    return (
        f"the file is named .{ext} but holds a {p.image_format} image; it was processed as "
        f"{p.image_format}. Rename it to .{sorted(expected)[0]} so other tools read it too."
    )


def process_batch(
    ctx: BatchContext,
    files: list[SourceFile],
    *,
    on_image: Callable[[int], None] | None = None,
) -> BatchStats:
    """Read, hash, check EXIF, detect and load one batch in one transaction."""
    stats = BatchStats(files=len(files))
    media: list[dict[str, Any]] = []
    detections: list[dict[str, Any]] = []
    quarantine: list[dict[str, Any]] = []
    file_rows: list[dict[str, Any]] = []

    def quarantine_file(
        file: SourceFile, media_id: str | None, reason: str, error: str, action: str
    ) -> None:
        quarantine.append(_quarantine_row(ctx, file, media_id, reason, error, action))
        stats.by_reason[reason] = stats.by_reason.get(reason, 0) + 1
        if action == "skipped":
            stats.quarantined += 1
        else:
            stats.warnings += 1

    # 1. Read and hash every file: identity is the SHA-256 of the bytes.
    t0 = time.perf_counter()
    contents: dict[str, tuple[SourceFile, bytes]] = {}
    hashed: list[tuple[SourceFile, str]] = []
    for file in files:
        try:
            data = read_file(ctx.source_uri, file.path)
        except OSError as exc:
            quarantine_file(
                file,
                None,
                "unreadable",
                f"could not read the file ({exc}); check permissions and the storage, "
                "it will be tried again on the next run",
                "skipped",
            )
            continue
        if not data:
            quarantine_file(
                file,
                None,
                "empty_file",
                "the file is 0 bytes: the copy from the card failed or was "
                "interrupted; copy it again from the card",
                "skipped",
            )
            file_rows.append(_file_row(ctx, file, None, "quarantined"))
            continue
        media_id = sha256_hex(data)
        hashed.append((file, media_id))
        contents.setdefault(media_id, (file, data))

    with _warehouse.connect(ctx.warehouse) as con:
        known = _warehouse.known_media(con, list(contents))
    new_ids = [m for m in contents if m not in known]
    for file, media_id in hashed:
        first = contents[media_id][0] is file and media_id in new_ids
        if not first:
            stats.duplicates += 1
            file_rows.append(_file_row(ctx, file, media_id, "duplicate"))

    # 2. Open, read EXIF and decode on two threads while the detectors run on this one.
    stats.read_s += time.perf_counter() - t0
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="decode") as pool:
        prepared = pool.map(lambda m: _prepare(ctx, contents[m][0], contents[m][1], m), new_ids)
        while True:
            t1 = time.perf_counter()
            p = next(prepared, None)
            stats.read_s += time.perf_counter() - t1  # decoding not hidden behind inference
            if p is None:
                break
            if p.rejected is not None or p.rgb is None:
                reason = p.rejected.reason if p.rejected else "corrupt"
                quarantine_file(p.file, p.media_id, reason, str(p.rejected), "skipped")
                file_rows.append(_file_row(ctx, p.file, p.media_id, "quarantined"))
                continue
            t2 = time.perf_counter()
            dets = ctx.ensemble.detect(p.rgb, conf_floor=ctx.inference_floor)
            stats.detect_s += time.perf_counter() - t2
            row = _media_row(ctx, p)
            media.append(row)
            detections.extend(_detection_rows(ctx, p.media_id, dets))
            file_rows.append(_file_row(ctx, p.file, p.media_id, "ingested"))
            problems = _exif_problems(p)
            if problems:
                quarantine_file(
                    p.file,
                    p.media_id,
                    "exif_unreadable" if p.exif_error else "exif_invalid",
                    f"EXIF is damaged or implausible ({problems}); the image was processed "
                    f"and its time taken from the {row['timestamp_source']}. Check the "
                    "camera's clock and settings.",
                    "processed",
                )
            warning = _extension_warning(p)
            if warning:
                quarantine_file(p.file, p.media_id, "wrong_extension", warning, "processed")
            stats.images += 1
            stats.detections += len(dets)
            if on_image:
                on_image(1)

    # 3. Load everything in one transaction.
    t3 = time.perf_counter()
    with _warehouse.connect(ctx.warehouse) as con:
        _warehouse.load_batch(
            con, media=media, detections=detections, quarantine=quarantine, files=file_rows
        )
    stats.load_s += time.perf_counter() - t3
    return stats
