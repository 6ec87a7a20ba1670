"""The population marts on hand-made warehouses: events, effort, RAI, people, deployments,
reviews, and the incremental model (a second build must equal a fresh one)."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from flows.store.warehouse import open_file
from tests.dbt.test_build import (
    assert_built,
    create_warehouse,
    dbt_build,
    detection_rows,
    fixture_built,
    full_fixture,
    media_rows,
    sha,
)

MARTS = (
    "fct_events", "fct_daily_population", "fct_camera_operation", "fct_human_activity",
    "fct_population_variance", "fct_population_trend", "dim_deployments", "dim_media",
    "fct_detections",  # a view over an incremental table: an incremental build equals a fresh one
)  # fmt: skip


def rows(warehouse: Path, sql: str) -> list[tuple[Any, ...]]:
    with open_file(warehouse, read_only=True) as con:
        return con.execute(sql).fetchall()


def snapshot(warehouse: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {m: sorted(rows(warehouse, f"select * from marts.{m}"), key=repr) for m in MARTS}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    warehouse = fixture_built(tmp_path_factory)
    shutil.copy2(warehouse, warehouse.with_name("pristine.duckdb"))  # for tests that change it
    return warehouse


def test_events_effort_and_rai_on_the_fixture(built: Path) -> None:
    got = rows(
        built,
        "select captured_on, site_id, label, events, max_count, trap_nights, rai"
        " from marts.fct_daily_population order by 1, 2, 3",
    )
    d1, d2 = date(2024, 6, 1), date(2024, 6, 2)
    # S1 day 1: cameras C1, C2 working (2 trap-nights); m1+m2 at 06:10 on C1 are one event
    # (MaxN 2), m3 on C2 at 23:59:59.5 another. Day 2: only C1 (its span ends on day 2).
    # Dense: a label seen at the site gets a 0-event row on every day with effort.
    assert got == [
        (d1, "S1", "animal", 2, 2, 2.0, 100.0),
        (d1, "S1", "car", 0, 0, 2.0, 0.0),
        (d1, "S1", "person", 1, 1, 2.0, 50.0),
        (d1, "S1", "truck", 0, 0, 2.0, 0.0),
        (d1, "S2", "animal", 2, 3, 2.0, 100.0),
        (d1, "S2", "person", 0, 0, 2.0, 0.0),
        (d2, "S1", "animal", 0, 0, 1.0, 0.0),
        (d2, "S1", "car", 1, 1, 1.0, 100.0),
        (d2, "S1", "person", 0, 0, 1.0, 0.0),
        (d2, "S1", "truck", 1, 1, 1.0, 100.0),
        (d2, "S2", "animal", 1, 1, 1.0, 100.0),
        (d2, "S2", "person", 1, 1, 1.0, 100.0),
    ]
    assert rows(built, "select * from marts.fct_human_activity order by 1, 2") == [
        (d1, "S1", 1, 1, 1, 2.0, 50.0),
        (d1, "S2", 0, 0, 0, 2.0, 0.0),
        (d2, "S1", 0, 0, 0, 1.0, 0.0),
        (d2, "S2", 1, 1, 1, 1.0, 100.0),
    ]
    deployments = rows(
        built,
        "select deployment_id, is_inferred, images, deployed_days from marts.dim_deployments"
        " order by 1",
    )
    assert deployments == [
        ("S1/C1", True, 3, 2), ("S1/C2", True, 1, 1), ("S2/C3", True, 3, 2), ("S2/C4", True, 1, 1),
    ]  # fmt: skip


def test_a_second_build_and_a_threshold_change_equal_fresh_builds(
    built: Path, tmp_path: Path
) -> None:
    before = snapshot(built)
    assert_built(dbt_build(built, built.parent))  # incremental: nothing changed
    assert snapshot(built) == before

    thresholds = json.dumps(
        {"detection_thresholds": {"animal": 0.9, "person": 0.5, "vehicle": 0.5}}
    )
    assert_built(dbt_build(built, built.parent, "--vars", thresholds))  # rules changed
    fresh = create_warehouse(tmp_path / "fresh.duckdb", full_fixture())
    assert_built(dbt_build(fresh, tmp_path, "--vars", thresholds))
    assert snapshot(built) == snapshot(fresh)
    assert_built(dbt_build(built, built.parent))  # and back
    assert snapshot(built) == before


def _review(label_id: str, media: str, **values: Any) -> dict[str, Any]:
    return {
        "label_id": label_id, "media_id": sha(media), "reviewer": "ann",
        "reviewed_at": datetime(2024, 6, 6, 9, 0), **values,
    }  # fmt: skip


def test_reviews_win_and_are_picked_up_incrementally(built: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy2(built.with_name("pristine.duckdb"), warehouse)  # the fixture, built
    m5_boxes = [r for r in detection_rows() if r["media_id"] == sha("m5")]
    reviews = [
        # m5 (3 animal boxes): the whole image is 3 zebras
        _review("r1", "m5", category="animal", label="zebra", count=3),
        # m1: one of its boxes is a false positive
        _review("r2", "m1", detection_id=next(r for r in detection_rows()
                if r["media_id"] == sha("m1") and r["confidence"] == 0.30)["detection_id"],
                is_false_positive=True),
        # m7: nothing there (blank): its animal and its person go
        _review("r3", "m7", category="blank", is_false_positive=True),
    ]  # fmt: skip
    assert m5_boxes
    with open_file(warehouse) as con:
        for review in reviews:
            columns = ", ".join(review)
            marks = ", ".join("?" for _ in review)
            con.execute(
                f"insert into review.labels ({columns}) values ({marks})", list(review.values())
            )
    assert_built(dbt_build(warehouse, tmp_path))
    got = rows(
        warehouse,
        "select site_id, label, sum(events), max(max_count), sum(detections)"
        " from marts.fct_daily_population group by 1, 2 having sum(images) > 0 order by 1, 2",
    )
    assert got == [
        ("S1", "animal", 2, 1, 3),  # m1 lost its 0.30 box: MaxN 1 (m1 1, m2 1, m3 1)
        ("S1", "car", 1, 1, 1),
        ("S1", "person", 1, 1, 1),
        ("S1", "truck", 1, 1, 1),
        ("S2", "animal", 1, 1, 1),  # m9 only; m5 is zebra now, m7 is blank
        ("S2", "zebra", 1, 3, 3),
    ]
    fresh = create_warehouse(tmp_path / "fresh.duckdb", full_fixture())
    with open_file(fresh) as con:
        for review in reviews:
            con.execute(
                f"insert into review.labels ({', '.join(review)}) values "
                f"({', '.join('?' for _ in review)})", list(review.values()),
            )  # fmt: skip
    (tmp_path / "fresh").mkdir()
    assert_built(dbt_build(fresh, tmp_path / "fresh"))
    assert snapshot(warehouse) == snapshot(fresh)


def test_deployments_csv_rows_set_effort_clock_and_down_days(tmp_path: Path) -> None:
    tables = full_fixture()
    tables["deployments"] = [
        {  # S1/C1 from 05-20: 06-01 06:10 is > 7 days after the start, so 05-21..05-31 are down
            "deployment_id": "dep-c1", "site_id": "S1", "camera_id": "C1",
            "deployment_start": datetime(2024, 5, 20, 9),
            "deployment_end": datetime(2024, 6, 1, 12),
            "latitude": -1.5, "longitude": 36.8, "utc_offset": "+03:00", "clock_offset_s": 3600.0,
            "source_file": "/x/deployments.csv", "source_line": 2,
            "loaded_at": datetime(2024, 6, 5),
        },
    ]  # fmt: skip
    warehouse = create_warehouse(tmp_path / "warehouse.duckdb", tables)
    # by default a listed deployment worked from setup to retrieval (camtrapR, Camtrap DP):
    # the table says when the camera was down, not the silence of its triggers
    assert_built(dbt_build(warehouse, tmp_path))
    sql = (
        "select day, is_operational from marts.fct_camera_operation"
        " where site_id = 'S1' and camera_id = 'C1' order by 1"
    )
    operation = rows(warehouse, sql)
    assert [op for _, op in operation] == [1] * 13
    assert rows(
        warehouse,
        "select trap_nights from marts.fct_daily_population"
        " where site_id = 'S1' and captured_on = '2024-05-25' and label = 'animal'",
    ) == [(1.0,)]
    # listed_downtime_from_gaps: its silence is inferred downtime as for unlisted cameras
    assert_built(dbt_build(warehouse, tmp_path, "--vars", "{listed_downtime_from_gaps: true}"))
    operation = rows(warehouse, sql)
    assert operation[0] == (date(2024, 5, 20), 1)  # setup day
    assert [op for day, op in operation if date(2024, 5, 21) <= day <= date(2024, 5, 31)] == [
        0
    ] * 11
    assert operation[-1] == (date(2024, 6, 1), 1) and len(operation) == 13
    # m4 (06-02 00:00:01) is after the deployment's end: out of the marts, kept in dim_media
    assert rows(
        warehouse, f"select deployment_id from marts.dim_media where media_id = '{sha('m4')}'"
    ) == [(None,)]
    assert rows(
        warehouse,
        "select event_started_at from marts.fct_events where site_id = 'S1' and camera_id = 'C1'",
    ) == [(datetime(2024, 6, 1, 7, 10),)]  # the clock offset (+1 h) is applied
    assert rows(
        warehouse,
        "select trap_nights from marts.fct_daily_population"
        " where site_id = 'S1' and captured_on = '2024-05-25' and label = 'animal'",
    ) == [(None,)]  # deployed but down: no effort, null (not 0)
    assert len(media_rows()) == 9
