"""marts.live_detections / live_sites: the marts' counting rules, live. On the fixture of
test_build.py (every rule around the default thresholds), after a real dbt build, the view's
verdicts equal what the built marts decided, box by box."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.dbt.test_build import assert_built, create_warehouse, dbt_build, full_fixture


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work_dir = tmp_path_factory.mktemp("dbt_live")
    warehouse = create_warehouse(work_dir / "warehouse.duckdb", full_fixture())
    assert_built(dbt_build(warehouse, work_dir))
    return warehouse


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> set[tuple[object, ...]]:
    return set(con.execute(sql).fetchall())


def test_live_verdicts_equal_the_built_marts_box_by_box(built: Path) -> None:
    with duckdb.connect(str(built), read_only=True) as con:
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
    with duckdb.connect(str(built), read_only=True) as con:
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
