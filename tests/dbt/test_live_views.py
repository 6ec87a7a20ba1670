"""marts.live_detections / live_sites: the marts' counting rules, live. On the fixture of
test_build.py (every rule around the default thresholds), after a real dbt build, the view's
verdicts equal what the built marts decided, box by box."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from flows.store.warehouse import open_file
from tests.dbt.test_build import (
    create_warehouse,
    fixture_built,
    media_rows,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    warehouse = fixture_built(tmp_path_factory)
    return warehouse


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> set[tuple[object, ...]]:
    return set(con.execute(sql).fetchall())


def test_live_verdicts_equal_the_built_marts_box_by_box(built: Path) -> None:
    with open_file(built, read_only=True) as con:
        live = _rows(
            con,
            "select detection_id, is_candidate, is_counted, category, label, label_source "
            "from marts.live_detections",
        )
        marts = _rows(
            con,
            "select detection_id, is_candidate, is_counted, category, label, label_source "
            "from marts.fct_detections",
        )
        candidates = _rows(con, "select detection_id from intermediate.int_detections_labelled")
        live_candidates = _rows(
            con, "select detection_id from marts.live_detections where is_candidate"
        )
        counted_media = _rows(
            con,
            "select media_id from marts.live_detections where is_counted and category = 'animal'",
        )
        has_animal = _rows(con, "select media_id from marts.dim_media where has_animal")
        boxes = con.execute("select count(*) from raw.detections").fetchone()
    assert live == marts and len(live) == (boxes or [0])[0]
    assert live_candidates == candidates and candidates
    assert counted_media == has_animal and has_animal


def test_the_second_opinion_is_recorded_but_not_counted(built: Path) -> None:
    with open_file(built, read_only=True) as con:
        rows = con.execute(
            "select model_name, is_counted, is_above_threshold, is_recorded, min_confidence "
            "from marts.live_detections where detector_category = 'animal' "
            "and model_name = 'yolox_nano_coco' and confidence >= 0.25"
        ).fetchall()
        sites = con.execute(
            "select count(*), count(*) filter (where is_sensitive) from marts.live_sites"
        ).fetchone()
        (rules,) = con.execute(
            "select count(*) from marts.live_rules where vars_json like '%sensitive_species%'"
        ).fetchone() or (0,)
    assert rows and all(r[1:] == (False, True, True, 0.25) for r in rows)
    assert sites is not None and sites[0] >= 2 and sites[1] == 0  # no rhino in the fixture
    assert rules == 3


def test_live_media_places_and_dates_a_photo_as_the_marts_do(tmp_path: Path) -> None:
    """marts.live_media (made live, no build): the listed deployment's clock offset moves the
    time and the day as int_media_deployed does, its coordinates win over the image's GPS, and
    (0, 0) is never a place; alerts' find_places reads exactly that."""
    from datetime import datetime

    from flows.alerts.live import ensure_live_views
    from flows.alerts.rules import find_places
    from flows.settings import Settings

    media = media_rows()[:3]
    first, second, third = media
    first["latitude"], first["longitude"] = 0.0, 0.0  # a camera without a fix
    listed = {
        "deployment_id": "DEP-1", "site_id": first["site_id"], "camera_id": first["camera_id"],
        "deployment_start": datetime(2000, 1, 1), "deployment_end": datetime(2100, 1, 1),
        "latitude": 4.5, "longitude": 9.25, "clock_offset_s": 86_400.0,
        "source_file": "deployments.csv", "source_line": 2, "loaded_at": datetime(2024, 6, 6),
    }  # fmt: skip
    for row in (second, third):  # another camera, not listed: an inferred deployment
        row["camera_id"], row["site_id"] = "C-unlisted", "S-other"
    second["latitude"], second["longitude"] = -2.25, 37.5
    third["latitude"], third["longitude"] = 0.0, 0.0
    warehouse = create_warehouse(tmp_path / "w.duckdb", {"media": media, "deployments": [listed]})
    with open_file(warehouse) as con:
        assert ensure_live_views(con, Settings(warehouse=warehouse, home=tmp_path / "home"))
        got = {
            r[0]: r[1:]
            for r in con.execute(
                "select media_id, deployment_id, captured_at, captured_on, place_source "
                "from marts.live_media"
            ).fetchall()
        }
        placed = dict(
            con.execute(
                "select media_id, captured_at from intermediate.int_media_deployed"
            ).fetchall()
        )
        places = find_places(con, [m["media_id"] for m in media])
    a, b, c = (m["media_id"] for m in media)
    assert got[a][0] == "DEP-1" and got[a][1] == placed[a]
    assert got[a][1] is not None and first["captured_at"] is not None
    assert (got[a][1] - first["captured_at"]).total_seconds() == 86_400
    assert got[a][2] == got[a][1].date()
    assert places[a] == (4.5, 9.25, "deployment")  # the deployment's, though the image says 0,0
    assert places[b] == (-2.25, 37.5, "image GPS")  # inferred deployment: the image's own fix
    assert c not in places and got[c][3] is None  # (0, 0) is no place
