"""The dashboard on a real warehouse (the session's sample ingest with marts built): every page
renders its charts, alert links open the image on Review, reviews land in review.labels,
sensitive coordinates are generalised, and a concurrent writer never surfaces a lock error."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from flows.store.warehouse import open_file
from tests.conftest import query

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "dashboard" / "streamlit_app.py")
PAGES = [
    "app_pages/population.py",
    "app_pages/sites.py",
    "app_pages/human_activity.py",
    "app_pages/review.py",
    "app_pages/health.py",
]


@pytest.fixture()
def warehouse(sample_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the sample warehouse (tests here write to it)."""
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy2(sample_run["warehouse"], copy)
    monkeypatch.setenv("TRAPFLOW_WAREHOUSE", str(copy))
    from dashboard import queries

    queries.st.cache_data.clear()
    return copy


def _charts(at: AppTest) -> int:
    return len(at.get("arrow_vega_lite_chart")) + len(at.get("vega_lite_chart"))


def _visit_all(at: AppTest) -> dict[str, int]:
    seen = {}
    at.run()
    for page in PAGES:
        if page != PAGES[0]:
            at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not [w.value for w in at.warning if "locked" in w.value], page
        seen[page] = _charts(at)
    return seen


def test_every_page_renders_charts_on_the_sample_marts(warehouse):
    at = AppTest.from_file(APP, default_timeout=60)
    seen = _visit_all(at)
    assert all(seen.values()), seen
    at.switch_page("app_pages/health.py").run()
    assert int(at.metric[2].value) > 0  # images processed
    assert any("Quarantined" in s.value for s in at.subheader)


def test_alert_link_opens_review_and_a_false_positive_is_saved(warehouse):
    media_id, detection_id = query(
        warehouse,
        "select media_id, detection_id from intermediate.int_detections_labelled "
        "where category = 'animal' order by confidence desc limit 1",
    )[0]
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["media_id"] = media_id  # what <dashboard_url>/?media_id=<sha256> sets
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Review"
    assert at.selectbox(key="rv_media").value == media_id
    assert at.get("image"), "the image with its boxes is shown"
    target = next(o for o in at.selectbox(key="rv_target").options if detection_id[:8] in o)
    at.selectbox(key="rv_target").set_value(target)
    at.radio(key="rv_action").set_value("False positive")
    at.text_input(key="rv_reviewer").set_value("tester")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert at.success, [e.value for e in at.error]
    rows = query(
        warehouse,
        "select detection_id, is_false_positive, reviewer from review.labels where media_id = ?",
        [media_id],
    )
    assert rows == [(detection_id, True, "tester")]
    # the page shows it at once (marts.fct_detections and fct_label_reviews are views)
    boxes, history = at.dataframe[0].value, at.dataframe[-1].value
    mine = boxes[boxes["detection_id"] == detection_id]
    assert mine["is_false_positive"].all() and not mine["is_counted"].any(), mine
    assert list(history["reviewer"]) == ["tester"] and bool(history["is_false_positive"].iloc[0])


