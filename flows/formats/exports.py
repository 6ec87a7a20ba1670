"""The field's formats in and out, as plain functions (the CLI calls them; docs/formats.md).

- MegaDetector batch output JSON (format 1.5): :func:`mdjson_results` / :func:`write_mdjson`
  export the counting detectors' boxes, and :func:`import_mdjson` loads a file MegaDetector
  (or any tool writing the format) produced, so past runs come in as raw rows.
- A Camtrap DP 1.0 package (datapackage.json, deployments.csv, media.csv, observations.csv):
  :func:`export_camtrapdp`.
- One CSV per mart for spreadsheets and R: :func:`export_mart_csvs`.

Exports only read the warehouse (short read-only connections). The import writes raw rows in
one transaction with stable ids, so importing the same file twice adds nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flows.access.privacy import generalise, is_sensitive, sensitive_sites
from flows.pipeline import video as _video
from flows.pipeline.discovery import (
    canonical_uri,
    open_source,
    read_file,
    sha256_hex,
    site_and_camera,
)
from flows.store import warehouse as _warehouse

log = logging.getLogger(__name__)

MD_FORMAT_VERSION = "1.5"
DETECTION_CATEGORIES = {"1": "animal", "2": "person", "3": "vehicle"}
_CATEGORY_ID = {name: cid for cid, name in DETECTION_CATEGORIES.items()}
#: Category names other tools use for ours (MegaDetector's own are animal/person/vehicle).
_CATEGORY_ALIASES = {
    "animal": "animal",
    "person": "person",
    "human": "person",
    "vehicle": "vehicle",
}

CAMTRAP_DP_PROFILE = "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0/camtrap-dp-profile.json"
CAMTRAP_DP_SCHEMA = (
    "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0/{table}-table-schema.json"
)

DEPLOYMENT_FIELDS = (
    "deploymentID", "locationID", "locationName", "latitude", "longitude",
    "coordinateUncertainty", "deploymentStart", "deploymentEnd", "setupBy", "cameraID",
    "cameraModel", "cameraDelay", "cameraHeight", "cameraDepth", "cameraTilt", "cameraHeading",
    "detectionDistance", "timestampIssues", "baitUse", "featureType", "habitat",
    "deploymentGroups", "deploymentTags", "deploymentComments",
)  # fmt: skip
MEDIA_FIELDS = (
    "mediaID", "deploymentID", "captureMethod", "timestamp", "filePath", "filePublic",
    "fileName", "fileMediatype", "exifData", "favorite", "mediaComments",
)  # fmt: skip
OBSERVATION_FIELDS = (
    "observationID", "deploymentID", "mediaID", "eventID", "eventStart", "eventEnd",
    "observationLevel", "observationType", "cameraSetupType", "scientificName", "count",
    "lifeStage", "sex", "behavior", "individualID", "individualPositionRadius",
    "individualPositionAngle", "individualSpeed", "bboxX", "bboxY", "bboxWidth", "bboxHeight",
    "classificationMethod", "classifiedBy", "classificationTimestamp",
    "classificationProbability", "observationTags", "observationComments",
)  # fmt: skip
_OBSERVATION_TYPE = {"animal": "animal", "person": "human", "vehicle": "vehicle"}
_MEDIATYPE = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "TIFF": "image/tiff"}
_EXT_MEDIATYPE = {
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "tif": "image/tiff",
    "tiff": "image/tiff", "mp4": "video/mp4", "avi": "video/x-msvideo", "mov": "video/quicktime",
}  # fmt: skip


class ExportError(RuntimeError):
    """The warehouse cannot give what was asked (no marts yet, unknown site, ...)."""


class MdJsonError(ValueError):
    """The file is not MegaDetector batch output; the message says what is wrong."""


def _md5(*parts: str) -> str:
    return hashlib.md5("\x1f".join(parts).encode(), usedforsecurity=False).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _iso_utc(value: datetime) -> str:
    return value.replace(microsecond=0).isoformat() + "Z"


# ------------------------------------------------------------------------------------------
# MegaDetector batch output: export


def _split_model(model: str) -> tuple[str, str]:
    name, _, version = model.partition("@")
    return name, version


def mdjson_results(
    warehouse: Path,
    *,
    animal_model: str,
    general_model: str,
    typical_threshold: float,
    conservative_threshold: float,
    site: Sequence[str] = (),
    layout: str | None = None,
    detector: str | None = None,
) -> dict[str, Any]:
    """The warehouse's results as a MegaDetector batch output document (format 1.5).

    Boxes: animals from ``animal_model``, persons and vehicles from ``general_model`` (the
    models the marts count), latest version per image; ``detector`` (a model name) exports
    every category from that one model instead, e.g. after importing someone else's run.
    Quarantined files that were skipped are listed with ``failure`` and ``detections: null``.
    """
    rules = (
        {c: detector for c in ("animal", "person", "vehicle")}
        if detector
        else {"animal": animal_model, "person": general_model, "vehicle": general_model}
    )
    sites = list(site)
    with _warehouse.connect(warehouse, read_only=True) as con:
        site_sql = " and site_id in (select unnest(?::varchar[]))" if sites else ""
        media = [
            (m["media_id"], m["source_uri"], m["file_path"], m.get("fps"))
            for m in _fetch(
                con,
                f"select * from raw.media where true{site_sql} order by file_path, source_uri",
                [sites] if sites else [],
            )
        ]
        if sites and not media:
            known = [r[0] for r in con.execute("select distinct site_id from raw.media").fetchall()]
            raise ExportError(
                f"no images at site(s) {', '.join(sites)}; the warehouse has: "
                f"{', '.join(sorted(known)) or 'none'}. Check --site."
            )
        rule_rows = [(c, m) for c, m in rules.items()]
        con.execute("create temp table _rules (category varchar, model_name varchar)")
        con.executemany("insert into _rules values (?, ?)", rule_rows)
        detections = con.execute(
            """
            with latest as (
                select media_id, model_name, model_version
                from raw.detections
                group by media_id, model_name, model_version
                qualify row_number() over (
                    partition by media_id, model_name
                    order by max(detected_at) desc, model_version desc) = 1
            )
            select d.detection_id, d.media_id, d.model_name, d.model_version, d.category,
                   d.confidence, d.bbox_x, d.bbox_y, d.bbox_w, d.bbox_h, d.frame_number,
                   d.detected_at
            from raw.detections d
            join _rules r on d.category = r.category and d.model_name = r.model_name
            join latest l on d.media_id = l.media_id and d.model_name = l.model_name
                and d.model_version = l.model_version
            """
        ).fetchall()
        classifications = con.execute(
            """
            select c.detection_id, c.model_name, c.model_version, c.label, c.probability,
                   c.rank, c.classified_at
            from raw.classifications c
            """
        ).fetchall()
        failures = con.execute(
            "select file_path, min(reason) from raw.quarantine where action = 'skipped' "
            "and file_path not in (select file_path from raw.media) group by file_path"
        ).fetchall()

    exported = {d[0] for d in detections}
    # One classifier: the one that labelled most of the exported boxes.
    cls_rows = [c for c in classifications if c[0] in exported]
    classifier = None
    if cls_rows:
        counts = Counter(f"{c[1]}@{c[2]}" if c[2] else c[1] for c in cls_rows)
        classifier = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        cls_rows = [c for c in cls_rows if (f"{c[1]}@{c[2]}" if c[2] else c[1]) == classifier]
    labels = sorted({c[3] for c in cls_rows})
    label_ids = {label: str(i) for i, label in enumerate(labels, start=1)}
    by_detection: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for c in cls_rows:
        by_detection[c[0]].append((label_ids[c[3]], round(float(c[4]), 3)))

    boxes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    versions: dict[str, Counter[str]] = defaultdict(Counter)
    for d in detections:
        det: dict[str, Any] = {
            "category": _CATEGORY_ID[d[4]],
            "conf": round(float(d[5]), 3),
            "bbox": [round(float(v), 4) for v in (d[6], d[7], d[8], d[9])],
        }
        if d[10] is not None:
            det["frame_number"] = int(d[10])
        if d[0] in by_detection:
            det["classifications"] = [
                [cid, conf]
                for cid, conf in sorted(by_detection[d[0]], key=lambda x: (-x[1], int(x[0])))
            ]
        boxes[d[1]].append(det)
        versions[d[2]][d[3]] += 1

    images: list[dict[str, Any]] = []
    seen: set[str] = set()
    for media_id, _source, path, fps in media:
        if media_id in seen:
            continue
        seen.add(media_id)
        dets = sorted(
            boxes.get(media_id, []),
            key=lambda x: (x.get("frame_number", 0), -x["conf"], x["category"], x["bbox"]),
        )
        image: dict[str, Any] = {"file": path}
        if fps:  # a video: MegaDetector's frame_rate, and frame_number on each detection
            image["frame_rate"] = round(float(fps), 3)
        image["detections"] = dets
        images.append(image)
    for path, reason in failures:
        if sites and site_and_camera(path, layout)[0] not in sites:
            continue
        images.append({"file": path, "failure": reason, "detections": None})
    images.sort(key=lambda img: img["file"])

    def model_id(name: str) -> str:
        common = versions.get(name)
        if not common:
            return name
        version = sorted(common.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        return f"{name}@{version}" if version else name

    completed = max((d[11] for d in detections), default=None)
    info: dict[str, Any] = {
        "format_version": MD_FORMAT_VERSION,
        "detector": model_id(rules["animal"]),
        "detection_completion_time": _iso_utc(completed) if completed else None,
        "detector_metadata": {
            "megadetector_version": model_id(rules["animal"]),
            "typical_detection_threshold": typical_threshold,
            "conservative_detection_threshold": conservative_threshold,
            "trapflow_detectors": {c: model_id(m) for c, m in rules.items()},
        },
    }
    if info["detection_completion_time"] is None:
        del info["detection_completion_time"]
    result: dict[str, Any] = {"info": info, "detection_categories": dict(DETECTION_CATEGORIES)}
    if classifier:
        done = max(c[6] for c in cls_rows)
        info["classifier"] = classifier
        info["classification_completion_time"] = _iso_utc(done)
        info["classifier_metadata"] = {"top_k": max(int(c[5]) for c in cls_rows)}
        result["classification_categories"] = {cid: label for label, cid in label_ids.items()}
        result["classification_category_descriptions"] = {
            cid: label for label, cid in label_ids.items()
        }
    result["images"] = images
    return result


def dump_mdjson(results: Mapping[str, Any]) -> str:
    """MegaDetector's own layout: indent 1, UTF-8, newline at the end."""
    return json.dumps(results, indent=1, ensure_ascii=False) + "\n"


