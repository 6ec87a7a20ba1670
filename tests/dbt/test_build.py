"""`dbt build` end to end: a real DuckDB file with raw.* from flows/store/schema/*.sql, a hand-made
fixture, dbt run as a subprocess (as the flows run it), then the marts read back read-only.

The fixture (2 sites, 2 camera-local days) puts boxes from both detectors around the default
thresholds (animal 0.25, person 0.5, vehicle 0.5) so every rule shows in the expected rows:
thresholds are inclusive, the other model's boxes of a category are never counted, an older
model version's boxes of a re-run media are not counted twice, a burst of two distinct files
with the same timestamp counts as two images, and a byte-identical copy is one media row.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from flows.store.warehouse import ensure_schema, open_file

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = REPO_ROOT / "dbt"
RAW_SCHEMA_SQL = REPO_ROOT / "flows" / "_schema.sql"
DBT_EXECUTABLE = Path(sys.executable).parent / "dbt"

MDLITE = ("mdlite_yolox_tiny", "20220528")
COCO = ("yolox_nano_coco", "0.1.1rc0")
RUN_ID = "run-1"
SOURCE_URI = "/data/cards"

FCT_COLUMNS = (
    "images",
    "detections",
    "max_count_in_image",
    "cameras",
    "first_seen_at",
    "last_seen_at",
)


def sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


# ----------------------------------------------------------------------------- fixture rows

# (name, site, camera, captured_at or None, timestamp_source)
MEDIA = [
    ("m1", "S1", "C1", "2024-06-01 06:10:00", "exif"),
    ("m2", "S1", "C1", "2024-06-01 06:10:00", "exif"),  # burst: same camera and second, other bytes
    ("m3", "S1", "C2", "2024-06-01 23:59:59.500", "exif"),  # last half-second of the local day
    ("m4", "S1", "C1", "2024-06-02 00:00:01", "mtime"),
    ("m5", "S2", "C3", "2024-06-01 12:00:00", "exif"),
    ("m6", "S2", "C3", "2024-06-02 08:00:00", "exif"),  # empty image: no boxes at all
    ("m7", "S2", "C3", "2024-06-02 09:00:00", "exif"),
    ("m8", "S2", "C3", None, "mtime"),  # no usable timestamp: in dim_media, not in the fact
    ("m9", "S2", "C4", "2024-06-01 14:30:00", "exif"),
]

# (media, (model, version), category, label, confidence[, detected_at])
DETECTIONS: list[tuple[Any, ...]] = [
    ("m1", MDLITE, "animal", "animal", 0.80),
    ("m1", MDLITE, "animal", "animal", 0.30),
    ("m1", MDLITE, "animal", "animal", 0.20),  # below 0.25
    ("m1", COCO, "animal", "dog", 0.90),  # second opinion: never counted
    ("m2", MDLITE, "animal", "animal", 0.25),  # exactly at the threshold: counted
    ("m3", MDLITE, "animal", "animal", 0.60),
    ("m3", COCO, "person", "person", 0.55),
    ("m3", COCO, "person", "person", 0.45),  # below 0.5
    ("m4", COCO, "vehicle", "car", 0.70),
    ("m4", COCO, "vehicle", "truck", 0.50),  # exactly at the threshold
    ("m4", COCO, "vehicle", "car", 0.49),  # below 0.5
    ("m4", MDLITE, "animal", "animal", 0.24),  # below 0.25
    ("m5", MDLITE, "animal", "animal", 0.95, "2024-06-03 10:00:00"),
    ("m5", MDLITE, "animal", "animal", 0.85, "2024-06-03 10:00:00"),
    ("m5", MDLITE, "animal", "animal", 0.75, "2024-06-03 10:00:00"),
    # the same image run a day earlier with an older MegadetectorLite: not counted again
    ("m5", ("mdlite_yolox_tiny", "20210101"), "animal", "animal", 0.90, "2024-06-02 10:00:00"),
    ("m5", ("mdlite_yolox_tiny", "20210101"), "animal", "animal", 0.90, "2024-06-02 10:00:00"),
    ("m5", COCO, "person", "person", 0.30),  # below 0.5
    ("m7", COCO, "person", "person", 0.99),
    ("m7", MDLITE, "animal", "animal", 0.26),
    ("m7", COCO, "animal", "bird", 0.80),  # second opinion: never counted
    ("m8", MDLITE, "animal", "animal", 0.90),
    ("m9", MDLITE, "animal", "animal", 0.50),
]

CATEGORY_IDS = {"animal": 1, "person": 2, "vehicle": 3}


def media_rows() -> list[dict[str, Any]]:
    rows = []
    for name, site, camera, captured_at, timestamp_source in MEDIA:
        rows.append(
            {
                "media_id": sha(name),
                "source_uri": SOURCE_URI,
                "file_path": f"{site}/{camera}/{name}.JPG",
                "file_name": f"{name}.JPG",
                "file_extension": "jpg",
                "file_size": 123_456,
                "file_modified_at": ts("2024-06-05 12:00:00"),
                "media_type": "image",
                "image_format": "JPEG",
                "site_id": site,
                "camera_id": camera,
                "captured_at": ts(captured_at) if captured_at else None,
                "timestamp_source": timestamp_source,
                "timestamp_tag": "DateTimeOriginal" if timestamp_source == "exif" else None,
                "latitude": -1.5 if site == "S1" else None,
                "longitude": 36.8 if site == "S1" else None,
                "camera_make": "Browning",
                "camera_model": "BTC-8E",
                "camera_serial": f"SN-{camera}",
                "width": 1920,
                "height": 1080,
                "orientation": 1,
                "run_id": RUN_ID,
                "ingested_at": ts("2024-06-05 12:00:00"),
            }
        )
    return rows


def detection_rows() -> list[dict[str, Any]]:
    rows = []
    box_index: dict[tuple[str, str, str], int] = {}
    for media, (model, version), category, label, confidence, *rest in DETECTIONS:
        key = (media, model, version)
        index = box_index[key] = box_index.get(key, -1) + 1
        rows.append(
            {
                "detection_id": hashlib.md5(
                    f"{sha(media)}|{model}@{version}|{index}".encode(), usedforsecurity=False
                ).hexdigest(),
                "media_id": sha(media),
                "model_name": model,
                "model_version": version,
                "category": category,
                "category_id": CATEGORY_IDS[category],
                "label": label,
                "confidence": confidence,
                "bbox_x": 0.1,
                "bbox_y": 0.2,
                "bbox_w": 0.3,
                "bbox_h": 0.4,
                "frame_number": None,
                "run_id": RUN_ID,
                "detected_at": ts(rest[0] if rest else "2024-06-05 12:00:00"),
            }
        )
    return rows


def bookkeeping_rows() -> dict[str, list[dict[str, Any]]]:
    seen = ts("2024-06-05 12:00:00")
    files = [
        {
            "source_uri": SOURCE_URI,
            "file_path": row["file_path"],
            "file_size": row["file_size"],
            "file_modified_at": row["file_modified_at"],
            "media_id": row["media_id"],
            "status": "ingested",
            "run_id": RUN_ID,
            "seen_at": seen,
        }
        for row in media_rows()
    ]
    # a byte-identical copy of m1 under another name: the same media row, no extra counts
    files.append({**files[0], "file_path": "S1/C1/copy of m1.JPG", "status": "duplicate"})
    files.append(
        {
            **files[0],
            "file_path": "S1/C1/empty.JPG",
            "file_size": 0,
            "media_id": None,
            "status": "quarantined",
        }
    )
    quarantine = [
        {
            "quarantine_id": hashlib.md5(b"empty", usedforsecurity=False).hexdigest(),
            "source_uri": SOURCE_URI,
            "file_path": "S1/C1/empty.JPG",
            "media_id": None,
            "file_size": 0,
            "reason": "empty_file",
            "error": "the file is empty; re-copy it from the card",
            "action": "skipped",
            "run_id": RUN_ID,
            "quarantined_at": seen,
        }
    ]
    runs = [
        {
            "run_id": RUN_ID,
            "source_uri": SOURCE_URI,
            "started_at": ts("2024-06-05 11:59:00"),
            "finished_at": seen,
            "status": "completed",
            "files_listed": len(files),
            "model_versions": "mdlite_yolox_tiny@20220528, yolox_nano_coco@0.1.1rc0",
        }
    ]
    return {"media_files": files, "quarantine": quarantine, "runs": runs}


# ----------------------------------------------------------------------------- helpers


def create_warehouse(path: Path, tables: dict[str, list[dict[str, Any]]]) -> Path:
    """Create raw.* exactly as the flows do (flows/store/schema/*.sql) and insert the given rows."""
    with open_file(path) as con:
        ensure_schema(con)
        for table, rows in tables.items():
            for row in rows:
                columns = ", ".join(row)
                marks = ", ".join("?" for _ in row)
                con.execute(
                    f"insert into raw.{table} ({columns}) values ({marks})", list(row.values())
                )
    return path


def full_fixture() -> dict[str, list[dict[str, Any]]]:
    return {"media": media_rows(), "detections": detection_rows(), **bookkeeping_rows()}


def dbt_build(
    warehouse: Path, work_dir: Path, *extra: str, command: str = "build"
) -> subprocess.CompletedProcess[str]:
    """Run `dbt build` the way the flows do (flows/store/dbt.py): a subprocess in the
    warehouse's folder naming the file ``./<name>``, target/ and logs/ outside the repo, a new
    target seeded with the last parse of this name and vars, and no YAML unit tests (the one
    test of them selects them with ``command="test"``)."""
    from flows.store.dbt import UNIT_TESTS_OFF, keep_parse, seed_parse

    target = work_dir / "target"
    dbt_vars = extra[extra.index("--vars") + 1] if "--vars" in extra else ""
    argv = [
        str(DBT_EXECUTABLE),
        command,
        "--project-dir", str(DBT_PROJECT_DIR),
        "--profiles-dir", str(DBT_PROJECT_DIR),
        "--target-path", str(target),
        "--log-path", str(work_dir / "logs"),
        "--no-use-colors",
        "--warn-error",
        *(UNIT_TESTS_OFF if command == "build" else ()),
        *extra,
    ]  # fmt: skip
    env = {
        **os.environ,
        "TRAPFLOW_WAREHOUSE": os.path.join(".", warehouse.name),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    seed = seed_parse(target, warehouse.name, dbt_vars)
    result = subprocess.run(
        argv, cwd=warehouse.parent, env=env, capture_output=True, text=True, timeout=180,
        check=False,
    )  # fmt: skip
    if result.returncode == 0:
        keep_parse(target, seed)
    return result


def assert_built(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"dbt build failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    )
    assert "ERROR=0" in result.stdout and "WARN=0" in result.stdout, result.stdout[-3000:]


def read_daily_population(warehouse: Path) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    with open_file(warehouse, read_only=True) as con:
        rows = con.execute(
            f"select captured_on, site_id, category, label, {', '.join(FCT_COLUMNS)}"
            " from marts.fct_daily_population where images > 0"
        ).fetchall()
    return {
        (captured_on.isoformat(), site, category, label): dict(
            zip(FCT_COLUMNS, values, strict=True)
        )
        for captured_on, site, category, label, *values in rows
    }


def population_row(
    images: int, max_count: int, cameras: int, first: str, last: str, confidences: list[float]
) -> dict[str, Any]:
    """An expected fct_daily_population row; `confidences` are the counted boxes."""
    return {
        "images": images,
        "detections": len(confidences),
        "max_count_in_image": max_count,
        "cameras": cameras,
        "first_seen_at": ts(first),
        "last_seen_at": ts(last),
    }


# ----------------------------------------------------------------------------- tests

S1_DAY1, S1_DAY1_END = "2024-06-01 06:10:00", "2024-06-01 23:59:59.5"
S1_DAY2 = "2024-06-02 00:00:01"
S2_DAY1, S2_DAY1_END, S2_DAY2 = "2024-06-01 12:00:00", "2024-06-01 14:30:00", "2024-06-02 09:00:00"

EXPECTED_DEFAULT = {
    # m1 (0.80, 0.30) + m2 (0.25, at the threshold) + m3 (0.60); m1's 0.20 and COCO dog are out
    ("2024-06-01", "S1", "animal", "animal"): population_row(
        3, 2, 2, S1_DAY1, S1_DAY1_END, [0.80, 0.30, 0.25, 0.60]
    ),
    ("2024-06-01", "S1", "person", "person"): population_row(
        1, 1, 1, S1_DAY1_END, S1_DAY1_END, [0.55]
    ),
    ("2024-06-02", "S1", "vehicle", "car"): population_row(1, 1, 1, S1_DAY2, S1_DAY2, [0.70]),
    ("2024-06-02", "S1", "vehicle", "truck"): population_row(1, 1, 1, S1_DAY2, S1_DAY2, [0.50]),
    # m5 (3 boxes of the latest version; the older version's 2 are not counted) + m9 on C4
    ("2024-06-01", "S2", "animal", "animal"): population_row(
        2, 3, 2, S2_DAY1, S2_DAY1_END, [0.95, 0.85, 0.75, 0.50]
    ),
    ("2024-06-02", "S2", "animal", "animal"): population_row(1, 1, 1, S2_DAY2, S2_DAY2, [0.26]),
    ("2024-06-02", "S2", "person", "person"): population_row(1, 1, 1, S2_DAY2, S2_DAY2, [0.99]),
}


def fixture_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy, in a new folder, of the full fixture built by `dbt build` with the default vars,
    built once per test run (conftest's built_once): the modules that start from it only read
    it or build it again."""
    from tests.conftest import built_once

    def build(folder: Path) -> None:
        assert_built(
            dbt_build(create_warehouse(folder / "warehouse.duckdb", full_fixture()), folder)
        )

    return built_once("dbt-fixture", tmp_path_factory, build).joinpath("warehouse.duckdb")


@pytest.fixture(scope="module")
def built_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture_built(tmp_path_factory)


def test_the_yaml_unit_tests_pass_here_and_a_run_s_build_skips_them(
    built_warehouse: Path, tmp_path: Path
) -> None:
    """The unit tests hold on their own rows; trapflow's builds leave them out (UNIT_TESTS_OFF)."""
    from flows.settings import Settings
    from flows.store.dbt import run_dbt

    unit = dbt_build(built_warehouse, tmp_path, "--select", "test_type:unit", command="test")
    assert_built(unit)
    passed = re.search(r"PASS=(\d+)", unit.stdout)
    assert passed and int(passed.group(1)) >= 10, unit.stdout[-3000:]
    warehouse = create_warehouse(tmp_path / "warehouse.duckdb", full_fixture())
    run = run_dbt(Settings(warehouse=warehouse, home=tmp_path / "home"), "build")
    assert "unit_test" not in run.output and "ERROR=0" in run.output, run.output[-3000:]


def test_daily_population_counts_with_default_vars(built_warehouse: Path) -> None:
    assert read_daily_population(built_warehouse) == EXPECTED_DEFAULT


def test_marts_land_in_the_marts_schema_with_the_contract_types(built_warehouse: Path) -> None:
    with open_file(built_warehouse, read_only=True) as con:
        relations = set(
            con.execute(
                "select table_schema, table_name, table_type from information_schema.tables"
                " where table_schema not in ('raw', 'review')"
            ).fetchall()
        )
        fct_types = con.execute(
            "select column_name, data_type from information_schema.columns"
            " where table_schema = 'marts' and table_name = 'fct_daily_population'"
            " order by ordinal_position"
        ).fetchall()
    assert {
        ("marts", "fct_daily_population", "BASE TABLE"),
        ("marts", "dim_media", "BASE TABLE"),
        ("intermediate", "int_detections_filtered_to_threshold", "VIEW"),
        ("intermediate", "int_detections_labelled", "BASE TABLE"),  # incremental
        ("staging", "stg_pipeline__media", "VIEW"),
        ("staging", "stg_pipeline__detections", "VIEW"),
    } <= relations
    schemas = {schema for schema, _, _ in relations}  # plus the flows' own (alerts, ...)
    assert {"staging", "intermediate", "marts"} <= schemas and "main" not in schemas
    assert fct_types == [
        ("captured_on", "DATE"),
        ("site_id", "VARCHAR"),
        ("category", "VARCHAR"),
        ("label", "VARCHAR"),
        ("events", "BIGINT"),
        ("max_count", "BIGINT"),
        ("sum_max_count", "BIGINT"),
        ("images", "BIGINT"),
        ("detections", "BIGINT"),
        ("max_count_in_image", "BIGINT"),
        ("cameras", "BIGINT"),
        ("first_seen_at", "TIMESTAMP"),
        ("last_seen_at", "TIMESTAMP"),
        ("trap_nights", "DOUBLE"),
        ("rai", "DOUBLE"),
    ]
    new_marts = {
        "fct_events", "fct_camera_operation", "fct_human_activity", "fct_population_variance",
        "fct_population_trend", "dim_deployments",
    }  # fmt: skip
    assert {("marts", name, "BASE TABLE") for name in new_marts} <= relations


def test_dim_media_has_one_row_per_media_with_counted_boxes(built_warehouse: Path) -> None:
    with open_file(built_warehouse, read_only=True) as con:
        rows = con.execute(
            "select media_id, site_id, camera_id, captured_on, has_animal, has_person,"
            " has_vehicle, n_animals, n_persons, n_vehicles from marts.dim_media"
        ).fetchall()
    by_media = {media_id: rest for media_id, *rest in rows}
    names = {sha(name): name for name, *_ in MEDIA}
    assert len(rows) == len(MEDIA)  # the duplicate file is not a second media row
    got = {names[media_id]: tuple(rest) for media_id, rest in by_media.items()}
    d1, d2 = date(2024, 6, 1), date(2024, 6, 2)
    assert got == {
        "m1": ("S1", "C1", d1, True, False, False, 2, 0, 0),
        "m2": ("S1", "C1", d1, True, False, False, 1, 0, 0),
        "m3": ("S1", "C2", d1, True, True, False, 1, 1, 0),
        "m4": ("S1", "C1", d2, False, False, True, 0, 0, 2),
        "m5": ("S2", "C3", d1, True, False, False, 3, 0, 0),
        "m6": ("S2", "C3", d2, False, False, False, 0, 0, 0),
        "m7": ("S2", "C3", d2, True, True, False, 1, 1, 0),
        "m8": ("S2", "C3", None, True, False, False, 1, 0, 0),
        "m9": ("S2", "C4", d1, True, False, False, 1, 0, 0),
    }


def test_threshold_vars_change_the_counts(tmp_path: Path) -> None:
    warehouse = create_warehouse(tmp_path / "warehouse.duckdb", full_fixture())
    thresholds = {"detection_thresholds": {"animal": 0.9, "person": 0.5, "vehicle": 0.5}}
    assert_built(dbt_build(warehouse, tmp_path, "--vars", json.dumps(thresholds)))

    # persons and vehicles are unchanged
    expected = {key: row for key, row in EXPECTED_DEFAULT.items() if key[2] != "animal"}
    # only m5's 0.95 reaches 0.9; the COCO dog (0.90) and bird (0.80) are still not counted
    expected[("2024-06-01", "S2", "animal", "animal")] = population_row(
        1, 1, 1, S2_DAY1, S2_DAY1, [0.95]
    )
    assert read_daily_population(warehouse) == expected


def test_incomplete_threshold_vars_fail_loudly(tmp_path: Path) -> None:
    warehouse = create_warehouse(tmp_path / "warehouse.duckdb", {})
    result = dbt_build(warehouse, tmp_path, "--vars", '{"detection_thresholds": {"animal": 0.9}}')
    assert result.returncode != 0
    assert "no threshold for 'person'" in result.stdout


def test_build_on_an_empty_raw_schema(tmp_path: Path) -> None:
    warehouse = create_warehouse(tmp_path / "warehouse.duckdb", {})
    assert_built(dbt_build(warehouse, tmp_path))
    with open_file(warehouse, read_only=True) as con:
        assert con.execute("select count(*) from marts.fct_daily_population").fetchone() == (0,)
        assert con.execute("select count(*) from marts.dim_media").fetchone() == (0,)
        # the dashboard's marts exist before any data, and nothing is behind
        assert con.execute("select count(*) from marts.fct_detections").fetchone() == (0,)
        assert con.execute("select count(*) from marts.fct_alerts").fetchone() == (0,)
        assert con.execute(
            "select b.media, b.built_through_at, f.is_stale, f.media_since_build "
            "from marts.marts_build as b cross join marts.marts_freshness as f"
        ).fetchone() == (0, None, False, 0)


# ----------------------------------------------------------------------------- dashboard marts

DASHBOARD_VIEWS = (
    "fct_detections", "fct_alerts", "fct_pipeline_runs", "fct_quarantine", "fct_label_reviews",
    "marts_freshness",
)  # fmt: skip


def test_dashboard_marts_match_raw_on_the_fixture(built_warehouse: Path) -> None:
    with open_file(built_warehouse, read_only=True) as con:
        kinds = dict(
            con.execute(
                "select table_name, table_type from information_schema.tables"
                " where table_schema = 'marts'"
            ).fetchall()
        )
        raw_boxes = con.execute(
            "select detection_id, media_id, model_name || '@' || model_version, category, label,"
            " confidence, bbox_x, bbox_y, bbox_w, bbox_h from raw.detections"
        ).fetchall()
        boxes = con.execute(
            "select detection_id, media_id, model_ref, detector_category, detector_label,"
            " confidence, bbox_x, bbox_y, bbox_w, bbox_h from marts.fct_detections"
        ).fetchall()
        candidates = con.execute(
            "select detection_id, label, is_counted from marts.fct_detections where is_candidate"
        ).fetchall()
        labelled = con.execute(
            "select detection_id, label, is_counted from intermediate.int_detections_labelled"
        ).fetchall()
        placed = con.execute(
            "select count(*) from marts.fct_detections as d join raw.media as m using (media_id)"
            " where (d.site_id, d.camera_id) is distinct from (m.site_id, m.camera_id)"
            " or d.captured_at is distinct from m.captured_at"
        ).fetchone()
        runs = con.execute(
            "select run_id, run_status, files_listed, images_per_s from marts.fct_pipeline_runs"
        ).fetchall()
        quarantined = con.execute(
            "select file_path, reason, action, is_skipped from marts.fct_quarantine"
        ).fetchall()
        build = con.execute(
            "select b.media, b.built_through_at, f.is_stale from marts.marts_build as b"
            " cross join marts.marts_freshness as f"
        ).fetchall()
    assert {v: kinds.get(v) for v in DASHBOARD_VIEWS} == dict.fromkeys(DASHBOARD_VIEWS, "VIEW")
    assert kinds["marts_build"] == "BASE TABLE"
    # every raw box once, with its model and geometry as raw has them
    assert len(boxes) == len(raw_boxes) == len(DETECTIONS)
    assert sorted(boxes) == sorted(raw_boxes)
    # the candidates (and their labels and verdicts) are the ones the counting rules chose
    # (m1 2, m2 1, m3 2, m4 2, m5 3 of the latest version, m7 2, m8 1, m9 1)
    assert sorted(candidates) == sorted(labelled) and len(candidates) == 14
    assert placed == (0,)
    assert runs == [(RUN_ID, "completed", 11, None)]  # no duration recorded: no rate
    assert quarantined == [("S1/C1/empty.JPG", "empty_file", "skipped", True)]
    assert build == [(len(MEDIA), ts("2024-06-05 12:00:00"), False)]


def _insert(con: duckdb.DuckDBPyConnection, table: str, row: dict[str, Any]) -> None:
    con.execute(
        f"insert into {table} ({', '.join(row)}) values ({', '.join('?' for _ in row)})",
        list(row.values()),
    )


def test_dashboard_views_show_writes_before_the_next_build(
    built_warehouse: Path, tmp_path: Path
) -> None:
    """Reviews, alerts, runs and new media written after a build show in the marts at once;
    an alert's URL never does, and the freshness view says the tables are behind."""

    warehouse = tmp_path / "copy.duckdb"
    shutil.copy2(built_warehouse, warehouse)
    m1_box = next(r for r in detection_rows() if r["media_id"] == sha("m1"))
    secret = "json://user:hunter2@hooks.example.org/T0/B1/abcdefSECRET?token=s3cr3t"
    with open_file(warehouse) as con:
        _insert(con, "review.labels", {
            "label_id": "r1", "media_id": sha("m1"), "detection_id": m1_box["detection_id"],
            "category": "animal", "label": "kudu", "is_false_positive": False,
            "reviewer": "ann", "reviewed_at": ts("2024-06-06 09:00:00"),
        })  # fmt: skip
        _insert(con, "alerts.outbox", {
            "alert_id": "a1", "rule_name": f"people ({secret})", "rule_kind": "human",
            "kind": "alert", "site_id": "S1", "camera_id": "C1", "media_id": sha("m3"),
            "media_count": 1, "title": "Person at site S1, see https://dash.example.org/?m=1",
            "body": f"[open]({secret})", "channels": "rangers", "status": "failed",
            "attempts": 3, "last_error": f"json://127.0.0.1:8000/***: 500; {secret}",
            "next_attempt_at": ts("2024-06-06 10:00:00"),
            "created_at": ts("2024-06-06 09:00:00"),
        })  # fmt: skip
        _insert(con, "raw.runs", {
            "run_id": "run-2", "source_uri": SOURCE_URI, "status": "running",
            "started_at": ts("2024-06-06 09:00:00"),
        })  # fmt: skip
        _insert(con, "raw.media", {
            **media_rows()[0], "media_id": sha("m10"), "file_path": "S1/C1/m10.JPG",
            "run_id": "run-2", "ingested_at": ts("2024-06-06 09:01:00"),
        })  # fmt: skip
    with open_file(warehouse, read_only=True) as con:  # as the dashboard reads
        box = con.execute(
            "select label, label_source, is_reviewed, is_counted from marts.fct_detections"
            " where detection_id = ?",
            [m1_box["detection_id"]],
        ).fetchone()
        history = con.execute(
            "select label_id, detection_id, site_id, label, is_latest from marts.fct_label_reviews"
        ).fetchall()
        alert = con.execute("select * from marts.fct_alerts").df()
        running = con.execute(
            "select run_id, run_status from marts.fct_pipeline_runs order by started_at desc"
        ).fetchall()
        fresh = con.execute(
            "select is_stale, media_since_build, latest_ingested_at from marts.marts_freshness"
        ).fetchone()
    assert box == ("kudu", "review", True, True)
    assert history == [("r1", m1_box["detection_id"], "S1", "kudu", True)]
    assert running[0] == ("run-2", "running")
    assert fresh == (True, 1, ts("2024-06-06 09:01:00"))
    # the alert: shown, with every URL replaced and no column left that could carry one
    assert len(alert) == 1 and "body" not in alert.columns and "thumbnail" not in alert.columns
    row = alert.iloc[0]
    assert (row["alert_status"], row["attempts"], row["targets_delivered"]) == ("failed", 3, 0)
    assert row["title"] == "Person at site S1, see <url>"
    assert row["last_error"] == "<url> 500; <url>"  # the URL runs to the next space
    text = " ".join(str(v) for v in row.to_numpy())
    assert "://" not in text and "hunter2" not in text and "s3cr3t" not in text


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{camera_down_gap_days: -1}", "var camera_down_gap_days must be a number > 0; got -1"),
        ("{time_check_min_share: 2}", "var time_check_min_share must be a number > 0 and <= 1"),
        ("{listed_downtime_from_gaps: 'yes'}", "var listed_downtime_from_gaps must be true or"),
    ],
)
def test_a_bad_var_fails_the_compile_naming_it(tmp_path: Path, bad: str, message: str) -> None:
    """Every group of checked vars (macros/population_settings.sql: checked_numbers) refuses a
    value it cannot use before anything is built."""
    warehouse = create_warehouse(tmp_path / "warehouse.duckdb", {})
    result = dbt_build(warehouse, tmp_path, "--vars", bad, command="compile")
    assert result.returncode != 0
    assert message in result.stdout
