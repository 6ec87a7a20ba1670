"""flows.store: one Store per run, chosen once (a warehouse file or the lake), and the two
give the same rows for the same batch."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from flows.settings import load_settings
from flows.store import Store, open_store, store_for
from flows.store.lake import LakeStore
from flows.store.warehouse import WarehouseStore

REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2024, 5, 1, 6, 30)
RUN = "run-1"
SOURCE = "file:///cards/ruaha"
TABLES = {
    "media": "media_id",
    "detections": "detection_id",
    "classifications": "classification_id",
    "quarantine": "quarantine_id",
    "media_files": "file_path",
    "runs": "run_id",
}


def _batch() -> dict[str, list[dict[str, Any]]]:
    media = [
        {"media_id": f"m{i}", "source_uri": SOURCE, "file_path": f"cam07/IMG_{i}.JPG",
         "file_name": f"IMG_{i}.JPG", "file_extension": "jpg", "file_size": 1000 + i,
         "media_type": "image", "image_format": "JPEG", "site_id": "Ruaha", "camera_id": "cam07",
         "captured_at": T0.replace(minute=i), "timestamp_source": "exif", "latitude": -7.5,
         "longitude": 34.9, "run_id": RUN, "ingested_at": T0}
        for i in range(2)
    ]  # fmt: skip
    detections = [
        {"detection_id": f"d{i}", "media_id": f"m{i}", "model_name": "mdlite_yolox_tiny",
         "model_version": "1", "category": "animal", "category_id": 1, "label": "animal",
         "confidence": 0.8 - i / 10, "bbox_x": 0.1, "bbox_y": 0.2, "bbox_w": 0.3, "bbox_h": 0.4,
         "run_id": RUN, "detected_at": T0}
        for i in range(2)
    ]  # fmt: skip
    classifications = [
        {"classification_id": "c0", "detection_id": "d0", "media_id": "m0",
         "model_name": "species_head", "model_version": "1", "label": "zebra",
         "probability": 0.9, "rank": 1, "geofence_status": "no_list", "run_id": RUN,
         "classified_at": T0}
    ]  # fmt: skip
    quarantine = [
        {"quarantine_id": "q0", "source_uri": SOURCE, "file_path": "cam07/zero.JPG",
         "reason": "empty_file", "error": "the file is 0 bytes", "action": "skipped",
         "run_id": RUN, "quarantined_at": T0}
    ]  # fmt: skip
    files = [
        {"source_uri": SOURCE, "file_path": m["file_path"], "file_size": m["file_size"],
         "file_modified_at": T0, "media_id": m["media_id"], "status": "ingested", "run_id": RUN,
         "seen_at": T0}
        for m in media
    ]  # fmt: skip
    return {"media": media, "detections": detections, "classifications": classifications,
            "quarantine": quarantine, "files": files}  # fmt: skip


def _rows(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    with store.reading() as con:
        return {
            t: con.execute(f"select * from raw.{t} order by {key}").fetchall()
            for t, key in TABLES.items()
        }


def _one_run(store: Store) -> None:
    store.start_run(RUN, SOURCE, "flow-1", T0)
    batch = _batch()
    store.load_batch(f"{RUN}-b1", **batch)
    store.load_batch(f"{RUN}-b2", **batch)  # the same batch again adds nothing
    outside = {**batch["quarantine"][0], "quarantine_id": "q1", "file_path": "link.jpg",
               "reason": "outside_source"}  # fmt: skip
    store.write_quarantine([outside], f"{RUN}-outside")
    store.finish_run(RUN, {"finished_at": T0.replace(hour=7), "status": "completed",
                           "images_processed": 2, "duration_s": 1.5})  # fmt: skip


def test_warehouse_and_lake_stores_give_the_same_rows_for_one_batch(tmp_path: Path) -> None:
    warehouse = store_for(tmp_path / "w.duckdb")
    lake = store_for(tmp_path / "worker.duckdb", str(tmp_path / "lake"))
    assert isinstance(warehouse, WarehouseStore) and isinstance(lake, LakeStore)
    for store in (warehouse, lake):
        assert store.known_files(SOURCE) == {}
        assert store.known_media(["m0", "m9"]) == set()
        _one_run(store)

    got = _rows(warehouse)
    assert {t: len(rows) for t, rows in got.items()} == {
        "media": 2, "detections": 2, "classifications": 1, "quarantine": 2, "media_files": 2,
        "runs": 1,
    }  # fmt: skip
    assert got == _rows(lake)
    assert got["runs"][0][:6] == (RUN, "flow-1", SOURCE, T0, T0.replace(hour=7), "completed")
    for store in (warehouse, lake):
        assert store.known_media(["m0", "m1", "m9"]) == {"m0", "m1"}
        assert store.known_files(SOURCE) == {
            "cam07/IMG_0.JPG": (1000, T0), "cam07/IMG_1.JPG": (1001, T0)
        }  # fmt: skip
    assert warehouse.holds_history and not lake.holds_history
    assert list((tmp_path / "lake" / "media").glob("*.parquet"))  # the lake's rows are files


def test_a_lake_store_that_did_not_start_the_run_still_completes_its_record(
    tmp_path: Path,
) -> None:
    first = store_for(tmp_path / "worker.duckdb", str(tmp_path / "lake"))
    first.start_run(RUN, SOURCE, None, T0)
    second = store_for(tmp_path / "worker.duckdb", str(tmp_path / "lake"))  # e.g. a retry
    second.finish_run(RUN, {"finished_at": T0.replace(hour=8), "status": "completed"})
    with second.reading() as con:
        rows = con.execute("select run_id, source_uri, started_at, status from raw.runs")
        assert rows.fetchall() == [(RUN, SOURCE, T0, "completed")]


@pytest.mark.parametrize("lake", [None, "lake"])
def test_open_store_chooses_from_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lake: str | None
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(warehouse=str(tmp_path / "w.duckdb"), lake=lake)
    store = open_store(settings)
    assert type(store) is (LakeStore if lake else WarehouseStore)
    assert store.warehouse == settings.warehouse_path and store.lake == settings.lake


def test_the_storage_choice_is_made_in_one_place() -> None:
    """Only flows/store/ asks whether the settings name a lake; everything else holds a Store."""
    switch = re.compile(r"\bif\b[^\n]*\.lake\b|\.lake\s+(?:is|and|or)\b")
    offenders = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for folder in ("flows", "dashboard")
        for path in sorted((REPO / folder).rglob("*.py"))
        if "store" not in path.relative_to(REPO).parts
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if switch.search(line) and "store_for(" not in line  # building the chosen store
    ]
    assert offenders == []
