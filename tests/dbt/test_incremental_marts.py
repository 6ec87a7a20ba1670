"""An incremental marts build equals a --full-refresh one row for row: after new photos (some
after the last one, some landing late in the middle of existing events), after review labels
and an accepted clock shift, and after a change of the independence vars. A real DuckDB file
(bench/synthetic_warehouse.py at ~6k boxes) and real dbt runs; the full builds run on copies
of the warehouse, so both builds see the same rows."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

from flows.settings import Settings
from flows.store.dbt import run_dbt
from flows.store.warehouse import open_file

BENCH = Path(__file__).resolve().parents[2] / "bench" / "synthetic_warehouse.py"
MARTS = ("fct_events", "fct_daily_population", "dim_media")
SELECT = ("--select", "+fct_events", "+fct_daily_population", "+dim_media")


def _synthetic() -> ModuleType:
    spec = importlib.util.spec_from_file_location("synthetic_warehouse", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _marts(warehouse: Path) -> dict[str, list[tuple[Any, ...]]]:
    with open_file(warehouse, read_only=True) as con:
        return {m: con.execute(f"select * from marts.{m} order by all").fetchall() for m in MARTS}


def _build(warehouse: Path, *extra: str, **settings: Any) -> None:
    settings_ = Settings(warehouse=warehouse, home=warehouse.parent, **settings)
    run_dbt(settings_, "run", *SELECT, *extra)


def _full_refresh_of(warehouse: Path, name: str, **settings: Any) -> dict[str, Any]:
    copy = warehouse.parent / name / warehouse.name
    copy.parent.mkdir()
    shutil.copy(warehouse, copy)
    _build(copy, "--full-refresh", **settings)
    return _marts(copy)


def _late_photos(warehouse: Path) -> None:
    """Copies of 30 photos (and their boxes) 5 minutes earlier: new rows inside old events."""
    with open_file(warehouse) as con:
        con.execute(
            "create temp table late as select media_id as old_id, md5(media_id || 'late') ||"
            " md5(media_id || 'late2') as media_id from raw.media using sample 30 rows"
        )
        con.execute(
            "insert into raw.media by name select m.* replace (late.media_id as media_id,"
            " m.captured_at - interval 5 minutes as captured_at, 'late' as run_id)"
            " from raw.media as m join late on m.media_id = late.old_id"
        )
        con.execute(
            "insert into raw.detections by name select d.* replace (late.media_id as media_id,"
            " md5(d.detection_id || 'late') as detection_id, 'late' as run_id)"
            " from raw.detections as d join late on d.media_id = late.old_id"
        )


def _reviews_and_shift(warehouse: Path) -> None:
    """Blank verdicts on 10 photos with animals, a relabel of 10 boxes, a clock shift of +40
    minutes on one camera (moves its photos across event windows and some across midnight)."""
    with open_file(warehouse) as con:
        con.execute(
            "insert into review.labels (label_id, media_id, category, label, reviewer,"
            " reviewed_at) select uuid(), media_id, 'blank', null, 'test', now()::timestamp"
            " from (select distinct media_id from raw.detections where category = 'animal'"
            " order by media_id limit 10)"
        )
        con.execute(
            "insert into review.labels (label_id, media_id, detection_id, category, label,"
            " reviewer, reviewed_at) select uuid(), media_id, detection_id, 'animal', 'aardvark',"
            " 'test', now()::timestamp from raw.detections where category = 'animal'"
            " and confidence > 0.5 order by detection_id desc limit 10"
        )
        con.execute(
            "insert into review.clock_shifts values ('shift-1', 'site-03', 'cam-1', 0, 0,"
            " 2400000000, '+40 min', 'test', 'tester', timestamp '2025-01-01 00:00:00')"
        )


def test_incremental_build_equals_full_refresh(tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    _synthetic().generate(warehouse, 6_000, sites=4, cameras=2, days=20)
    _build(warehouse, "--full-refresh")
    before = _marts(warehouse)

    _synthetic().append_new(warehouse, 0.05, sites=4, cameras=2)
    _late_photos(warehouse)
    _build(warehouse)
    after_photos = _marts(warehouse)
    assert after_photos != before  # the new photos reached the marts
    assert after_photos == _full_refresh_of(warehouse, "full-1")

    _reviews_and_shift(warehouse)
    _build(warehouse)
    after_reviews = _marts(warehouse)
    assert after_reviews["fct_events"] != after_photos["fct_events"]
    assert after_reviews == _full_refresh_of(warehouse, "full-2")

    # a settings var: every series is re-folded (the vars are part of each record's digest)
    _build(warehouse, independence_minutes=90, independence_mode="last_record")
    after_vars = _marts(warehouse)
    assert len(after_vars["fct_events"]) < len(after_reviews["fct_events"])
    assert after_vars == _full_refresh_of(
        warehouse, "full-3", independence_minutes=90, independence_mode="last_record"
    )
