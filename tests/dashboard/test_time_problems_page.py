"""The Time problems page in Streamlit's test harness on a built warehouse with a camera 12 hours
off (tests/dbt/test_time_problems.py's photos): Accept writes one review.clock_shifts row,
starts ``trapflow marts`` in its own process and says the marts are stale until it has
finished; after that rebuild the camera's photos are 12 hours later and its proposal is gone."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from flows.settings import Settings
from flows.store.dbt import run_dbt
from tests.conftest import query
from tests.dbt.test_time_problems import build_clock_warehouse

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py")


@pytest.fixture()
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = build_clock_warehouse(tmp_path / "warehouse.duckdb")
    run_dbt(Settings(warehouse=path, home=tmp_path / "home"), "build")
    monkeypatch.setenv("TRAPFLOW_WAREHOUSE", str(path))
    monkeypatch.setenv("TRAPFLOW_HOME", str(tmp_path / "home"))
    from dashboard import queries

    queries.st.cache_data.clear()
    return path


def test_accept_writes_the_shift_rebuilds_and_the_proposal_goes(warehouse):
    from dashboard import labelling

    c2 = query(
        warehouse,
        "select time_problem_id from marts.fct_time_problems where camera_id = 'C2'",
    )[0][0]
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/time_problems.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Time problems"
    assert len([b for b in at.button if b.key.startswith("tp_accept_")]) == 2  # C2 and C3
    at.button(key=f"tp_accept_{c2}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert query(
        warehouse,
        "select site_id, camera_id, shift_months, shift_days, shift_micros, shift_text, "
        "problem_kind from review.clock_shifts",
    ) == [("S1", "C2", 0, 0, 43_200_000_000, "+0:0:0 12:0:0", "day_night_swap")]
    assert any("read stale" in s.value for s in at.success), [s.value for s in at.success]
    assert any("out of date" in i.value for i in at.info), [i.value for i in at.info]
    # until the rebuild, the old proposals cannot be accepted (again): no shift added twice
    assert all(b.disabled for b in at.button if b.key.startswith("tp_accept_"))

    deadline = time.monotonic() + 240
    while labelling.training_state(str(warehouse), "marts").get("status") in (
        "starting", "running",
    ):  # fmt: skip
        assert time.monotonic() < deadline, "trapflow marts did not finish"
        time.sleep(1)
    log = labelling.progress_path(str(warehouse), "marts").with_suffix(".log")
    assert query(warehouse, "select is_stale from marts.marts_freshness") == [(False,)], (
        log.read_text(errors="replace")[-2000:]
    )
    assert query(
        warehouse, "select camera_id, kind from marts.fct_time_problems order by camera_id"
    ) == [("C3", "exif_vs_ocr")]
    assert query(
        warehouse,
        "select min(captured_at - camera_captured_at), max(captured_at - camera_captured_at) "
        "from intermediate.int_media_located where camera_id = 'C2'",
    ) == [(timedelta(hours=12), timedelta(hours=12))]
    at.run()
    assert not at.exception
    (left,) = [b for b in at.button if b.key.startswith("tp_accept_")]
    assert not left.disabled
