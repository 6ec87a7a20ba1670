"""The spine, end to end on the real sample photos, real models, real DuckDB and dbt."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import copy_samples, query

pytestmark = pytest.mark.slow


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _images(manifest_rows: list[dict[str, str]], camtrap_dir: Path) -> list[dict[str, str]]:
    from flows.settings import MEDIA_EXTENSIONS  # images and video clips

    exts = tuple(f".{e}" for e in MEDIA_EXTENSIONS)
    return [r for r in manifest_rows if r["path"].lower().endswith(exts)]


def test_every_listed_file_is_accounted_for(sample_run: dict[str, Any], manifest_rows, camtrap_dir):
    wh = sample_run["warehouse"]
    images = _images(manifest_rows, camtrap_dir)
    rows = query(wh, "select file_path, status from raw.media_files")
    assert sorted(p for p, _ in rows) == sorted(r["path"] for r in images)
    assert {s for _, s in rows} <= {"ingested", "duplicate", "quarantined"}
    summary = sample_run["summary"]
    assert summary.files_listed == len(images)
    assert summary.stats.images + summary.stats.duplicates + summary.stats.quarantined == len(
        images
    )


def test_identity_is_the_sha256(sample_run: dict[str, Any], manifest_rows, camtrap_dir):
    wh = sample_run["warehouse"]
    shas = {
        _sha(camtrap_dir / r["path"])
        for r in _images(manifest_rows, camtrap_dir)
        if (camtrap_dir / r["path"]).stat().st_size
    }
    media = {m for (m,) in query(wh, "select media_id from raw.media")}
    quarantined = {
        m
        for (m,) in query(
            wh,
            "select media_id from raw.quarantine where action = 'skipped' and media_id is not null",
        )
    }
    assert media | quarantined == shas
    assert not media & quarantined
    # the sample set holds byte-identical copies (camtrapR species_dir vs raw_images)
    assert len(media) + len(quarantined) < sum(1 for _ in _images(manifest_rows, camtrap_dir))


def test_exif_timestamps_equal_the_manifest(sample_run: dict[str, Any], manifest_rows, camtrap_dir):
    wh = sample_run["warehouse"]
    by_sha = {
        m: (t, s, tag)
        for m, t, s, tag in query(
            wh, "select media_id, captured_at, timestamp_source, timestamp_tag from raw.media"
        )
    }
    checked, wrong = 0, []
    for row in _images(manifest_rows, camtrap_dir):
        path = camtrap_dir / row["path"]
        sha = _sha(path) if path.stat().st_size else None
        if sha not in by_sha:
            continue  # quarantined (zero-byte, truncated): see the quarantine test
        captured_at, source, tag = by_sha[sha]
        if row["exif_datetime"]:
            checked += 1
            got = captured_at.strftime("%Y:%m:%d %H:%M:%S") if captured_at else None
            if source != "exif" or got != row["exif_datetime"]:
                wrong.append((row["path"], row["exif_datetime"], got, source))
        else:
            # no DateTimeOriginal: the file time, or another tag (DateTime, Reconyx maker note)
            assert source == "mtime" or tag != "DateTimeOriginal", row["path"]
    assert not wrong
    assert checked >= 140


def test_every_person_image_gets_a_person_box(
    sample_run: dict[str, Any], manifest_rows, camtrap_dir
):
    wh = sample_run["warehouse"]
    people = [r for r in _images(manifest_rows, camtrap_dir) if r["has_person"] == "yes"]
    assert len(people) >= 4
    for row in people:
        best = query(
            wh,
            "select max(confidence) from raw.detections where media_id = ? and category = 'person'",
            [_sha(camtrap_dir / row["path"])],
        )[0][0]
        assert best is not None and best >= 0.5, (row["path"], best)


def test_boxes_are_normalised_and_above_the_floor(sample_run: dict[str, Any]):
    wh = sample_run["warehouse"]
    (bad,) = query(
        wh,
        "select count(*) from raw.detections where confidence < 0.05 or confidence > 1 "
        "or bbox_x < 0 or bbox_y < 0 or bbox_w <= 0 or bbox_h <= 0 "
        "or bbox_x + bbox_w > 1.000001 or bbox_y + bbox_h > 1.000001",
    )[0]
    assert bad == 0
    models = {r for r in query(wh, "select distinct model_name, category from raw.detections")}
    assert ("mdlite_yolox_tiny", "animal") in models
    assert ("yolox_nano_coco", "person") in models
    assert not any(m == "mdlite_yolox_tiny" and c != "animal" for m, c in models)


def test_bad_samples_are_quarantined_with_reasons(sample_run: dict[str, Any]):
    wh = sample_run["warehouse"]
    rows = {
        p: (reason, action, error)
        for p, reason, action, error in query(
            wh, "select file_path, reason, action, error from raw.quarantine"
        )
    }
    zero = "conservationtechlab__animl-py/examples/Southwest/error_img.JPG"
    assert rows[zero][:2] == ("empty_file", "skipped")
    truncated = "google__cameratrapai/test_data/african_elephants_truncated_file.jpg"
    assert rows[truncated][:2] == ("truncated", "skipped")
    png = "agentmorris__MegaDetector/images/failure-examples/sample-skyisland-frontfence-0.png"
    assert png not in rows  # a real PNG named .png is fine
    for _path, (_reason, _action, error) in rows.items():
        assert len(error) > 20  # says what went wrong and what to do


def test_marts_are_built(sample_run: dict[str, Any]):
    wh = sample_run["warehouse"]
    cats = dict(
        query(wh, "select category, sum(images) from marts.fct_daily_population group by 1")
    )
    assert cats.get("animal", 0) >= 70  # 76 measured: camtrapR thumbnails (100x75) are too small
    assert cats.get("person", 0) >= 3
    runs = query(wh, "select status, images_processed, model_versions from raw.runs")
    assert runs[0][0] == "completed"
    assert "mdlite_yolox_tiny@" in runs[0][2] and "yolox_nano_coco@" in runs[0][2]


def test_rerun_adds_nothing(sample_run: dict[str, Any], camtrap_dir: Path):
    from flows.ingest import ingest

    wh = sample_run["warehouse"]
    tables = ["raw.media", "raw.detections", "raw.quarantine", "raw.media_files"]
    before = [query(wh, f"select count(*) from {t}")[0][0] for t in tables]
    again = ingest(source=str(camtrap_dir), warehouse=str(wh), build=False)
    assert again.files_new == 0 and again.stats.images == 0
    assert [query(wh, f"select count(*) from {t}")[0][0] for t in tables] == before


def test_copies_and_renames_are_one_media_row(prefect_harness, trapflow_env, camtrap_dir, tmp_path):
    from flows.ingest import ingest

    src = tmp_path / "card"
    a, b = copy_samples(
        camtrap_dir,
        src,
        [
            "agentmorris__MegaDetector/images/idaho-camera-traps.jpg",
            "google__cameratrapai/test_data/human.jpg",
        ],
    )
    (src / "copies").mkdir()
    (src / "copies" / "renamed.JPG").write_bytes(a.read_bytes())
    wh = tmp_path / "w.duckdb"
    first = ingest(source=str(src), warehouse=str(wh), build=False)
    assert (first.stats.images, first.stats.duplicates) == (2, 1)
    b.rename(b.with_name("moved.jpg"))
    second = ingest(source=str(src), warehouse=str(wh), build=False)
    assert (second.files_new, second.stats.images, second.stats.duplicates) == (1, 0, 1)
    assert query(wh, "select count(*) from raw.media")[0][0] == 2
    assert query(wh, "select count(distinct media_id) from raw.detections")[0][0] == 2


def test_layout_names_site_and_camera(prefect_harness, trapflow_env, camtrap_dir, tmp_path):
    from flows.ingest import ingest

    src = tmp_path / "cards"
    img = camtrap_dir / "agentmorris__MegaDetector/images/idaho-camera-traps.jpg"
    for rel in ["KNP-01/cam-a/100RECNX/IMG_0001.JPG", "KNP-02/cam-b/IMG_0002.jpg"]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        data = bytearray(img.read_bytes())
        data += rel.encode()  # distinct bytes: trailing data after the JPEG end marker
        (src / rel).write_bytes(bytes(data))
    wh = tmp_path / "w.duckdb"
    ingest(source=str(src), warehouse=str(wh), layout="{site}/{camera}/...", build=False)
    got = sorted(query(wh, "select site_id, camera_id from raw.media"))
    assert got == [("KNP-01", "cam-a"), ("KNP-02", "cam-b")]


def test_captured_at_falls_back_to_mtime(prefect_harness, trapflow_env, camtrap_dir, tmp_path):
    import os

    from flows.ingest import ingest

    # a jaguar sample without EXIF
    no_exif = next(
        p for p in (camtrap_dir / "conservationtechlab__animl-py/examples/Jaguar").iterdir()
    )
    src = tmp_path / "card"
    (src / "site").mkdir(parents=True)
    target = src / "site" / no_exif.name
    target.write_bytes(no_exif.read_bytes())
    stamp = datetime(2024, 3, 1, 12, 30).timestamp()
    os.utime(target, (stamp, stamp))
    wh = tmp_path / "w.duckdb"
    ingest(source=str(src), warehouse=str(wh), build=False)
    ((captured, source),) = query(wh, "select captured_at, timestamp_source from raw.media")
    assert source == "mtime"
    assert abs((captured - datetime.fromtimestamp(stamp)).total_seconds()) < 1
