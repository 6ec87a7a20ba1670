"""An incremental marts build equals a --full-refresh one row for row: after new photos (some
after the last one, some landing late in the middle of existing events and bursts), after
review labels and an accepted clock shift, after a station table with a problem period (then
the period changed) and cached crop embeddings (then their sketches filled in), and after a
change of the independence vars. A real DuckDB file (bench/synthetic_warehouse.py at ~6k
boxes) and real dbt runs; the full builds run on copies of the warehouse, so both builds see
the same rows. Every incremental model and every table built from one is compared."""

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
MARTS = (
    "marts.fct_events", "marts.fct_daily_population", "marts.dim_media",
    "marts.fct_population_variance", "marts.fct_population_trend", "marts.fct_camera_operation",
    "marts.dim_deployments", "marts.fct_human_activity", "marts.fct_rai_intervals",
    "intermediate.int_label_crops", "intermediate.int_media_placed",
    "intermediate.int_observations_per_image", "intermediate.int_media_bursts",
)  # fmt: skip
SELECT = ("--select", *(f"+{m.split('.')[1]}" for m in MARTS))


def _synthetic() -> ModuleType:
    spec = importlib.util.spec_from_file_location("synthetic_warehouse", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _marts(warehouse: Path) -> dict[str, list[tuple[Any, ...]]]:
    with open_file(warehouse, read_only=True) as con:
        return {m: con.execute(f"select * from {m} order by all").fetchall() for m in MARTS}


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
        _whole_image_labels(con, count=3, at="2025-01-01 00:00:00")
        con.execute(
            "insert into review.clock_shifts values ('shift-1', 'site-03', 'cam-1', 0, 0,"
            " 2400000000, '+40 min', 'test', 'tester', timestamp '2025-01-01 00:00:00')"
        )


def _whole_image_labels(con: Any, *, count: int, at: str) -> None:
    """A whole-image label (zebra x count) on 5 photos that have no boxes: they have no
    counting candidates, so no media_state; their observations come from the label alone."""
    con.execute(
        "insert into review.labels (label_id, media_id, category, label, count, reviewer,"
        f" reviewed_at) select uuid(), media_id, 'animal', 'zebra', {count}, 'test',"
        f" timestamp '{at}' from (select media_id from raw.media where media_id not in"
        " (select media_id from raw.detections) order by media_id limit 5)"
    )


def _station_table_and_embeddings(warehouse: Path) -> None:
    """A station table for site-01 (cam-0 listed with a problem period, setup and retrieval as
    dates) and site-02 (one station-wide deployment), and cached embeddings without sketches
    for 20 animal boxes and the whole frame of 5 photos."""
    with open_file(warehouse) as con:
        con.execute(
            "insert into raw.deployments (deployment_id, site_id, camera_id, deployment_start,"
            " deployment_end, start_is_date, end_is_date, problems_listed, clock_offset_s,"
            " source_file, source_line, loaded_at) values"
            " ('d-1', 'site-01', 'cam-0', '2024-01-03', '2024-01-15', true, true, true, 0,"
            "  'st.csv', 1, '2025-01-01'),"
            " ('d-2', 'site-02', '*', '2024-01-02 08:00', '2024-01-18 16:00', false, false,"
            "  false, 0, 'st.csv', 2, '2025-01-01')"
        )
        con.execute(
            "insert into raw.deployment_problems values ('d-1', 1, timestamp '2024-01-07',"
            " timestamp '2024-01-08', true, true, 'st.csv', 1, timestamp '2025-01-01')"
        )
        con.execute(
            "insert into raw.crop_embeddings (media_id, crop_key, embedder, embedding, run_id,"
            " embedded_at) select media_id, detection_id, 'emb@1', [0.5, 0.25], 'e',"
            " timestamp '2025-01-01' from raw.detections where category = 'animal'"
            " order by detection_id limit 20"
        )
        con.execute(
            "insert into raw.crop_embeddings (media_id, crop_key, embedder, embedding, run_id,"
            " embedded_at) select distinct media_id, 'whole_frame', 'emb@1', [0.5, 0.25], 'e',"
            " timestamp '2025-01-01' from raw.detections where category = 'animal'"
            " order by media_id desc limit 5"
        )


def _problem_moved_and_sketches(warehouse: Path) -> None:
    """The station table re-imported with the problem period moved (and a second one), the
    sketches filled in (`trapflow embed` updates old rows), the photos without boxes that
    have a whole-image label recounted."""
    with open_file(warehouse) as con:
        con.execute("delete from raw.deployment_problems")
        con.execute(
            "insert into raw.deployment_problems values"
            " ('d-1', 1, timestamp '2024-01-09 06:00', timestamp '2024-01-11', false, true,"
            "  'st.csv', 1, timestamp '2025-01-02'),"
            " ('d-2', 1, timestamp '2024-01-05', timestamp '2024-01-05', true, true,"
            "  'st.csv', 2, timestamp '2025-01-02')"
        )
        _whole_image_labels(con, count=5, at="2025-01-02 00:00:00")  # recounted
        con.execute(
            "update raw.crop_embeddings set sketch = cast(list_transform(range(128),"
            " lambda i: (i % 7) / 7.0) as float[128])"
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
    assert after_reviews["marts.fct_events"] != after_photos["marts.fct_events"]
    assert after_reviews == _full_refresh_of(warehouse, "full-2")

    _station_table_and_embeddings(warehouse)
    _build(warehouse)
    after_stations = _marts(warehouse)
    assert after_stations["marts.dim_deployments"] != after_reviews["marts.dim_deployments"]
    assert after_stations == _full_refresh_of(warehouse, "full-s1")

    _problem_moved_and_sketches(warehouse)
    _build(warehouse)
    after_problems = _marts(warehouse)
    assert (
        after_problems["marts.fct_camera_operation"] != after_stations["marts.fct_camera_operation"]
    )
    assert (
        after_problems["intermediate.int_label_crops"]
        != after_stations["intermediate.int_label_crops"]
    )
    assert after_problems["marts.dim_media"] != after_stations["marts.dim_media"]  # recounted
    assert after_problems == _full_refresh_of(warehouse, "full-s2")
    after_reviews = after_problems

    # settings vars: every series is re-folded (the vars are part of each record's digest),
    # every bootstrap group drawn again (the seed is part of each group's digest)
    new_vars = {"independence_minutes": 90, "independence_mode": "last_record", "bootstrap_seed": 7}
    _build(warehouse, **new_vars)
    after_vars = _marts(warehouse)
    assert len(after_vars["marts.fct_events"]) < len(after_reviews["marts.fct_events"])
    assert {row[-3] for row in after_vars["marts.fct_rai_intervals"]} == {7}  # the seed
    assert after_vars == _full_refresh_of(warehouse, "full-3", **new_vars)


def test_a_build_with_nothing_new_labels_no_media_again(tmp_path: Path) -> None:
    """int_detections_labelled keeps every media's state from the last build (<model>__state),
    so a media none of whose boxes is a candidate is not labelled again on every build: a row
    planted for such a media, and a changed row of a labelled one, both outlive a build with
    nothing new (a re-labelled media loses its rows first). A warehouse built before the
    states were kept gets them from its own rows, once."""
    warehouse = tmp_path / "w.duckdb"
    _synthetic().generate(warehouse, 2_000, sites=2, cameras=2, days=10)
    settings = Settings(warehouse=warehouse, home=warehouse.parent)
    select = ("--select", "+int_detections_labelled")
    run_dbt(settings, "run", *select, "--full-refresh")
    model = "intermediate.int_detections_labelled"
    with open_file(warehouse) as con:
        states, media = con.execute(
            f"select (select count(*) from {model}__state),"
            " (select count(*) from staging.stg_pipeline__media)"
        ).fetchone() or (0, 0)
        assert states == media > 0  # every media, with candidates or not
        unlabelled, labelled = (
            (
                con.execute(
                    "select media_id from staging.stg_pipeline__media where media_id not in"
                    f" (select media_id from {model}) order by media_id limit 1"
                ).fetchone()
                or ("",)
            )[0],
            (con.execute(f"select min(media_id) from {model}").fetchone() or ("",))[0],
        )
        con.execute(
            f"insert into {model} select * replace ('{unlabelled}' as media_id) from {model}"
            f" where media_id = '{labelled}' limit 1"
        )
        con.execute(f"update {model} set label_source = 'planted' where media_id = '{labelled}'")
    run_dbt(settings, "run", *select)
    with open_file(warehouse, read_only=True) as con:
        planted = con.execute(
            f"select count(*) filter (media_id = '{unlabelled}'),"
            f" count(*) filter (label_source = 'planted') from {model}"
        ).fetchone()
    assert planted is not None and planted[0] == 1 and planted[1] > 0

    with open_file(warehouse) as con:  # an older build: no states kept
        con.execute(f"drop table {model}__state")
        con.execute(f"delete from {model} where media_id = '{unlabelled}'")
    run_dbt(settings, "run", *select)
    with open_file(warehouse, read_only=True) as con:
        kept = con.execute(f"select count(*) from {model}__state").fetchone()
        assert kept == (media,)
        rows = con.execute(f"select * from {model} order by all").fetchall()
    run_dbt(settings, "run", *select, "--full-refresh")
    with open_file(warehouse, read_only=True) as con:
        full = con.execute(f"select * from {model} order by all").fetchall()
    assert rows != full  # the planted labels were kept by the incremental builds ...
    run_dbt(settings, "run", *select)
    with open_file(warehouse, read_only=True) as con:
        assert con.execute(f"select * from {model} order by all").fetchall() == full
