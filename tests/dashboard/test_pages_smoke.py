"""Every dashboard page renders, on an empty warehouse and on one with marts."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py")


def _app(monkeypatch: pytest.MonkeyPatch, warehouse: Path) -> AppTest:
    monkeypatch.setenv("TRAPFLOW_WAREHOUSE", str(warehouse))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def test_empty_warehouse_says_what_to_do(monkeypatch, tmp_path):
    at = _app(monkeypatch, tmp_path / "missing.duckdb")
    assert "trapflow run" in at.info[0].value


def test_population_page_shows_the_mart(monkeypatch, tmp_path):
    wh = tmp_path / "w.duckdb"
    with duckdb.connect(str(wh)) as con:
        con.execute(
            "create schema marts; create table marts.fct_daily_population (captured_on date, "
            "site_id varchar, category varchar, label varchar, images bigint, detections bigint, "
            "max_count_in_image bigint, cameras bigint, first_seen_at timestamp, "
            "last_seen_at timestamp, mean_confidence double, max_confidence double)"
        )
        rows = [
            (date(2024, 5, 1), "A", "animal", "animal", 3, 4, 2, 1, datetime(2024, 5, 1, 1),
             datetime(2024, 5, 1, 5), 0.7, 0.9),
            (date(2024, 5, 2), "B", "animal", "animal", 1, 1, 1, 1, datetime(2024, 5, 2, 1),
             datetime(2024, 5, 2, 1), 0.6, 0.6),
        ]  # fmt: skip
        con.executemany(
            "insert into marts.fct_daily_population values "
            + str(tuple("?" * 12)).replace("'", ""),
            rows,
        )
    at = _app(monkeypatch, wh)
    assert [m.value for m in at.metric] == ["4", "2", "2"]
    assert at.get("vega_lite_chart") or at.get("arrow_vega_lite_chart")
