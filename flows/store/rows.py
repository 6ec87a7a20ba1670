"""One typed builder per raw table row: what a photo, a clip, a box, a species label, a
quarantined file or a listed file becomes in the warehouse (or a lake).

The ingest pipeline, ``trapflow import mdjson`` and the tasks all build their rows here, so a
row means the same whichever path wrote it (which time wins, how a clip's container time is
shown, how an id is made). Each row is a frozen dataclass; :meth:`as_row` gives the column
dict the loaders take (columns left out are null). Plain functions, no Prefect, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flows.pipeline.quarantine import SKIPPED, QuarantineReason
from flows.store import ids
from models_ml._types import CATEGORY_IDS

if TYPE_CHECKING:
    from models_ml._types import Detection, ExifRecord
    from models_ml.video import VideoInfo

__all__ = [
    "ClassificationRow",
    "DetectionFlagRow",
    "DetectionRow",
    "FrameLabelRow",
    "MediaFileRow",
    "MediaLabelRow",
    "MediaRow",
    "QuarantineRow",
    "classification_row",
    "clip_media_row",
    "detection_row",
    "detection_rows",
    "frame_label_row",
    "image_media_row",
    "imported_failure_row",
    "imported_media_row",
    "local_wall_time",
    "media_file_row",
    "media_label_row",
    "now",
    "quarantine_row",
]


def now() -> datetime:
    """UTC now, naive: how every ``*_at`` column of raw.* is stored."""
    return datetime.now(UTC).replace(tzinfo=None)


def local_wall_time(utc: datetime | None) -> datetime | None:
    """A UTC file time as this machine's wall time: cameras (and FAT cards) keep local time."""
    return utc.replace(tzinfo=UTC).astimezone().replace(tzinfo=None) if utc else None


class _Row:
    def as_row(self) -> dict[str, Any]:
        """The row as the loaders take it: column name -> value."""
        return dict(vars(self))


