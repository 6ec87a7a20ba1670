"""Every dashboard page renders on an empty warehouse and says what to do; the pure helpers.

Pages on a real warehouse (the session's sample ingest) are in tests/dashboard/test_dashboard.py.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from dashboard import charts, images
from flows.store.warehouse import open_file

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py")
PAGES = [
    "app_pages/population.py",
    "app_pages/sites.py",
    "app_pages/human_activity.py",
    "app_pages/review.py",
    "app_pages/health.py",
    "app_pages/time_problems.py",
]


@pytest.mark.parametrize("kind", ["missing", "schema_only"])
def test_every_page_on_an_empty_warehouse_says_what_to_do(monkeypatch, tmp_path, kind):
    warehouse = tmp_path / "w.duckdb"
    if kind == "schema_only":  # a warehouse a run created, before any marts were built
        from flows.store.warehouse import ensure_schema

        with open_file(warehouse) as con:
            ensure_schema(con)
    monkeypatch.setenv("TRAPFLOW_WAREHOUSE", str(warehouse))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    for page in PAGES:
        if page != PAGES[0]:
            at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        assert at.info, page
        assert "trapflow run" in at.info[0].value, (page, at.info[0].value)


def _jpeg(colour: tuple[int, int, int] = (40, 120, 40)) -> bytes:
    img = Image.new("RGB", (200, 100), colour)
    for x in range(0, 200, 4):  # stripes, so a blur changes pixels
        for y in range(100):
            img.putpixel((x, y), (255, 255, 255))
    out = io.BytesIO()
    img.save(out, format="JPEG")
    return out.getvalue()


def test_people_are_blurred_unless_turned_off():
    person = images.Box(0.5, 0.0, 0.5, 1.0, "person", "")
    blurred = Image.open(io.BytesIO(images.render(_jpeg(), [person], blur_people=True)))
    sharp = Image.open(io.BytesIO(images.render(_jpeg(), [person], blur_people=False)))

    # inside the person box the stripes are gone when blurred, kept when not
    def spread(img: Image.Image) -> int:
        row = [img.getpixel((x, 60))[0] for x in range(120, 190)]  # type: ignore[index]
        return max(row) - min(row)

    assert spread(sharp) > 150
    assert spread(blurred) < 60
    # outside it nothing is blurred
    row = [blurred.getpixel((x, 60))[0] for x in range(10, 80)]  # type: ignore[index]
    assert max(row) - min(row) > 150


def test_charts_are_built_from_frames():
    days = pd.date_range("2024-01-01", periods=10).date
    df = pd.DataFrame(
        {
            "captured_on": days,
            "label": "impala",
            "events": range(10),
            "trap_nights": [3.0] * 9 + [None],
            "rai": [x * 10.0 for x in range(10)],
            "rolling_mean_7d": 5.0,
            "rolling_var_7d": 4.0,
            "rolling_cv_7d": 0.4,
            "z_score": [None] * 5 + [1.0] * 5,
        }
    )
    spec = charts.rai_with_variance(df).to_dict()
    band = spec["datasets"][next(iter(spec["datasets"]))]
    assert {round(r["band_lo"], 3) for r in band} == {3.0} and {r["band_hi"] for r in band} == {7.0}
    assert charts.effort(df).to_dict()["mark"]["type"] == "bar"
    periods = pd.DataFrame(
        {"period_start": pd.to_datetime(["2024-01-01", "2024-02-01"]).date,
         "label": "impala", "events": [2, 0], "trap_nights": [30.0, 28.5], "rai": [6.7, 0.0],
         "rai_lower": [0.0, 0.0], "rai_upper": [16.1, 0.0], "n_units": [30, 29],
         "between_deployment_variance": [None, None]}
    )  # fmt: skip
    layers = charts.rai_with_interval(periods).to_dict()["layer"]
    assert [layer["mark"] if isinstance(layer["mark"], str) else layer["mark"]["type"]
            for layer in layers] == ["area", "line"]  # fmt: skip
    assert layers[0]["encoding"]["y"]["field"] == "rai_lower"
    assert layers[0]["encoding"]["y2"]["field"] == "rai_upper"
    assert charts.cv_and_z(df).to_dict()
    dep = pd.DataFrame(
        {"site_id": ["A", "B"], "camera_id": ["c", "c"], "latitude": [1.0, None],
         "longitude": [2.0, None], "events": [4, 0], "species": ["impala (4)", ""],
         "is_generalised": [False, False]}
    )  # fmt: skip
    deck = charts.deployments_map(dep)
    assert deck is not None and len(deck.layers[0].data) == 1
    assert json.loads(deck.to_json()).get("mapStyle") is None  # offline: no base map fetched
    styled = charts.deployments_map(dep, "https://tiles.example.org/style.json")
    assert styled is not None
    assert json.loads(styled.to_json())["mapStyle"] == "https://tiles.example.org/style.json"
    assert charts.deployments_map(dep.iloc[1:]) is None


HOLD = (
    "import duckdb, sys, time\n"
    "con = duckdb.connect(sys.argv[1])\n"
    "print('locked', flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
)


def test_a_long_write_lock_is_a_notice_or_the_last_result_never_a_traceback(monkeypatch, tmp_path):
    import subprocess
    import sys

    import streamlit as st

    from dashboard import queries
    from flows.store.warehouse import ensure_schema

    warehouse = tmp_path / "w.duckdb"
    with open_file(warehouse) as con:
        ensure_schema(con)
    monkeypatch.setenv("TRAPFLOW_WAREHOUSE", str(warehouse))
    monkeypatch.setattr(queries, "READ_WAIT_S", 0.5)
    monkeypatch.setattr(queries, "_busy_until", 0.0)
    monkeypatch.setattr(queries, "_last_good", {})
    st.cache_data.clear()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(warehouse), "20"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()  # nothing read before: a notice that says what is happening and what to do
        assert not at.exception, at.exception
        assert any("being written by a run" in w.value for w in at.warning), at.warning
        assert "Reload the page" in at.warning[0].value
    finally:
        holder.kill()
        holder.wait()
    st.cache_data.clear()
    at.run()  # unlocked: read, and remembered as the last good result
    assert not at.exception and not at.warning
    first = [i.value for i in at.info]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(warehouse), "20"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        monkeypatch.setattr(queries, "_busy_until", 0.0)
        st.cache_data.clear()
        at.run()  # locked again, but the last result is served
        assert not at.exception and not at.warning
        assert [i.value for i in at.info] == first
    finally:
        holder.kill()
        holder.wait()