def write_mdjson(out: Path, results: Mapping[str, Any]) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(dump_mdjson(results), encoding="utf-8")
    tmp.replace(out)
    return out


# ------------------------------------------------------------------------------------------
# MegaDetector batch output: import


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


def read_mdjson(path: Path) -> dict[str, Any]:
    """Parse and check the structure; :class:`MdJsonError` says what is wrong and what to do."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MdJsonError(
            f"{path} is not JSON ({exc}). Give the .json file MegaDetector wrote "
            "(run_detector_batch output)."
        ) from None
    if not isinstance(doc, dict):
        raise MdJsonError(f"{path}: the top level must be an object with 'info' and 'images'")
    problems = []
    if not isinstance(doc.get("info"), dict) or "format_version" not in doc["info"]:
        problems.append("'info.format_version' is missing")
    if not isinstance(doc.get("detection_categories"), dict):
        problems.append("'detection_categories' is missing")
    if not isinstance(doc.get("images"), list):
        problems.append("'images' is missing or not a list")
    if problems:
        raise MdJsonError(
            f"{path} is not MegaDetector batch output: {'; '.join(problems)}. "
            "Convert it with MegaDetector's postprocessing tools first."
        )
    return doc


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
    max_image_pixels: int = 80_000_000,
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
    info = doc["info"]
    meta = info.get("detector_metadata") or {}
    default_model = str(info.get("detector") or "imported_detector").removesuffix(".pt")
    per_category = meta.get("trapflow_detectors") or {}
    default_version = (
        str(meta.get("megadetector_version") or "") if "@" not in default_model else ""
    )

    def model_for(category: str) -> tuple[str, str]:
        name, version = _split_model(str(per_category.get(category) or default_model))
        return name, version or default_version or "imported"

    categories = {
        str(cid): _CATEGORY_ALIASES.get(str(name).lower())
        for cid, name in doc["detection_categories"].items()
    }
    cls_names = {str(k): str(v) for k, v in (doc.get("classification_categories") or {}).items()}
    cls_name, cls_version = _split_model(str(info.get("classifier") or "imported_classifier"))
    cls_version = cls_version or "imported"
    detected_at = _parse_time(info.get("detection_completion_time")) or _now()
    classified_at = _parse_time(info.get("classification_completion_time")) or detected_at

    uri = canonical_uri(source)
    fs, root = open_source(uri)
    if not fs.isdir(root):
        raise NotADirectoryError(
            f"--source {source} is not a folder: give the folder the 'file' paths in {file.name} "
            "are relative to"
        )
    run_id = f"import-{uuid.uuid4().hex[:12]}"
    result = ImportResult(run_id=run_id, images=len(doc["images"]))
    media_rows: list[dict[str, Any]] = []
    det_rows: list[dict[str, Any]] = []
    cls_rows: list[dict[str, Any]] = []
    quarantine: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    now = _now()

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
                    media_id, size = sha256_hex(data), len(data)
            except (FileNotFoundError, IsADirectoryError):
                result.missing.append(rel)
                continue
            modified = _modified(info_fs)
            failure = entry.get("failure")
            if failure:
                result.failures += 1
                quarantine.append(
                    _import_quarantine(uri, rel, media_id, size, str(failure), run_id, now)
                )
                files.append(
                    _import_file(uri, rel, size, modified, media_id, "quarantined", run_id)
                )
                continue
            try:
                if video:
                    row = _video_media_row(uri, rel, media_id, size, modified, layout)
                else:
                    row = _image_media_row(
                        uri, rel, data, media_id, modified, layout, max_image_pixels
                    )
            except (ImageRejected, VideoError, OSError) as exc:
                result.unreadable.append(rel)
                reason = getattr(exc, "reason", None) or "not_an_image"
                quarantine.append(
                    _import_quarantine(uri, rel, media_id, size, reason, run_id, now, str(exc))
                )
                continue
            media_rows.append({**row, "run_id": run_id, "ingested_at": now})
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
                detection_id = _md5(media_id, f"{model_name}@{model_version}", str(index))
                det_rows.append(
                    {
                        "detection_id": detection_id, "media_id": media_id,
                        "model_name": model_name, "model_version": model_version,
                        "category": category, "category_id": int(_CATEGORY_ID[category]),
                        "label": category, "confidence": conf,
                        "bbox_x": float(bbox[0]), "bbox_y": float(bbox[1]),
                        "bbox_w": float(bbox[2]), "bbox_h": float(bbox[3]),
                        "frame_number": det.get("frame_number"),
                        "frame_time_s": (
                            det["frame_number"] / fps
                            if fps and isinstance(det.get("frame_number"), int) else None
                        ),
                        "run_id": run_id, "detected_at": detected_at,
                    }
                )  # fmt: skip
                for rank, pair in enumerate(det.get("classifications") or [], start=1):
                    if not isinstance(pair, list) or len(pair) < 2:
                        continue
                    label = cls_names.get(str(pair[0]), str(pair[0]))
                    cls_rows.append(
                        {
                            "classification_id": _md5(detection_id, cls_name, str(rank)),
                            "detection_id": detection_id, "media_id": media_id,
                            "model_name": cls_name, "model_version": cls_version,
                            "label": label, "probability": float(pair[1]), "rank": rank,
                            "geofence_status": "no_list", "run_id": run_id,
                            "classified_at": classified_at,
                        }
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
                "finished_at": _now(), "status": "completed", "files_listed": result.images,
                "files_new": counts["media"], "images_processed": len(media_rows),
                "detections": counts["detections"], "quarantined": len(quarantine),
                "model_versions": ", ".join(
                    sorted({f"{r['model_name']}@{r['model_version']}" for r in det_rows})
                ),
                "duration_s": (_now() - started).total_seconds(),
            },
        )  # fmt: skip
    return result


def _image_media_row(
    uri: str, rel: str, data: bytes, media_id: str, modified: datetime | None,
    layout: str | None, max_image_pixels: int,
) -> dict[str, Any]:  # fmt: skip
    """raw.media for an imported still, as a trapflow run would write it (EXIF, else mtime)."""
    from models_ml import open_image, read_exif

    img = open_image(data, max_pixels=max_image_pixels)
    try:
        exif = read_exif(data)
    except Exception:  # an unparsable EXIF block: keep the image, time from the file
        exif = None
    site, camera = site_and_camera(rel, layout)
    name = rel.rsplit("/", 1)[-1]
    captured = exif.captured_at if exif and exif.captured_at else None
    return {
        "media_id": media_id, "source_uri": uri, "file_path": rel, "file_name": name,
        "file_extension": name.rsplit(".", 1)[-1].lower() if "." in name else "",
        "file_size": len(data), "file_modified_at": modified, "media_type": "image",
        "image_format": img.format or "", "site_id": site, "camera_id": camera,
        "captured_at": captured or _local(modified),
        "utc_offset": exif.utc_offset if exif else None,
        "timestamp_source": "exif" if captured else "mtime",
        "timestamp_tag": exif.timestamp_tag if captured and exif else None,
        "latitude": exif.latitude if exif else None,
        "longitude": exif.longitude if exif else None,
        "altitude": exif.altitude if exif else None,
        "camera_make": exif.make if exif else None,
        "camera_model": exif.model if exif else None,
        "camera_serial": exif.serial if exif else None,
        "width": exif.width if exif and exif.width else img.width,
        "height": exif.height if exif and exif.height else img.height,
        "orientation": exif.orientation if exif else None,
        "exif_warnings": ("; ".join(exif.warnings) or None) if exif else None,
    }  # fmt: skip


def _video_media_row(
    uri: str, rel: str, media_id: str, size: int, modified: datetime | None, layout: str | None
) -> dict[str, Any]:
    """raw.media for an imported clip: what its container says (as flows/pipeline/process.py)."""
    from models_ml.video import probe

    with _video.open_file(uri, rel) as src:
        info = probe(src)
    site, camera = site_and_camera(rel, layout)
    name = rel.rsplit("/", 1)[-1]
    created = info.created_at
    if created is not None:
        source, tag = "container", info.created_tag
        captured_at = (
            _local(created.astimezone(UTC).replace(tzinfo=None)) if created.tzinfo else created
        )
    else:
        captured_at, source, tag = _local(modified), "mtime", None
    return {
        "media_id": media_id, "source_uri": uri, "file_path": rel, "file_name": name,
        "file_extension": name.rsplit(".", 1)[-1].lower() if "." in name else "",
        "file_size": size, "file_modified_at": modified, "media_type": "video",
        "image_format": info.codec.upper(), "site_id": site, "camera_id": camera,
        "captured_at": captured_at, "utc_offset": None, "timestamp_source": source,
        "timestamp_tag": tag,
        "camera_make": info.tags.get("make") or info.tags.get("com.apple.quicktime.make"),
        "camera_model": info.tags.get("model") or info.tags.get("com.apple.quicktime.model"),
        "width": info.width, "height": info.height, "duration_s": info.duration_s,
        "fps": info.fps, "frame_count": info.frame_count, "codec": info.codec,
        "container_format": info.container,
    }  # fmt: skip


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


def _local(utc: datetime | None) -> datetime | None:
    return utc.replace(tzinfo=UTC).astimezone().replace(tzinfo=None) if utc else None


def _import_quarantine(
    uri: str, rel: str, media_id: str, size: int, reason: str, run_id: str, now: datetime,
    detail: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    error = detail or (
        f"the tool that wrote the imported results could not process it ({reason}); "
        "run 'trapflow run' on the folder to try again, or check the file"
    )
    return {
        "quarantine_id": _md5(uri, rel, media_id, reason), "source_uri": uri, "file_path": rel,
        "media_id": media_id, "file_size": size, "reason": reason, "error": error,
        "action": "skipped", "run_id": run_id, "quarantined_at": now,
    }  # fmt: skip


def _import_file(
    uri: str, rel: str, size: int, modified: datetime | None, media_id: str, status: str,
    run_id: str,
) -> dict[str, Any]:  # fmt: skip
    return {
        "source_uri": uri, "file_path": rel, "file_size": size, "file_modified_at": modified,
        "media_id": media_id, "status": status, "run_id": run_id, "seen_at": _now(),
    }  # fmt: skip


# ------------------------------------------------------------------------------------------
# Camtrap DP 1.0


@dataclass
class CamtrapResult:
    out_dir: Path
    deployments: int = 0
    media: int = 0
    observations_media: int = 0
    observations_event: int = 0
    generalised: list[str] = field(default_factory=list)  # deployments with sensitive taxa
    timestamp_issues: list[str] = field(default_factory=list)  # deployments without a UTC offset
    no_coordinates: list[str] = field(default_factory=list)
    unplaced_media: int = 0  # media outside every deployment (not exported)


def _offset(value: str | None) -> str | None:
    if not value:
        return None
    match = re.fullmatch(r"([+-])(\d{1,2}):?(\d{2})?", value.strip())
    if value.strip().upper() == "Z":
        return "+00:00"
    if not match:
        return None
    return f"{match[1]}{int(match[2]):02d}:{match[3] or '00'}"


def _stamp(value: datetime | None, offset: str) -> str:
    if value is None:
        return ""
    return value.replace(microsecond=0).isoformat() + offset


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


def _write_csv(path: Path, fields: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> int:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(fields)
    n = 0
    for row in rows:
        writer.writerow([_fmt(row.get(f)) for f in fields])
        n += 1
    path.write_text(buf.getvalue(), encoding="utf-8")
    return n


def _fetch(con: Any, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def export_camtrapdp(
    warehouse: Path,
    out_dir: Path,
    *,
    animal_model: str,
    general_model: str,
    sensitive: Sequence[str],
    grid_km: float,
    title: str = "trapflow camera-trap data",
    contributor: str = "trapflow user",
    missing_location: tuple[float, float, float] | None = None,
) -> CamtrapResult:
    """Write a Camtrap DP 1.0 package from the marts (deployments with effort, media with
    UTC offsets, media- and event-level observations) into ``out_dir``.

    Coordinates: the deployment's (deployments.csv), else the mean of its images' GPS, else
    ``missing_location`` (lat, lon, uncertainty in metres: e.g. the study area's centre),
    else none (listed in ``no_coordinates``: Camtrap DP requires them, so add the deployments
    to a deployments.csv). Deployments where a sensitive taxon was seen are generalised.
    """
    if not _warehouse.has_marts(warehouse):
        raise ExportError(
            f"the warehouse {warehouse} has no marts yet: run 'trapflow marts' (or 'trapflow run') "
            "first"
        )
    with _warehouse.connect(warehouse, read_only=True) as con:
        deployments = _fetch(con, "select * from marts.dim_deployments order by deployment_id")
        media = _fetch(
            con,
            """
            select m.media_id, m.deployment_id, m.site_id, m.captured_at, m.file_path,
                   m.timestamp_source, m.latitude, m.longitude, m.camera_make, m.camera_model,
                   r.utc_offset, r.media_type, r.image_format, r.file_name, r.file_extension
            from marts.dim_media m join raw.media r using (media_id)
            order by m.captured_at, m.media_id
            """,
        )
        per_image = _fetch(
            con,
            """
            select o.media_id, o.category, o.label, o.individuals, o.max_confidence,
                   o.label_source
            from intermediate.int_observations_per_image o
            order by o.media_id, o.category, o.label
            """,
        )
        reviewers = {
            r["media_id"]: r["reviewers"]
            for r in _fetch(
                con,
                "select media_id, string_agg(distinct reviewer, '; ' order by reviewer) "
                "as reviewers, max(reviewed_at) as reviewed_at from review.labels group by 1",
            )
        }
        classifiers = {
            r["media_id"]: r["model"]
            for r in _fetch(
                con,
                "select media_id, min(model_name || '@' || model_version) as model "
                "from raw.classifications group by 1",
            )
        }
        events = _fetch(
            con,
            "select * from marts.fct_events order by deployment_id, event_started_at, event_id",
        )

    # offsets and coordinates per deployment
    media_offsets: dict[str, Counter[str]] = defaultdict(Counter)
    media_coords: dict[str, list[tuple[float, float]]] = defaultdict(list)
    models: dict[str, Counter[str]] = defaultdict(Counter)
    for m in media:
        dep = m["deployment_id"]
        if dep is None:
            continue
        if off := _offset(m["utc_offset"]):
            media_offsets[dep][off] += 1
        if m["latitude"] is not None and m["longitude"] is not None:
            media_coords[dep].append((m["latitude"], m["longitude"]))
        if m["camera_make"] or m["camera_model"]:
            models[dep][" ".join(filter(None, (m["camera_make"], m["camera_model"])))] += 1

    media_by_id = {m["media_id"]: m for m in media if m["deployment_id"] is not None}
    result = CamtrapResult(out_dir=out_dir, unplaced_media=len(media) - len(media_by_id))
    sensitive_deps = {
        media_by_id[o["media_id"]]["deployment_id"]
        for o in per_image
        if o["media_id"] in media_by_id and is_sensitive(o["label"], sensitive)
    } | {e["deployment_id"] for e in events if is_sensitive(e["label"], sensitive)}

    dep_offset: dict[str, str] = {}
    dep_rows = []
    for d in deployments:
        dep = d["deployment_id"]
        offset = _offset(d["utc_offset"])
        if offset is None and media_offsets[dep]:
            offset = media_offsets[dep].most_common(1)[0][0]
        issues = offset is None
        if issues:
            result.timestamp_issues.append(dep)
        dep_offset[dep] = offset or "+00:00"
        lat, lon = d["latitude"], d["longitude"]
        if (lat is None or lon is None) and media_coords[dep]:
            pts = media_coords[dep]
            lat, lon = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
        uncertainty: float | None = None
        if (lat is None or lon is None) and missing_location is not None:
            lat, lon, uncertainty = missing_location
        if dep in sensitive_deps and lat is not None and lon is not None:
            lat, lon, cell = generalise(lat, lon, grid_km)
            uncertainty = max(cell or 0, uncertainty or 0) or None
            result.generalised.append(dep)
        if lat is None or lon is None:
            result.no_coordinates.append(dep)
        elif uncertainty is None:
            lat, lon = round(lat, 6), round(lon, 6)
        dep_rows.append(
            {
                "deploymentID": dep, "locationID": d["site_id"], "locationName": d["site_id"],
                "latitude": lat, "longitude": lon,
                "coordinateUncertainty": int(uncertainty) if uncertainty else None,
                "deploymentStart": _stamp(d["deployment_start"], dep_offset[dep]),
                "deploymentEnd": _stamp(d["deployment_end"], dep_offset[dep]),
                "cameraID": d["camera_id"],
                "cameraModel": models[dep].most_common(1)[0][0] if models[dep] else None,
                "timestampIssues": issues,
                "deploymentGroups": f"site:{d['site_id']}",
                "deploymentTags": (
                    f"trapNights:{_fmt(float(d['trap_nights']))} | "
                    f"deployedDays:{d['deployed_days']} | images:{d['images']} | "
                    f"inferred:{_fmt(bool(d['is_inferred']))}"
                ),
                "deploymentComments": (
                    f"effort {_fmt(float(d['trap_nights']))} trap-nights over "
                    f"{d['deployed_days']} deployed days"
                    + (" (start/end inferred from the first and last image)"
                       if d["is_inferred"] else "")
                    + ("; no UTC offset known: times are camera-local, written as +00:00"
                       if issues else "")
                ),
            }
        )  # fmt: skip

    humans = {o["media_id"] for o in per_image if o["category"] == "person"}
    media_rows = []
    for m in media_by_id.values():
        offset = _offset(m["utc_offset"]) or dep_offset.get(m["deployment_id"], "+00:00")
        m["stamp"] = _stamp(m["captured_at"], offset)
        media_rows.append(
            {
                "mediaID": m["media_id"], "deploymentID": m["deployment_id"],
                "captureMethod": "activityDetection", "timestamp": m["stamp"],
                "filePath": m["file_path"], "filePublic": m["media_id"] not in humans,
                "fileName": m["file_name"],
                "fileMediatype": _MEDIATYPE.get(m["image_format"] or "")
                or _EXT_MEDIATYPE.get(m["file_extension"] or "", "image/jpeg"),
                "mediaComments": None if m["timestamp_source"] == "exif"
                else f"timestamp from {m['timestamp_source']}",
            }
        )  # fmt: skip

    def machine_by(category: str, media_id: str, source: str) -> str:
        if source == "classifier" and media_id in classifiers:
            return str(classifiers[media_id])
        return animal_model if category == "animal" else general_model

    obs_rows: list[dict[str, Any]] = []
    # event lookup: (deployment, category, label) -> events; media-level rows get their eventID
    by_key: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_key[(e["deployment_id"], e["category"], e["label"])].append(e)
    event_human: dict[str, list[str]] = defaultdict(list)
    event_prob: dict[str, float] = {}
    observed = set()
    for o in per_image:
        if o["media_id"] not in media_by_id:
            continue
        m = media_by_id[o["media_id"]]
        observed.add(o["media_id"])
        event_id = None
        for e in by_key.get((m["deployment_id"], o["category"], o["label"]), []):
            if e["event_started_at"] <= m["captured_at"] <= e["event_ended_at"]:
                event_id = e["event_id"]
                break
        human = o["label_source"] == "review"
        by = (
            reviewers.get(o["media_id"])
            if human
            else machine_by(o["category"], o["media_id"], o["label_source"])
        )
        if event_id and human:
            event_human[event_id].append(by or "reviewer")
        prob = (
            None if human or o["max_confidence"] is None else round(float(o["max_confidence"]), 4)
        )
        if event_id and prob is not None:
            event_prob[event_id] = max(prob, event_prob.get(event_id, 0.0))
        obs_rows.append(
            _observation(
                _md5("media", o["media_id"], o["category"], o["label"])[:16], m["deployment_id"],
                o["media_id"], event_id, m["stamp"], m["stamp"], "media", o["category"],
                o["label"], o["individuals"], human, by, prob,
            )
        )  # fmt: skip
    for m in media_by_id.values():
        if m["media_id"] not in observed:
            obs_rows.append(
                _observation(
                    _md5("media", m["media_id"], "blank")[:16], m["deployment_id"], m["media_id"],
                    None, m["stamp"], m["stamp"], "media", "blank", None, None, False,
                    animal_model, None,
                )
            )  # fmt: skip
    result.observations_media = len(obs_rows)
    for e in events:
        offset = dep_offset.get(e["deployment_id"], "+00:00")
        human = bool(event_human.get(e["event_id"]))
        by = (
            "; ".join(sorted(set(event_human[e["event_id"]])))
            if human
            else machine_by(e["category"], "", "detector")
        )
        obs_rows.append(
            _observation(
                e["event_id"], e["deployment_id"], None, e["event_id"],
                _stamp(e["event_started_at"], offset), _stamp(e["event_ended_at"], offset),
                "event", e["category"], e["label"], e["max_count"], human, by,
                None if human else event_prob.get(e["event_id"]),
            )
        )  # fmt: skip
    result.observations_event = len(obs_rows) - result.observations_media

    out_dir.mkdir(parents=True, exist_ok=True)
    result.deployments = _write_csv(out_dir / "deployments.csv", DEPLOYMENT_FIELDS, dep_rows)
    result.media = _write_csv(out_dir / "media.csv", MEDIA_FIELDS, media_rows)
    _write_csv(out_dir / "observations.csv", OBSERVATION_FIELDS, obs_rows)

    package = _datapackage(
        dep_rows, media, obs_rows, title=title, contributor=contributor, grid_km=grid_km,
        generalised=bool(result.generalised),
    )  # fmt: skip
    (out_dir / "datapackage.json").write_text(
        json.dumps(package, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return result


def _observation(
    observation_id: str, deployment_id: str, media_id: str | None, event_id: str | None,
    start: str, end: str, level: str, category: str, label: str | None, count: Any,
    human: bool, by: str | None, probability: float | None,
) -> dict[str, Any]:  # fmt: skip
    kind = _OBSERVATION_TYPE.get(category, "blank")
    scientific = label if kind == "animal" and label and label != "animal" else None
    return {
        "observationID": observation_id, "deploymentID": deployment_id, "mediaID": media_id,
        "eventID": event_id, "eventStart": start, "eventEnd": end, "observationLevel": level,
        "observationType": kind, "scientificName": scientific,
        "count": int(count) if count and kind != "blank" else None,
        "classificationMethod": "human" if human else "machine", "classifiedBy": by,
        "classificationProbability": probability,
        "observationTags": f"label:{label}" if label else None,
    }  # fmt: skip


def _datapackage(
    deployments: list[dict[str, Any]],
    media: list[dict[str, Any]],
    observations: list[dict[str, Any]],
    *,
    title: str,
    contributor: str,
    grid_km: float,
    generalised: bool,
) -> dict[str, Any]:
    lats = [d["latitude"] for d in deployments if d["latitude"] is not None]
    lons = [d["longitude"] for d in deployments if d["longitude"] is not None]
    if lats:
        w, e, s, n = min(lons), max(lons), min(lats), max(lats)
        spatial: dict[str, Any] = {
            "type": "Polygon",
            "bbox": [w, s, e, n],
            "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]],
        }
    else:
        spatial = {"type": "Polygon", "coordinates": []}
    days = sorted(m["captured_at"].date() for m in media if m["captured_at"] is not None)
    today = _now().date()
    temporal = {
        "start": (days[0] if days else today).isoformat(),
        "end": (days[-1] if days else today).isoformat(),
    }
    taxa = sorted({o["scientificName"] for o in observations if o["scientificName"]})
    created = datetime.now(UTC).replace(microsecond=0)
    name = re.sub(r"[^a-z0-9._-]+", "-", title.lower()).strip("-") or "trapflow"
    resources = [
        {
            "name": table,
            "path": f"{table}.csv",
            "profile": "tabular-data-resource",
            "format": "csv",
            "mediatype": "text/csv",
            "encoding": "utf-8",
            "schema": CAMTRAP_DP_SCHEMA.format(table=table),
        }
        for table in ("deployments", "media", "observations")
    ]
    package: dict[str, Any] = {
        "resources": resources,
        "profile": CAMTRAP_DP_PROFILE,
        "name": name,
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"trapflow:{name}")),
        "created": created.isoformat().replace("+00:00", "Z"),
        "title": title,
        "contributors": [{"title": contributor, "role": "contact"}],
        "licenses": [
            {"name": "CC0-1.0", "scope": "data"},
            {"name": "CC-BY-4.0", "scope": "media"},
        ],
        "project": {
            "title": title,
            "samplingDesign": "opportunistic",
            "captureMethod": ["activityDetection"],
            "individualAnimals": False,
            "observationLevel": ["media", "event"],
            "description": (
                "Exported by trapflow. Media-level observations: one per label per image "
                "(machine: the detectors and species classifier above their thresholds; human: "
                "review labels). Event-level: independent events (marts.fct_events)."
                + (
                    f" Coordinates of deployments with sensitive taxa are generalised to a "
                    f"{grid_km:g} km grid (coordinateUncertainty)."
                    if generalised
                    else ""
                )
            ),
        },
        "spatial": spatial,
        "temporal": temporal,
        "taxonomic": [{"scientificName": t} for t in taxa],
    }
    return package


# ------------------------------------------------------------------------------------------
# CSV copies of the marts


def export_mart_csvs(
    warehouse: Path,
    out_dir: Path,
    *,
    sensitive: Sequence[str] = (),
    grid_km: float = 10.0,
    thresholds: Mapping[str, float] | None = None,
    classification_threshold: float = 0.5,
) -> list[Path]:
    """One CSV per table in the marts schema (header row, ISO dates, empty = null).

    ``latitude``/``longitude`` of rows at sites that ever recorded a ``sensitive`` taxon
    (``flows.access.privacy.sensitive_sites``) are written as the centre of their ``grid_km`` cell.
    """
    if not _warehouse.has_marts(warehouse):
        raise ExportError(
            f"the warehouse {warehouse} has no marts yet: run 'trapflow marts' (or 'trapflow run') "
            "first"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with _warehouse.connect(warehouse, read_only=True) as con:
        names = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables "
                "where table_schema = 'marts' order by table_name"
            ).fetchall()
        ]
        located = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.columns where table_schema = 'marts' "
                "and column_name in ('site_id', 'latitude', 'longitude') "
                "group by table_name having count(*) = 3"
            ).fetchall()
        ]
        coarse = _grid_table(
            con, located, sensitive, grid_km, thresholds or {}, classification_threshold
        )
        for name in names:
            path = out_dir / f"{name}.csv"
            target = str(path).replace("'", "''")
            select = f'select * from marts."{name}"'
            if coarse and name in located:
                select = (
                    "select t.* replace (coalesce(g.glat, t.latitude) as latitude, "
                    f'coalesce(g.glon, t.longitude) as longitude) from marts."{name}" t '
                    "left join tf_grid g on g.site_id = t.site_id and g.lat = t.latitude "
                    "and g.lon = t.longitude"
                )
            con.execute(f"copy ({select}) to '{target}' (header, delimiter ',')")
            written.append(path)
    return written


def _grid_table(
    con: Any,
    located: Sequence[str],
    sensitive: Sequence[str],
    grid_km: float,
    thresholds: Mapping[str, float],
    classification_threshold: float,
) -> bool:
    """A temporary table ``tf_grid`` (site, exact lat/lon -> the grid cell's centre) of every
    coordinate the marts hold at a sensitive site; whether there is any."""
    sites = sensitive_sites(con, sensitive, thresholds, classification_threshold)
    if not sites or not located or grid_km <= 0:
        return False
    union = " union all ".join(
        f'select site_id, latitude, longitude from marts."{name}"' for name in located
    )
    points = con.execute(
        f"select distinct site_id, latitude, longitude from ({union}) "
        "where latitude is not null and longitude is not null and site_id in (select unnest(?))",
        [sorted(sites)],
    ).fetchall()
    con.execute(
        "create or replace temp table tf_grid "
        "(site_id varchar, lat double, lon double, glat double, glon double)"
    )
    rows = [[site, lat, lon, *generalise(lat, lon, grid_km)[:2]] for site, lat, lon in points]
    if rows:
        con.executemany("insert into tf_grid values (?, ?, ?, ?, ?)", rows)
    return bool(rows)


__all__ = [
    "CAMTRAP_DP_PROFILE",
    "DETECTION_CATEGORIES",
    "MD_FORMAT_VERSION",
    "CamtrapResult",
    "ExportError",
    "ImportResult",
    "MdJsonError",
    "dump_mdjson",
    "export_camtrapdp",
    "export_mart_csvs",
    "import_mdjson",
    "mdjson_results",
    "read_mdjson",
    "write_mdjson",
]
