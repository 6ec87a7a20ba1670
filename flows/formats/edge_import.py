"""Edge manifests in (``trapflow import edge-manifests SOURCE``): the photos an edge box kept on
its card (blanks) become ``raw.media`` rows with no detections, so they count in effort (camera
days, the first and last photo of an inferred deployment, the downtime gaps).

SOURCE is the edge's upload target (a folder or s3:// URL); its manifests are under
``_manifests/`` (``flows/edge/keys.py``). The photos the edge uploaded are not loaded from the
manifest: ``trapflow run --source SOURCE`` ingests them as any photo (detections, species,
EXIF), with the same media id (the SHA-256 of the bytes), so nothing is counted twice
whichever comes first. A kept photo gets the path its key would have had at SOURCE, so its
site and camera are named as the uploaded ones (``site_and_camera``); its row comes from an
import run whose ``source_uri`` is the manifest (raw.runs), which is how a row from an edge
manifest is told from an ingested one (it has no width or height either). Re-importing adds
nothing (``insert or ignore`` on the media id).
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flows.edge.keys import KEPT_ON_CARD, MANIFEST_FORMAT, MANIFEST_PREFIX, UPLOADED, remote_key
from flows.errors import UserError
from flows.formats.common import now_utc
from flows.pipeline.discovery import canonical_uri, open_source, site_and_camera
from flows.store import ids, rows
from flows.store import warehouse as _warehouse
from models_ml._types import ExifRecord

_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "tif": "TIFF", "tiff": "TIFF"}


class ManifestError(UserError):
    """A manifest that is not an edge manifest (one line: which file, what to do)."""


@dataclass
class EdgeImportResult:
    manifests: int = 0
    photos: int = 0  # rows in the manifests
    kept_on_card: int = 0
    uploaded: int = 0  # listed as uploaded (ingested by `trapflow run --source`)
    media_added: int = 0  # kept photos new to the warehouse
    awaiting_ingest: int = 0  # uploaded photos the warehouse has not seen yet
    run_ids: list[str] = field(default_factory=list)


def read_manifest(text: str, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header and photo rows of one manifest (JSON lines)."""
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        header = json.loads(lines[0]) if lines else {}
        photos = [json.loads(line) for line in lines[1:]]
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"{name} is not JSON lines ({exc}); copy it again from the edge box"
        ) from None
    if header.get("format") != MANIFEST_FORMAT:
        raise ManifestError(
            f"{name} is no edge manifest (format {header.get('format')!r}, expected "
            f"{MANIFEST_FORMAT!r}); give the folder the edge uploads to"
        )
    return header, photos


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def import_edge_manifests(
    warehouse: Path, source: str, *, layout: str | None = None
) -> EdgeImportResult:
    """Load every manifest under ``<source>/_manifests`` (one transaction per manifest)."""
    uri = canonical_uri(source)
    fs, root = open_source(uri)
    folder = posixpath.join(root, MANIFEST_PREFIX)
    if not fs.isdir(folder):
        raise ManifestError(
            f"no {MANIFEST_PREFIX}/ folder under {source}: give the folder or URL the edge "
            "uploads to (trapflow-edge --upload)"
        )
    names = sorted(p for p in fs.ls(folder, detail=False) if str(p).endswith(".jsonl"))
    result = EdgeImportResult()
    with _warehouse.connect(warehouse) as con:
        _warehouse.ensure_schema(con)
        # keys an ingest of the source listed (an unreadable one is quarantined)
        listed = set(_warehouse.known_files(con, uri))
        for name in names:
            text = fs.cat_file(name).decode("utf-8")
            _header, photos = read_manifest(text, posixpath.basename(str(name)))
            run_id = ids.import_run_id()
            manifest_uri = f"{uri}/{MANIFEST_PREFIX}/{posixpath.basename(str(name))}"
            now = now_utc()
            _warehouse.start_run(con, run_id, manifest_uri, None, now)
            known = _warehouse.known_media(con, [str(p.get("sha256") or "") for p in photos])
            media: list[dict[str, Any]] = []
            for photo in photos:
                result.photos += 1
                media_id = str(photo.get("sha256") or "")
                if photo.get("status") == UPLOADED:
                    result.uploaded += 1
                    result.awaiting_ingest += (
                        media_id not in known and photo.get("key") not in listed
                    )
                    continue
                if photo.get("status") != KEPT_ON_CARD or len(media_id) != 64:
                    continue
                result.kept_on_card += 1
                media.append(_kept_row(uri, photo, media_id, layout, run_id, now))
            counts = _warehouse.load_batch(con, media=media, detections=[], quarantine=[],
                                           files=[])  # fmt: skip
            result.media_added += counts["media"]
            result.manifests += 1
            result.run_ids.append(run_id)
            _warehouse.finish_run(
                con, run_id,
                {"finished_at": now_utc(), "status": "completed", "files_listed": len(photos),
                 "files_new": counts["media"], "images_processed": 0, "detections": 0,
                 "quarantined": 0, "model_versions": ", ".join(_header.get("models") or []),
                 "duration_s": (now_utc() - now).total_seconds()},
            )  # fmt: skip
    return result


def _kept_row(
    uri: str, photo: dict[str, Any], media_id: str, layout: str | None, run_id: str,
    now: datetime,
) -> dict[str, Any]:  # fmt: skip
    """raw.media for a blank kept on the card: what the manifest says (EXIF time, else the
    file's time), at the path its key would have had."""
    path = remote_key(str(photo.get("path") or ""), media_id)
    captured = _time(photo.get("captured_at"))
    exif = ExifRecord(captured_at=captured, timestamp_tag="DateTimeOriginal" if captured else None)
    site, camera = site_and_camera(path, layout)
    ext = path.rsplit(".", 1)[-1].lower()
    return rows.image_media_row(
        media_id=media_id, source_uri=uri, file_path=path, file_size=int(photo.get("size") or 0),
        file_modified_at=_time(photo.get("mtime")), site_id=site, camera_id=camera,
        image_format=_FORMATS.get(ext, ext.upper()), exif=exif, width=None, height=None,
        run_id=run_id, ingested_at=now,
    ).as_row()  # fmt: skip