def test_sensitive_species_coordinates_are_generalised(warehouse, monkeypatch):
    with open_file(warehouse) as con:
        site = con.execute("select min(site_id) from marts.dim_deployments").fetchone()[0]
        con.execute(
            "update marts.dim_deployments set latitude = -1.234567, longitude = 36.765432 "
            "where site_id = ?",
            [site],
        )
        con.execute(
            "update marts.fct_daily_population set label = 'African elephant', events = 1 "
            "where site_id = ? and category = 'animal'",
            [site],
        )
    monkeypatch.setenv("TRAPFLOW_SENSITIVE_GRID_KM", "10")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/sites.py").run()
    assert not at.exception, at.exception
    table = at.dataframe[-1].value
    mine = table[table["site_id"] == site]
    assert len(mine) and mine["is_generalised"].all()
    assert not (mine["latitude"] == -1.234567).any()
    assert (abs(mine["latitude"] - -1.234567) < 0.1).all()  # the 10 km cell's centre
    assert (mine["coordinate_uncertainty_m"] == 7071).all()
    # and the exact value is nowhere in the map's data, which does hold the generalised one
    deck = "".join(e.proto.json for e in at.get("deck_gl_json_chart"))
    assert f"{mine['latitude'].iloc[0]:.4f}"[:7] in deck
    assert "1.234567" not in deck and "36.765432" not in deck


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import duckdb
    from flows.store.warehouse import connect
    path, hold_s = Path(sys.argv[1]), float(sys.argv[2])
    with connect(path) as con:  # one long write transaction, like a batch load
        con.execute("begin")
        con.execute("insert into review.labels values "
                    "('w-0', 'm', null, 'animal', 'x', false, null, 'writer', now(), null)")
        print("locked", flush=True)
        time.sleep(hold_s)
        con.execute("commit")
    for i in range(1, 30):  # then short writes, racing the dashboard's readers
        with connect(path, wait_s=30) as con:
            con.execute("insert into review.labels values (?, 'm', null, 'animal', 'x', "
                        "false, null, 'writer', now(), null)", [f"w-{i}"])
        time.sleep(0.05)
    print("done", flush=True)
    """
)


def test_pages_keep_working_while_another_process_writes(warehouse):
    at = AppTest.from_file(APP, default_timeout=60)
    _visit_all(at)  # warm: the last good result of every query is known
    from dashboard import queries

    queries.st.cache_data.clear()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(warehouse), "1.5"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "locked", (
        writer.stderr.read() if writer.stderr else ""
    )
    t0 = time.monotonic()
    rounds = 0
    while writer.poll() is None and rounds < 6:
        queries.st.cache_data.clear()  # every round reads the file again
        seen = _visit_all(at)
        assert all(seen.values()), seen
        rounds += 1
    out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert "done" in out
    assert rounds >= 1 and time.monotonic() - t0 < 60
    assert query(warehouse, "select count(*) from review.labels where reviewer = 'writer'") == [
        (30,)
    ]


def test_dashboard_marts_match_raw_and_say_when_they_are_behind(warehouse):
    """marts.fct_* hold what raw holds (a box per raw box, a row per run, file and review, no
    URL in the alerts); after an ingest the marts have not seen, every page says so."""

    def one(sql: str) -> Any:
        return query(warehouse, sql)[0][0]

    boxes = one("select count(*) from marts.fct_detections")
    assert boxes == one("select count(*) from raw.detections") > 0
    candidates = "select detection_id from marts.fct_detections where is_candidate"
    labelled = "select detection_id from intermediate.int_detections_labelled"
    assert query(warehouse, f"{candidates} except {labelled}") == []
    assert query(warehouse, f"{labelled} except {candidates}") == []
    for mart, source in (
        ("fct_pipeline_runs", "raw.runs"), ("fct_quarantine", "raw.quarantine"),
        ("fct_alerts", "alerts.outbox"),
    ):  # fmt: skip
        assert one(f"select count(*) from marts.{mart}") == one(f"select count(*) from {source}")
    reviews = "select count(*) from marts.fct_label_reviews where label_origin = "
    assert one(reviews + "'dashboard'") == one("select count(*) from review.labels")
    # the sample's camtrapR species tags: one imported label per tagged photo, none disagree
    assert one(reviews + "'xmp'") == one("select count(*) from raw.media_labels") == 41
    urls = "select count(*) from (select concat_ws('|', columns(*)) as t from marts.fct_alerts) "
    assert one(urls + "where contains(t, '://')") == 0
    assert one("select is_stale from marts.marts_freshness") is False

    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not [i.value for i in at.info if "The marts are out of date" in i.value]
    with open_file(warehouse) as con:  # an ingest after the build
        con.execute(
            "insert into raw.media select * replace (md5(media_id) || md5(media_id) as media_id, "
            "timezone('UTC', now()) as ingested_at) from raw.media limit 1"
        )
    from dashboard import queries

    queries.st.cache_data.clear()
    for page in PAGES:
        at.switch_page(page).run()
        notices = [i.value for i in at.info if "The marts are out of date" in i.value]
        assert len(notices) == 1 and "`trapflow marts`" in notices[0], (page, notices)


def test_label_page_marks_not_an_animal_and_undoes_it(warehouse):
    """The Label page in Streamlit's test harness, before anything is embedded (no group):
    "Not an animal" writes one false-positive review of the asked box, which leaves the
    queue; Undo removes the row again and the box is asked again."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/label.py").run()
    assert not at.exception, [e.value for e in at.exception]
    first = query(
        warehouse, "select detection_id from marts.fct_label_queue order by queue_rank limit 1"
    )[0][0]
    assert any("no cached embedding" in c.value for c in at.caption), "no group without a cache"
    at.button(key="lb_fp").click().run()
    assert not at.exception, [e.value for e in at.exception]
    rows = query(warehouse, "select detection_id, is_false_positive from review.labels")
    assert rows == [(first, True)]
    ((asked,),) = query(
        warehouse, "select count(*) from marts.fct_label_queue where detection_id = ?", [first]
    )
    assert asked == 0  # its burst left the queue at once (a view)
    at.button(key="lb_undo_btn").click().run()
    assert query(warehouse, "select count(*) from review.labels") == [(0,)]
    assert query(
        warehouse, "select detection_id from marts.fct_label_queue order by queue_rank limit 1"
    ) == [(first,)]


def test_label_page_says_what_to_do_before_any_marts(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAPFLOW_WAREHOUSE", str(tmp_path / "none.duckdb"))
    from dashboard import queries

    queries.st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/label.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("trapflow run" in i.value for i in at.info)


def test_population_shows_the_rai_interval_band_from_its_mart(warehouse):
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    heading = "RAI per month with its 95% interval"
    assert heading in [s.value for s in at.subheader], [s.value for s in at.subheader]
    charts = [*at.get("arrow_vega_lite_chart"), *at.get("vega_lite_chart")]
    specs = [json.loads(c.proto.spec) for c in charts]
    banded = [
        s for s in specs
        if any(json.dumps(layer.get("encoding", {}).get("y2", {})).find("rai_upper") >= 0
               for layer in s.get("layer", []))
    ]  # fmt: skip
    assert banded, "no chart draws rai_lower..rai_upper"