def _extension(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


# ------------------------------------------------------------------------------- raw.media


@dataclass(frozen=True)
class MediaRow(_Row):
    media_id: str
    source_uri: str
    file_path: str
    file_name: str
    file_extension: str
    file_size: int
    file_modified_at: datetime | None
    media_type: str  # 'image' or 'video'
    image_format: str  # what the bytes are (JPEG, PNG, ...; a clip's codec in upper case)
    site_id: str
    camera_id: str
    captured_at: datetime | None
    utc_offset: str | None
    timestamp_source: str  # exif / ocr / container / mtime
    timestamp_tag: str | None
    run_id: str
    ingested_at: datetime
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    camera_serial: str | None = None
    width: int | None = None
    height: int | None = None
    orientation: int | None = None
    exif_warnings: str | None = None
    # evidence for the clock checks (fct_time_problems); null when not known
    is_greyscale: bool | None = None  # no colour in the decoded photo: an IR night photo
    ocr_captured_at: datetime | None = None  # the info bar's printed time, whenever it was read
    file_local_at: datetime | None = None  # file_modified_at as this machine's wall time
    # clips only
    duration_s: float | None = None
    fps: float | None = None
    frame_count: int | None = None
    frames_sampled: int | None = None
    codec: str | None = None
    container_format: str | None = None


def image_media_row(
    *,
    media_id: str,
    source_uri: str,
    file_path: str,
    file_size: int,
    file_modified_at: datetime | None,
    site_id: str,
    camera_id: str,
    image_format: str,
    exif: ExifRecord | None,
    width: int | None,
    height: int | None,
    run_id: str,
    ingested_at: datetime,
    ocr_at: datetime | None = None,
    ocr_warning: str | None = None,
    is_greyscale: bool | None = None,
) -> MediaRow:
    """A photo: its time from EXIF, else the info bar's printed time (``ocr_at``), else the
    file's mtime as local wall time. ``exif`` None: no EXIF could be parsed. ``ocr_at`` and the
    file's wall time are also kept beside the chosen time (the clock checks compare them)."""
    captured_at: datetime | None
    if exif is not None and exif.captured_at:
        captured_at, source, tag = exif.captured_at, "exif", exif.timestamp_tag
    elif ocr_at:
        captured_at, source, tag = ocr_at, "ocr", "info_bar"
    else:
        captured_at, source, tag = local_wall_time(file_modified_at), "mtime", None
    warnings = [*(exif.warnings if exif is not None else ()), ocr_warning]
    name = file_path.rsplit("/", 1)[-1]
    return MediaRow(
        media_id=media_id, source_uri=source_uri, file_path=file_path, file_name=name,
        file_extension=_extension(name), file_size=file_size, file_modified_at=file_modified_at,
        media_type="image", image_format=image_format, site_id=site_id, camera_id=camera_id,
        captured_at=captured_at, utc_offset=exif.utc_offset if exif is not None else None,
        timestamp_source=source, timestamp_tag=tag,
        latitude=exif.latitude if exif is not None else None,
        longitude=exif.longitude if exif is not None else None,
        altitude=exif.altitude if exif is not None else None,
        camera_make=exif.make if exif is not None else None,
        camera_model=exif.model if exif is not None else None,
        camera_serial=exif.serial if exif is not None else None,
        width=width, height=height,
        orientation=exif.orientation if exif is not None else None,
        exif_warnings="; ".join(filter(None, warnings)) or None,
        is_greyscale=is_greyscale, ocr_captured_at=ocr_at,
        file_local_at=local_wall_time(file_modified_at),
        run_id=run_id, ingested_at=ingested_at,
    )  # fmt: skip


def clip_media_row(
    *,
    media_id: str,
    source_uri: str,
    file_path: str,
    file_size: int,
    file_modified_at: datetime | None,
    site_id: str,
    camera_id: str,
    info: VideoInfo,
    run_id: str,
    ingested_at: datetime,
    frames_sampled: int | None = None,
) -> MediaRow:
    """A clip: its time from the container's tags (QuickTime's UTC shown as this machine's
    wall time), else the file's mtime as local wall time."""
    created = info.created_at
    if created is not None:
        source, tag = "container", info.created_tag
        captured_at = (
            local_wall_time(created.astimezone(UTC).replace(tzinfo=None))
            if created.tzinfo is not None
            else created
        )
    else:
        captured_at, source, tag = local_wall_time(file_modified_at), "mtime", None
    name = file_path.rsplit("/", 1)[-1]
    return MediaRow(
        media_id=media_id, source_uri=source_uri, file_path=file_path, file_name=name,
        file_extension=_extension(name), file_size=file_size, file_modified_at=file_modified_at,
        media_type="video", image_format=info.codec.upper(), site_id=site_id,
        camera_id=camera_id, captured_at=captured_at, utc_offset=None,
        timestamp_source=source, timestamp_tag=tag,
        camera_make=info.tags.get("make") or info.tags.get("com.apple.quicktime.make"),
        camera_model=info.tags.get("model") or info.tags.get("com.apple.quicktime.model"),
        width=info.width, height=info.height, duration_s=info.duration_s, fps=info.fps,
        frame_count=info.frame_count, frames_sampled=frames_sampled, codec=info.codec,
        container_format=info.container, run_id=run_id, ingested_at=ingested_at,
    )  # fmt: skip


def imported_media_row(
    *,
    media_id: str,
    source_uri: str,
    file_path: str,
    file_name: str | None,
    mediatype: str,
    site_id: str,
    camera_id: str,
    captured_at: datetime,
    run_id: str,
    ingested_at: datetime,
) -> MediaRow:
    """A media file an imported package lists (Camtrap DP media.csv) whose bytes are not here
    (``file_path`` may be a URL): its size is 0 and its time is the package's ``timestamp``, an
    aware datetime, kept as camera-local wall time with its offset (timestamp_source
    'camtrapdp'). ``mediatype`` is the IANA media type (image/jpeg, video/mp4)."""
    offset = captured_at.utcoffset()
    utc_offset = None
    if offset is not None:
        minutes = int(offset.total_seconds() // 60)
        sign = "-" if minutes < 0 else "+"
        utc_offset = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    name = file_name or file_path.rstrip("/").rsplit("/", 1)[-1]
    kind, _, subtype = mediatype.lower().partition("/")
    image_format = {"jpeg": "JPEG", "png": "PNG", "tiff": "TIFF"}.get(subtype, subtype.upper())
    return MediaRow(
        media_id=media_id, source_uri=source_uri, file_path=file_path, file_name=name,
        file_extension=_extension(name), file_size=0, file_modified_at=None,
        media_type="video" if kind == "video" else "image", image_format=image_format,
        site_id=site_id, camera_id=camera_id, captured_at=captured_at.replace(tzinfo=None),
        utc_offset=utc_offset, timestamp_source="camtrapdp", timestamp_tag="timestamp",
        run_id=run_id, ingested_at=ingested_at,
    )  # fmt: skip


# ------------------------------------------------------------------------------- raw.detections


@dataclass(frozen=True)
class DetectionRow(_Row):
    detection_id: str
    media_id: str
    model_name: str
    model_version: str
    category: str
    category_id: int
    label: str
    confidence: float
    bbox_x: float
    bbox_y: float
    bbox_w: float
    bbox_h: float
    frame_number: int | None
    frame_time_s: float | None
    run_id: str
    detected_at: datetime


def detection_row(
    *,
    media_id: str,
    model_name: str,
    model_version: str,
    index: int,
    category: str,
    label: str,
    confidence: float,
    bbox: Sequence[float],
    run_id: str,
    detected_at: datetime,
    frame_number: int | None = None,
    frame_time_s: float | None = None,
    frame_in_id: bool = True,
) -> DetectionRow:
    """The ``index``-th box of a model on a photo (or on frame ``frame_number`` of a clip);
    ``bbox`` is normalised ``[x, y, w, h]``. Imported boxes are numbered over the whole clip,
    so their ids leave the frame out (``frame_in_id`` False)."""
    x, y, w, h = bbox
    model_id = f"{model_name}@{model_version}"
    return DetectionRow(
        detection_id=ids.detection_id(
            media_id, model_id, index, frame_number if frame_in_id else None
        ),
        media_id=media_id, model_name=model_name, model_version=model_version,
        category=category, category_id=CATEGORY_IDS[category], label=label,
        confidence=confidence, bbox_x=float(x), bbox_y=float(y), bbox_w=float(w),
        bbox_h=float(h), frame_number=frame_number, frame_time_s=frame_time_s, run_id=run_id,
        detected_at=detected_at,
    )  # fmt: skip


def detection_rows(
    media_id: str,
    dets: Sequence[Detection],
    run_id: str,
    frame_number: int | None = None,
    frame_time_s: float | None = None,
) -> list[DetectionRow]:
    """The boxes one detector pass found (confidence kept to 6 decimals)."""
    out = []
    for index, det in enumerate(dets):
        name, _, version = det.model.partition("@")
        b = det.bbox
        out.append(
            detection_row(
                media_id=media_id,
                model_name=name,
                model_version=version,
                index=index,
                category=det.category,
                label=det.label,
                confidence=round(float(det.confidence), 6),
                bbox=(b.x, b.y, b.w, b.h),
                run_id=run_id,
                detected_at=now(),
                frame_number=frame_number,
                frame_time_s=frame_time_s,
            )
        )
    return out


# --------------------------------------------------------------------------- raw.classifications


@dataclass(frozen=True)
class ClassificationRow(_Row):
    classification_id: str
    detection_id: str
    media_id: str
    model_name: str
    model_version: str
    label: str
    probability: float
    rank: int
    geofence_status: str
    run_id: str
    classified_at: datetime


def classification_row(
    *,
    detection_id: str,
    media_id: str,
    model_name: str,
    model_version: str,
    label: str,
    probability: float,
    rank: int,
    geofence_status: str,
    run_id: str,
    classified_at: datetime,
    id_model: str | None = None,
) -> ClassificationRow:
    """The ``rank``-th species label of a box. Its id is keyed by ``id_model`` (default
    ``name@version``; imported MegaDetector JSON keys it by the classifier's name)."""
    model = id_model if id_model is not None else f"{model_name}@{model_version}"
    return ClassificationRow(
        classification_id=ids.classification_id(detection_id, model, rank),
        detection_id=detection_id, media_id=media_id, model_name=model_name,
        model_version=model_version, label=label, probability=probability, rank=rank,
        geofence_status=geofence_status, run_id=run_id, classified_at=classified_at,
    )  # fmt: skip


# ------------------------------------------------------------------------------- raw.frame_labels


@dataclass(frozen=True)
class FrameLabelRow(_Row):
    frame_label_id: str
    media_id: str
    frame_number: int
    frame_time_s: float
    model_name: str
    model_version: str
    label: str
    probability: float
    run_id: str
    labelled_at: datetime


def frame_label_row(
    *,
    media_id: str,
    frame_number: int,
    frame_time_s: float,
    model_id: str,
    label: str,
    probability: float,
    run_id: str,
    labelled_at: datetime,
) -> FrameLabelRow:
    """A behaviour head's top label of one sampled frame (``model_id`` name@version)."""
    name, _, version = model_id.partition("@")
    return FrameLabelRow(
        frame_label_id=ids.frame_label_id(media_id, model_id, frame_number), media_id=media_id,
        frame_number=frame_number, frame_time_s=frame_time_s, model_name=name,
        model_version=version, label=label, probability=probability, run_id=run_id,
        labelled_at=labelled_at,
    )  # fmt: skip


# ------------------------------------------------------------------------------- raw.media_labels


@dataclass(frozen=True)
class MediaLabelRow(_Row):
    media_label_id: str
    media_id: str
    category: str
    label: str | None
    source: str
    source_detail: str | None
    run_id: str
    imported_at: datetime
    count: int | None = None


def media_label_row(
    *,
    media_id: str,
    category: str,
    label: str | None,
    source: str,
    source_detail: str | None,
    run_id: str,
    imported_at: datetime,
    count: int | None = None,
) -> MediaLabelRow:
    """A human label that came with a photo (its folder, its XMP keywords), from a CSV or a
    Camtrap DP package (``count``: how many individuals it says; None: not given)."""
    return MediaLabelRow(
        media_label_id=ids.media_label_id(media_id, source, label), media_id=media_id,
        category=category, label=label, source=source, source_detail=source_detail,
        run_id=run_id, imported_at=imported_at, count=count,
    )  # fmt: skip


# ------------------------------------------------------------------------------- raw.quarantine


@dataclass(frozen=True)
class QuarantineRow(_Row):
    quarantine_id: str
    source_uri: str
    file_path: str
    media_id: str | None
    file_size: int | None
    reason: str
    error: str
    action: str
    run_id: str
    quarantined_at: datetime


def quarantine_row(
    *,
    source_uri: str,
    file_path: str,
    reason: QuarantineReason,
    error: str,
    run_id: str,
    media_id: str | None = None,
    file_size: int | None = None,
    action: str = SKIPPED,
    quarantined_at: datetime | None = None,
) -> QuarantineRow:
    """One problem with one file; ``error`` says what went wrong and what to do
    (``reason.message(problem)``). The id is the same on every poll."""
    if not isinstance(reason, QuarantineReason):
        raise TypeError(f"quarantine reason {reason!r} is not a QuarantineReason")
    return QuarantineRow(
        quarantine_id=ids.quarantine_id(source_uri, file_path, media_id, reason),
        source_uri=source_uri, file_path=file_path, media_id=media_id, file_size=file_size,
        reason=str(reason), error=error, action=action, run_id=run_id,
        quarantined_at=quarantined_at or now(),
    )  # fmt: skip


def imported_failure_row(
    *,
    source_uri: str,
    file_path: str,
    failure: str,
    run_id: str,
    media_id: str,
    file_size: int,
    quarantined_at: datetime,
) -> QuarantineRow:
    """A file another tool could not process (MegaDetector JSON's ``failure``): its text is
    kept verbatim as the reason, as that tool wrote it."""
    return QuarantineRow(
        quarantine_id=ids.quarantine_id(source_uri, file_path, media_id, failure),
        source_uri=source_uri, file_path=file_path, media_id=media_id, file_size=file_size,
        reason=failure,
        error=(
            f"the tool that wrote the imported results could not process it ({failure}); "
            "run 'trapflow run' on the folder to try again, or check the file"
        ),
        action=SKIPPED, run_id=run_id, quarantined_at=quarantined_at,
    )  # fmt: skip


# ------------------------------------------------------------------------------- raw.media_files


@dataclass(frozen=True)
class MediaFileRow(_Row):
    source_uri: str
    file_path: str
    file_size: int
    file_modified_at: datetime | None
    media_id: str | None
    status: str  # ingested / duplicate / quarantined
    run_id: str
    seen_at: datetime


def media_file_row(
    *,
    source_uri: str,
    file_path: str,
    file_size: int,
    file_modified_at: datetime | None,
    media_id: str | None,
    status: str,
    run_id: str,
) -> MediaFileRow:
    """A listed file and what became of it (the next poll skips it while unchanged)."""
    if status not in ("ingested", "duplicate", "quarantined"):
        raise ValueError(f"unknown media_files status {status!r}")
    return MediaFileRow(
        source_uri=source_uri, file_path=file_path, file_size=file_size,
        file_modified_at=file_modified_at, media_id=media_id, status=status, run_id=run_id,
        seen_at=now(),
    )  # fmt: skip


# --------------------------------------------------------------------------- raw.detection_flags


@dataclass(frozen=True)
class DetectionFlagRow(_Row):
    detection_id: str
    flag: str  # 'repeat_detection'
    cluster_id: str | None
    occurrences: int | None
    detail: str | None
    run_id: str
    flagged_at: datetime
