"""One builder per raw table row: the same photo or clip gives the same row on every path."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from flows.pipeline.quarantine import QuarantineReason
from flows.store import rows
from flows.store.warehouse import ensure_schema
from models_ml._types import BBox, Detection, ExifRecord
from models_ml.video import VideoInfo

ROOT = Path(__file__).resolve().parents[3]
MID = "2a5cad7b05cde589499533909274f5ece863e37a57e84fbad28c61a70f0c20ef"
MTIME = datetime(2024, 5, 1, 10, 0, 0)
NOW = datetime(2024, 6, 1)


def _image(exif: ExifRecord | None, **kw: object) -> rows.MediaRow:
    return rows.image_media_row(
        media_id=MID, source_uri="/card", file_path="S1/C1/IMG_1.JPG", file_size=10,
        file_modified_at=MTIME, site_id="S1", camera_id="C1", image_format="JPEG", exif=exif,
        width=64, height=48, run_id="r", ingested_at=NOW, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_a_photo_takes_its_time_from_exif_then_the_info_bar_then_the_file() -> None:
    taken = datetime(2024, 4, 30, 5, 6, 7)
    exif = ExifRecord(captured_at=taken, timestamp_tag="DateTimeOriginal", warnings=("w1",))
    row = _image(exif, ocr_warning="ocr said so")
    assert (row.captured_at, row.timestamp_source, row.timestamp_tag) == (
        taken, "exif", "DateTimeOriginal"
    )  # fmt: skip
    assert (row.exif_warnings, row.file_name, row.file_extension) == (
        "w1; ocr said so", "IMG_1.JPG", "jpg"
    )  # fmt: skip
    row = _image(ExifRecord(), ocr_at=taken)
    assert (row.captured_at, row.timestamp_source, row.timestamp_tag) == (taken, "ocr", "info_bar")
    row = _image(None)
    assert (row.timestamp_source, row.timestamp_tag, row.exif_warnings) == ("mtime", None, None)
    assert row.captured_at == rows.local_wall_time(MTIME)
    assert row.as_row()["media_type"] == "image" and row.as_row()["duration_s"] is None


def test_a_clip_shows_quicktime_utc_as_local_wall_time() -> None:
    created = datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC)
    info = VideoInfo("mov,mp4", "h264", 320, 180, 30.0, 15.0, 450, created, "creation_time",
                     {"make": "Trap"})  # fmt: skip
    row = rows.clip_media_row(
        media_id=MID, source_uri="/card", file_path="S1/c.mp4", file_size=9,
        file_modified_at=MTIME, site_id="S1", camera_id="S1", info=info, run_id="r",
        ingested_at=NOW, frames_sampled=15,
    )  # fmt: skip
    assert row.captured_at == rows.local_wall_time(created.replace(tzinfo=None))
    assert (row.timestamp_source, row.image_format, row.camera_make, row.frames_sampled) == (
        "container", "H264", "Trap", 15
    )  # fmt: skip


def test_boxes_labels_and_problems_keep_their_ids() -> None:
    dets = [Detection("animal", "animal", 0.91234567, BBox(0.1, 0.2, 0.3, 0.4), "md@1.0")]
    (det,) = rows.detection_rows(MID, dets, "r")
    assert (det.model_name, det.model_version, det.category_id, det.confidence) == (
        "md", "1.0", 1, 0.912346
    )  # fmt: skip
    (frame_det,) = rows.detection_rows(MID, dets, "r", frame_number=3, frame_time_s=0.1)
    assert frame_det.detection_id != det.detection_id
    imported = rows.detection_row(
        media_id=MID, model_name="md", model_version="1.0", index=0, category="animal",
        label="animal", confidence=0.9, bbox=[0.1, 0.2, 0.3, 0.4], run_id="r", detected_at=NOW,
        frame_number=3, frame_in_id=False,
    )  # fmt: skip
    assert imported.detection_id == det.detection_id
    label = rows.classification_row(
        detection_id=det.detection_id, media_id=MID, model_name="head", model_version="2",
        label="deer", probability=0.8, rank=1, geofence_status="allowed", run_id="r",
        classified_at=NOW,
    )  # fmt: skip
    by_name = rows.classification_row(
        detection_id=det.detection_id, media_id=MID, model_name="head", model_version="2",
        label="deer", probability=0.8, rank=1, geofence_status="no_list", run_id="r",
        classified_at=NOW, id_model="head",
    )  # fmt: skip
    assert label.classification_id != by_name.classification_id
    failure = rows.imported_failure_row(
        source_uri="/card", file_path="a.jpg", failure="Failure image access", run_id="r",
        media_id=MID, file_size=3, quarantined_at=NOW,
    )  # fmt: skip
    assert failure.reason == "Failure image access" and "could not process it" in failure.error
    with pytest.raises(ValueError, match="status"):
        rows.media_file_row(
            source_uri="/card", file_path="a.jpg", file_size=1, file_modified_at=None,
            media_id=None, status="lost", run_id="r",
        )  # fmt: skip


def test_every_builder_fills_its_table_exactly() -> None:
    """Each row's fields are the columns of its raw table (none missing, none extra)."""
    con = duckdb.connect()
    ensure_schema(con)
    for table, row_type in {
        "media": rows.MediaRow, "detections": rows.DetectionRow,
        "classifications": rows.ClassificationRow, "quarantine": rows.QuarantineRow,
        "media_files": rows.MediaFileRow, "detection_flags": rows.DetectionFlagRow,
    }.items():  # fmt: skip
        columns = {c for (c,) in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'raw' and table_name = ?", [table]).fetchall()}  # fmt: skip
        assert set(row_type.__dataclass_fields__) == columns, table
    q = rows.quarantine_row(
        source_uri="/card", file_path="a.jpg", reason=QuarantineReason.EMPTY_FILE,
        error="x", run_id="r",
    )  # fmt: skip
    assert q.as_row()["reason"] == "empty_file"


def test_no_module_builds_a_raw_row_by_hand() -> None:
    """raw.media, raw.detections, raw.classifications and raw.media_files rows are built in
    flows/store/rows.py only (a dict literal with their key columns anywhere else is a copy)."""
    keys = [
        {"media_type", "timestamp_source"},
        {"detection_id", "bbox_x"},
        {"classification_id", "probability"},
        {"seen_at", "status", "file_path"},
    ]
    offenders = []
    for path in sorted([*ROOT.glob("flows/**/*.py"), *ROOT.glob("dashboard/**/*.py")]):
        if path == ROOT / "flows" / "store" / "rows.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict):
                names = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                if any(k <= names for k in keys):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
