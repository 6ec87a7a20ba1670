"""A warehouse may be called anything: every connection attaches the file under one fixed name
(``flows.store.warehouse.ALIAS``), so a file called like a schema (alerts.duckdb, raw.duckdb),
with spaces and brackets, or under a folder with non-ASCII letters works everywhere: runs,
dbt, the summary, the dashboard and its review writes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from flows.store import warehouse as _warehouse
from flows.store.warehouse import ALIAS, WarehouseStore, attached, connect

REPO = Path(__file__).resolve().parents[3]
APP = str(REPO / "dashboard" / "streamlit_app.py")
TRAPFLOW = str(Path(sys.executable).parent / "trapflow")
PAGES = [
    "app_pages/population.py",
    "app_pages/sites.py",
    "app_pages/human_activity.py",
    "app_pages/review.py",
    "app_pages/health.py",
]
SCHEMAS = ["alerts", "raw", "marts", "review", "staging", "intermediate", "main"]
NAMES = [
    *(f"{schema}.duckdb" for schema in SCHEMAS),
    "my warehouse (2).duckdb",
    "Réserve_Ñandú/entrepôt.duckdb",
    "it's.duckdb",
]
#: the end-to-end runs (each ~60-90 s on 2 cores): schema names; spaces, brackets, non-ASCII
END_TO_END = ["alerts.duckdb", "raw.duckdb", "Réserve Ñandú/my warehouse (2).duckdb"]


def test_the_attach_name_is_no_schema_of_the_warehouse_or_of_dbt() -> None:
    declared = set(SCHEMAS)
    for sql in _warehouse.SCHEMA_DIR.glob("*.sql"):
        declared |= set(re.findall(r"create schema if not exists (\w+)", sql.read_text()))
    project = (REPO / "dbt" / "dbt_project.yml").read_text(encoding="utf-8")
    declared |= set(re.findall(r"\+schema:\s*(\w+)", project))
    assert ALIAS not in declared
    profile = (REPO / "dbt" / "profiles.yml").read_text(encoding="utf-8")
    assert f"alias: {ALIAS}" in profile and f"database: {ALIAS}" in profile


@pytest.mark.parametrize("name", NAMES)
def test_every_connection_reads_every_schema_whatever_the_file_is_called(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh = tmp_path / name
    store = WarehouseStore(wh)
    store.start_run("r1", "file:///card", None, datetime.now(UTC).replace(tzinfo=None))
    with connect(wh) as con:
        assert con.execute("select count(*) from alerts.outbox").fetchall() == [(0,)]
        with connect(wh, read_only=True) as nested:  # a thread's nested connection
            assert nested.execute("select count(*) from raw.runs").fetchall() == [(1,)]
    with attached(wh) as con:  # the ingest's per-batch connection
        assert con.execute("select count(*) from review.labels").fetchall() == [(0,)]
        assert con.execute("select current_database()").fetchall() == [(ALIAS,)]
    with store.reading() as con:
        assert con.execute("select status from raw.runs").fetchall() == [("running",)]
        assert con.execute("select count(*) from alerts.outbox").fetchall() == [(0,)]

    from dashboard import queries, reviews

    queries.st.cache_data.clear()
    frames = queries._read_all(
        str(wh), [("select count(*) as n from alerts.outbox", []), ("select 1 as n", [])]
    )
    assert [int(f["n"].iloc[0]) for f in frames] == [0, 1]
    reviews.write_review(
        str(wh), media_id="m1", detection_id=None, category="animal", label="zebra",
        is_false_positive=False, reviewer="tester",
    )  # fmt: skip
    frame = queries._read(str(wh), "select label, reviewer from review.labels")
    assert frame.to_dict("records") == [{"label": "zebra", "reviewer": "tester"}]


@pytest.fixture(scope="module")
def cli_env(
    tmp_path_factory: pytest.TempPathFactory, pulled_models: Path, prefect_api: str
) -> dict[str, str]:
    home = tmp_path_factory.mktemp("prefect")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TRAPFLOW_"))}
    env.update(
        PREFECT_HOME=str(home), PREFECT_API_URL=prefect_api, TRAPFLOW_MODEL_DIR=str(pulled_models),
        PYTHONUNBUFFERED="1",
    )  # fmt: skip
    return env


@pytest.mark.slow
@pytest.mark.parametrize("name", END_TO_END)
def test_a_warehouse_of_any_name_runs_builds_summarises_alerts_and_opens_in_the_dashboard(
    cli_env: dict[str, str],
    camtrap_dir: Path,
    tmp_path: Path,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests._servers import json_sink

    card = tmp_path / "card" / "Ruaha" / "cam07"
    card.mkdir(parents=True)
    for rel in ("google__cameratrapai/test_data/human.jpg",
                "drivendataorg__zamba/tests/assets/images/ena24_small/2480.jpg"):  # fmt: skip
        (card / Path(rel).name).write_bytes((camtrap_dir / rel).read_bytes())
    wh = tmp_path / name
    with json_sink() as sink:
        env = {**cli_env, "TRAPFLOW_ALERT_URLS": f"json://127.0.0.1:{sink.port}/odd"}
        run = subprocess.run(
            [TRAPFLOW, "run", "--source", str(tmp_path / "card"), "--warehouse", str(wh),
             "--layout", "{site}/{camera}/...", "--once"],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        output = run.stdout + run.stderr
        assert run.returncode == 0, output[-4000:]
        assert "Traceback" not in output and "Ambiguous" not in output, output[-4000:]
        received = sink.wait_for(1)
    assert [r["title"] for r in received] == ["Person at site Ruaha, camera cam07"]
    with connect(wh, read_only=True) as con:
        assert con.execute("select count(*) from raw.media").fetchall() == [(2,)]
        assert con.execute("select count(*) from alerts.outbox").fetchall() == [(1,)]
        ((days,),) = con.execute("select count(*) from marts.fct_daily_population").fetchall()
        assert days > 0  # dbt built the marts in this file

    summary = subprocess.run(
        [TRAPFLOW, "summary", "--warehouse", str(wh)],
        env=cli_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert summary.returncode == 0, summary.stdout[-3000:] + summary.stderr[-3000:]
    assert re.search(r"images\s+2 ", summary.stdout), summary.stdout
    assert re.search(r"person\s+1 images", summary.stdout), summary.stdout

    monkeypatch.setenv("TRAPFLOW_WAREHOUSE", str(wh))
    from dashboard import queries

    queries.st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    for page in PAGES:
        if page != PAGES[0]:
            at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not at.info or "trapflow run" not in at.info[0].value, (page, at.info[0].value)
    assert int(at.metric[2].value) == 2  # Health: images processed
