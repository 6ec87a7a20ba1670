"""MegaDetector batch output JSON in: :func:`import_mdjson` loads a file MegaDetector (or any
tool writing the format) produced, so past runs come in as raw rows.

The import writes raw rows in one transaction with stable ids, so importing the same file
twice adds nothing. What counts of them is dbt's (the imported model counts once it is the
configured ``animal_model`` / ``general_model``: docs/formats.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flows.formats.common import default_setting, now_utc
from flows.formats.mdjson import read_mdjson, split_model
from flows.pipeline import video as _video
from flows.pipeline.discovery import (
    canonical_uri,
    open_source,
    read_file,
    site_and_camera,
)
from flows.pipeline.intake import is_clip
from flows.pipeline.quarantine import QuarantineReason, reason_of
from flows.store import ids, rows
from flows.store import warehouse as _warehouse

#: Category names other tools use for ours (MegaDetector's own are animal/person/vehicle).
_CATEGORY_ALIASES = {
    "animal": "animal",
    "person": "person",
    "human": "person",
    "vehicle": "vehicle",
}


@dataclass
class ImportResult:
    run_id: str
    images: int = 0  # entries in the file
    media_added: int = 0
    detections_added: int = 0
    classifications_added: int = 0
    failures: int = 0  # entries with 'failure' (recorded in raw.quarantine)
    missing: list[str] = field(default_factory=list)  # files not found under the source
    unreadable: list[str] = field(default_factory=list)
    skipped_categories: Counter[str] = field(default_factory=Counter)


def _as_float(value: Any, default: float | None = None) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def import_mdjson(
    warehouse: Path,
    file: Path,
    source: str,
    *,
    layout: str | None = None,
    max_image_pixels: int | None = None,
) -> ImportResult:
    """Load another tool's MegaDetector results for the images under ``source``.

    Each image is hashed (its media_id, as in a trapflow run) and its EXIF read; boxes go to
    raw.detections under the model named by ``info.detector`` (or, for files trapflow wrote,
    the per-category models in ``detector_metadata.trapflow_detectors``), classifications to
    raw.classifications, ``failure`` entries to raw.quarantine. Files not under ``source`` are
    reported, not fatal. Ids are stable and boxes of a model version already in the warehouse
    for an image are not added again, so re-importing adds nothing.
    """
    from models_ml import ImageRejected
    from models_ml.video import VideoError

    doc = read_mdjson(file)
    if max_image_pixels is None:
        max_image_pixels = int(default_setting("max_image_pixels"))
    info = doc["info"]
    meta = info.get("detector_metadata") or {}
    default_model = str(info.get("detector") or "imported_detector").removesuffix(".pt")
    per_category = meta.get("trapflow_detectors") or {}
    default_version = (
        str(meta.get("megadetector_version") or "") if "@" not in default_model else ""
    )

    def model_for(category: str) -> tuple[str, str]:
        name, version = split_model(str(per_category.get(category) or default_model))
        return name, version or default_version or "imported"

    categories = {
        str(cid): _CATEGORY_ALIASES.get(str(name).lower())
        for cid, name in doc["detection_categories"].items()
    }
    cls_names = {str(k): str(v) for k, v in (doc.get("classification_categories") or {}).items()}
    cls_name, cls_version = split_model(str(info.get("classifier") or "imported_classifier"))
    cls_version = cls_version or "imported"
    detected_at = _parse_time(info.get("detection_completion_time")) or now_utc()
    classified_at = _parse_time(info.get("classification_completion_time")) or detected_at

    uri = canonical_uri(source)
    fs, root = open_source(uri)
    if not fs.isdir(root):
        raise NotADirectoryError(
            f"--source {source} is not a folder: give the folder the 'file' paths in {file.name} "
            "are relative to"
        )
    run_id = ids.import_run_id()
    result = ImportResult(run_id=run_id, images=len(doc["images"]))
    media_rows: list[dict[str, Any]] = []
    det_rows: list[dict[str, Any]] = []
    cls_rows: list[dict[str, Any]] = []
    quarantine: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    now = now_utc()

    with _warehouse.connect(warehouse) as con:
        _warehouse.ensure_schema(con)
        started = now
        _warehouse.start_run(con, run_id, uri, None, started)
        existing_models = {
            (m, n, v)
            for m, n, v in con.execute(
                "select distinct media_id, model_name, model_version from raw.detections"
            ).fetchall()
        }
        for entry in doc["images"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
                result.unreadable.append(repr(entry)[:80])
                continue
            rel = entry["file"].replace("\\", "/").lstrip("/")
            video = _video.is_video(rel) or "frame_rate" in entry
            try:
                info_fs = fs.info(f"{root}/{rel}")
                if video:
                    data, (media_id, size) = b"", _video.sha256_stream(uri, rel)
                else:
                    data = read_file(uri, rel)
                    media_id, size = ids.media_id(data), len(data)
                    video = is_clip(rel, data)  # a clip by its content, whatever its name
            except (FileNotFoundError, IsADirectoryError):
                result.missing.append(rel)
                continue
            modified = _modified(info_fs)
            failure = entry.get("failure")
            if failure:
                result.failures += 1
                quarantine.append(
                    rows.imported_failure_row(
                        source_uri=uri, file_path=rel, failure=str(failure), run_id=run_id,
                        media_id=media_id, file_size=size, quarantined_at=now,
                    ).as_row()
                )  # fmt: skip
                files.append(
                    _import_file(uri, rel, size, modified, media_id, "quarantined", run_id)
                )
                continue
            try:
                if video:
                    row = _video_media_row(uri, rel, media_id, size, modified, layout, run_id, now)
                else:
                    row = _image_media_row(
                        uri, rel, data, media_id, modified, layout, max_image_pixels, run_id, now
                    )
            except (ImageRejected, VideoError, OSError) as exc:
                result.unreadable.append(rel)
                quarantine.append(
                    rows.quarantine_row(
                        source_uri=uri, file_path=rel,
                        reason=reason_of(exc, QuarantineReason.NOT_AN_IMAGE), error=str(exc),
                        run_id=run_id, media_id=media_id, file_size=size, quarantined_at=now,
                    ).as_row()
                )  # fmt: skip
                continue
            media_rows.append(row)
            files.append(_import_file(uri, rel, size, modified, media_id, "ingested", run_id))
            fps = _as_float(entry.get("frame_rate")) or row.get("fps")
            for index, det in enumerate(entry.get("detections") or []):
                category = categories.get(str(det.get("category")))
                bbox = det.get("bbox")
                conf = _as_float(det.get("conf"))
                if category is None or conf is None or not isinstance(bbox, list) or len(bbox) != 4:
                    result.skipped_categories[str(det.get("category"))] += 1
                    continue
                model_name, model_version = model_for(category)
                if (media_id, model_name, model_version) in existing_models:
                    continue
                frame = det.get("frame_number")
                det_row = rows.detection_row(
                    media_id=media_id, model_name=model_name, model_version=model_version,
                    index=index, category=category, label=category, confidence=conf,
                    bbox=[float(v) for v in bbox], run_id=run_id, detected_at=detected_at,
                    frame_number=frame,
                    frame_time_s=frame / fps if fps and isinstance(frame, int) else None,
                    frame_in_id=False,  # numbered over the whole clip: the id has no frame
                )  # fmt: skip
                detection_id = det_row.detection_id
                det_rows.append(det_row.as_row())
                for rank, pair in enumerate(det.get("classifications") or [], start=1):
                    if not isinstance(pair, list) or len(pair) < 2:
                        continue
                    label = cls_names.get(str(pair[0]), str(pair[0]))
                    cls_rows.append(
                        rows.classification_row(
                            detection_id=detection_id, media_id=media_id, model_name=cls_name,
                            model_version=cls_version, label=label, probability=float(pair[1]),
                            rank=rank, geofence_status="no_list", run_id=run_id,
                            classified_at=classified_at, id_model=cls_name,
                        ).as_row()
                    )  # fmt: skip
        counts = _warehouse.load_batch(
            con, media=media_rows, detections=det_rows, quarantine=quarantine, files=files,
            classifications=cls_rows,
        )  # fmt: skip
        result.media_added = counts["media"]
        result.detections_added = counts["detections"]
        result.classifications_added = counts["classifications"]
        _warehouse.finish_run(
            con, run_id,
            {
                "finished_at": now_utc(), "status": "completed", "files_listed": result.images,
                "files_new": counts["media"], "images_processed": len(media_rows),
                "detections": counts["detections"], "quarantined": len(quarantine),
                "model_versions": ", ".join(
                    sorted({f"{r['model_name']}@{r['model_version']}" for r in det_rows})
                ),
                "duration_s": (now_utc() - started).total_seconds(),
            },
        )  # fmt: skip
    return result


def _image_media_row(
    uri: str, rel: str, data: bytes, media_id: str, modified: datetime | None,
    layout: str | None, max_image_pixels: int, run_id: str, now: datetime,
) -> dict[str, Any]:  # fmt: skip
    """raw.media for an imported still, as a trapflow run would write it (EXIF, else mtime)."""
    from models_ml import open_image, read_exif

    img = open_image(data, max_pixels=max_image_pixels)
    try:
        exif = read_exif(data)
    except Exception:  # an unparsable EXIF block: keep the image, time from the file
        exif = None
    site, camera = site_and_camera(rel, layout)
    return rows.image_media_row(
        media_id=media_id, source_uri=uri, file_path=rel, file_size=len(data),
        file_modified_at=modified, site_id=site, camera_id=camera,
        image_format=img.format or "", exif=exif,
        width=exif.width if exif and exif.width else img.width,
        height=exif.height if exif and exif.height else img.height,
        run_id=run_id, ingested_at=now,
    ).as_row()  # fmt: skip


def _video_media_row(
    uri: str, rel: str, media_id: str, size: int, modified: datetime | None,
    layout: str | None, run_id: str, now: datetime,
) -> dict[str, Any]:  # fmt: skip
    """raw.media for an imported clip: what its container says (as the ingest pipeline)."""
    from models_ml.video import probe

    with _video.open_file(uri, rel) as src:
        info = probe(src)
    site, camera = site_and_camera(rel, layout)
    return rows.clip_media_row(
        media_id=media_id, source_uri=uri, file_path=rel, file_size=size,
        file_modified_at=modified, site_id=site, camera_id=camera, info=info, run_id=run_id,
        ingested_at=now,
    ).as_row()  # fmt: skip


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:  # MegaDetector writes '2024-05-01 10:11:12'
            parsed = datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _modified(info: Mapping[str, Any]) -> datetime | None:
    value = info.get("mtime") or info.get("LastModified") or info.get("created")
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).replace(tzinfo=None)
    return None


def _import_file(
    uri: str, rel: str, size: int, modified: datetime | None, media_id: str, status: str,
    run_id: str,
) -> dict[str, Any]:  # fmt: skip
    return rows.media_file_row(
        source_uri=uri, file_path=rel, file_size=size, file_modified_at=modified,
        media_id=media_id, status=status, run_id=run_id,
    ).as_row()  # fmt: skip
