"""The dashboard reads only the marts (issue 6): every query it can run, run for real against a
warehouse that has nothing but the marts, shaped by their dbt contracts (the column names and
types in dbt/models/marts/*.yml), and the only writes are review.labels inserts (the Review
and Label pages), the Label page's undo of the rows it just inserted, and the Time problems
page's review.clock_shifts insert.

Two checks: (1) every cached query function in dashboard/queries.py and dashboard/labelling.py
is called and each SQL it
sends is executed on a DuckDB file holding only ``marts.*`` (a reference to raw, staging,
intermediate, review or alerts, or to a column a mart does not have, raises there); (2) no
other dashboard module talks to DuckDB, and no string in any module names a schema-qualified
relation outside ``marts`` (what a code path the calls miss would still hold).
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
import yaml

from flows.store.warehouse import open_file

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "dashboard"
MARTS_YML = sorted((REPO / "dbt" / "models" / "marts").rglob("*.yml"))
REVIEW_DDL = REPO / "flows" / "store" / "schema" / "10_review.sql"
SHIFTS_DDL = REPO / "flows" / "store" / "schema" / "11_review_clock_shifts.sql"
INSERT_REVIEW = re.compile(r"^\s*insert\s+into\s+review\.labels\b", re.IGNORECASE)
INSERT_SHIFT = re.compile(r"^\s*insert\s+into\s+review\.clock_shifts\b", re.IGNORECASE)
UNDO_REVIEW = re.compile(r"^\s*delete\s+from\s+review\.labels\s+where\s+label_id\s*=", re.I)
QUALIFIED = re.compile(
    r'\b(from|join|into|update|table|view|describe)\s+"?([a-z_]\w*)"?\s*\.\s*"?([a-z_]\w*)',
    re.IGNORECASE,
)
READ = re.compile(r"^\s*(select|with)\b", re.IGNORECASE)


def mart_contracts() -> dict[str, list[tuple[str, str]]]:
    """mart -> [(column, data_type)] from the contracts in dbt/models/marts/*.yml."""
    marts: dict[str, list[tuple[str, str]]] = {}
    for path in MARTS_YML:
        for model in yaml.safe_load(path.read_text(encoding="utf-8")).get("models", []):
            columns = [(c["name"], c["data_type"]) for c in model.get("columns", [])]
            assert columns and all(t for _, t in columns), f"{model['name']}: no contract"
            marts[model["name"]] = columns
    return marts


def marts_only_warehouse(path: Path) -> Path:
    """A DuckDB file with an empty table per mart (its contract's columns) and nothing else."""
    with open_file(path) as con:
        con.execute("create schema marts")
        for name, columns in mart_contracts().items():
            cols = ", ".join(f'"{c}" {t}' for c, t in columns)
            con.execute(f"create table marts.{name} ({cols})")
    return path


ATTACH = re.compile(r"^\s*(attach|use|detach)\b", re.IGNORECASE)


class _Recording:
    """A connection that runs each statement on the marts-only file (the review.labels insert
    on a file with the review schema) and records the statement and what it raised."""

    def __init__(self, marts: duckdb.DuckDBPyConnection, review: duckdb.DuckDBPyConnection):
        self.marts, self.review = marts, review
        self.seen: list[tuple[str, Exception | None]] = []

    def __enter__(self) -> _Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        return None

    def executemany(self, sql: str, params: list[list[Any]]) -> duckdb.DuckDBPyConnection:
        for row in params:
            result = self.execute(sql, row)
        return result

    def execute(self, sql: str, params: list[Any] | None = None) -> duckdb.DuckDBPyConnection:
        if ATTACH.match(sql):  # the warehouse is attached under a fixed name: already open here
            return self.marts
        writes_review = any(p.match(sql) for p in (INSERT_REVIEW, UNDO_REVIEW, INSERT_SHIFT))
        con = self.review if writes_review else self.marts
        try:
            result = con.execute(sql, params or [])
        except Exception as exc:
            self.seen.append((sql, exc))
            raise
        self.seen.append((sql, None))
        return result


@pytest.fixture()
def recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Recording]:
    from dashboard import queries

    marts_path = marts_only_warehouse(tmp_path / "marts_only.duckdb")
    with (
        open_file(marts_path) as marts,
        open_file(tmp_path / "review_write.duckdb") as review,
    ):
        review.execute(REVIEW_DDL.read_text(encoding="utf-8"))
        review.execute(SHIFTS_DDL.read_text(encoding="utf-8"))
        recorder = _Recording(marts, review)
        monkeypatch.setattr(queries.duckdb, "connect", lambda *a, **k: recorder)
        queries.st.cache_data.clear()
        yield recorder
    queries.st.cache_data.clear()


def _is_query(module: Any, name: str, fn: Any) -> bool:
    """A public function of dashboard/queries.py that reads the warehouse given first."""
    if name.startswith("_") or isinstance(fn, type) or not callable(fn):
        return False
    if name in (
        "write_review", "write_reviews", "undo_reviews", "accept_clock_shift",
        "stale_marts_notice",
    ):  # fmt: skip
        return False
    if getattr(fn, "__module__", "") != module.__name__:
        return False
    return next(iter(inspect.signature(fn).parameters), None) == "warehouse"


def _calls(warehouse: str) -> dict[str, tuple[Any, ...]]:
    """One call per query function, with every optional filter set (so each SQL branch runs)."""
    day, later = date(2024, 6, 1), date(2024, 6, 30)
    return {
        "has_marts": (warehouse,),
        "labels": (warehouse, "animal"),
        "sites": (warehouse,),
        "date_span": (warehouse,),
        "population_variance": (warehouse, ("impala", "zebra"), "S1", day, later),
        "population_trend": (warehouse, ("impala",), "S1"),
        "rai_intervals": (warehouse, ("impala",), "S1"),
        "behaviour_time": (warehouse, "S1"),
        "deployments": (warehouse,),
        "site_events": (warehouse,),
        "human_activity": (warehouse, day, later),
        "alerts_sent": (warehouse,),
        "people_images": (warehouse,),
        "review_queue": (warehouse, "impala", 0.2, 0.9, "S1", day, later),
        "review_image": (warehouse, "0" * 64),
        "runs": (warehouse,),
        "quarantine": (warehouse,),
        "marts_freshness": (warehouse,),
        "time_problems": (warehouse,),
    }


def _label_calls(warehouse: str) -> dict[str, tuple[Any, ...]]:
    """The Label page's queries (dashboard/labelling.py), one call each."""
    return {
        "screen": (warehouse, "S1", ("d1",), 0.8),
        "people": (warehouse, ("m1", "m2")),
        "head_reports": (warehouse,),
    }


def test_every_dashboard_query_runs_on_a_warehouse_of_marts_only(
    recording: _Recording, tmp_path: Path
) -> None:
    from dashboard import queries, reviews

    warehouse = str(tmp_path / "marts_only.duckdb")
    calls = _calls(warehouse)
    readers = {name for name, fn in vars(queries).items() if _is_query(queries, name, fn)}
    assert readers == set(calls), "a query function without a call here: add it to _calls()"
    for name, args in calls.items():
        before = len(recording.seen)
        getattr(queries, name)(*args)
        assert len(recording.seen) > before, f"{name} ran no SQL"
    from dashboard import labelling

    label_calls = _label_calls(warehouse)
    label_readers = {  # the cached reads (progress_path & co. take the warehouse too)
        n for n, fn in vars(labelling).items()
        if _is_query(labelling, n, fn) and hasattr(fn, "clear")
    }  # fmt: skip
    assert label_readers == set(label_calls), "a Label query without a call in _label_calls()"
    for name, args in label_calls.items():
        before = len(recording.seen)
        getattr(labelling, name)(*args)
        assert len(recording.seen) > before, f"{name} ran no SQL"
    reviews.write_review(
        warehouse, media_id="m", detection_id="d", category="animal", label="kudu",
        is_false_positive=False, reviewer="test",
    )  # fmt: skip
    group = [reviews.Review("m", f"d{i}", "animal", "eland") for i in range(3)]
    undone = reviews.write_reviews(warehouse, group, reviewer="test")
    reviews.undo_reviews(warehouse, undone)
    problem = {"site_id": "S1", "camera_id": "C2", "kind": "day_night_swap",
               "proposed_shift_s": 43200, "proposed_shift_text": "+0:0:0 12:0:0"}  # fmt: skip
    reviews.accept_clock_shift(warehouse, pd.Series(problem), accepted_by="test")
    queries.stale_marts_notice(warehouse)

    failed = [(sql, exc) for sql, exc in recording.seen if exc is not None]
    assert not failed, failed
    writes = [sql for sql, _ in recording.seen if not READ.match(sql)]
    assert len(writes) == 8, writes  # 1 + a group of 3 inserted, those 3 undone, 1 shift
    assert all(INSERT_REVIEW.match(w) for w in writes[:4]), writes
    assert all(UNDO_REVIEW.match(w) for w in writes[4:7]), writes
    assert INSERT_SHIFT.match(writes[7]), writes
    assert recording.review.execute("select label from review.labels").fetchall() == [("kudu",)]
    assert recording.review.execute(
        "select camera_id, shift_micros, shift_text, accepted_by from review.clock_shifts"
    ).fetchall() == [("C2", 43_200_000_000, "+0:0:0 12:0:0", "test")]


def test_a_query_outside_the_marts_fails_here(recording: _Recording) -> None:
    """The check above can fail: a read of raw (or a mart column that does not exist) raises."""
    for sql in (
        "select count(*) from raw.detections",
        "select label from review.labels",
        "select media_id from intermediate.int_detections_labelled",
        "select no_such_column from marts.fct_detections",
    ):
        with pytest.raises(duckdb.Error):
            recording.execute(sql)
    recording.execute("select label_source from marts.fct_detections")


def _strings(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every string literal that is not a docstring; an f-string with its holes as '?'."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
        and node.body and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }  # fmt: skip
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "?" for v in node.values)
            yield node.lineno, str(text)
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings
        ):  # fmt: skip
            yield node.lineno, node.value


def test_no_dashboard_module_names_a_relation_outside_the_marts() -> None:
    modules = sorted(DASHBOARD.rglob("*.py"))
    assert len(modules) >= 8, modules  # streamlit_app, queries, charts, images, five pages
    outside = []
    for path in modules:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        imports_duckdb = any(
            any(a.name.split(".")[0] == "duckdb" for a in n.names)
            if isinstance(n, ast.Import)
            else (n.module or "").split(".")[0] == "duckdb"
            for n in ast.walk(tree)
            if isinstance(n, ast.Import | ast.ImportFrom)
        )
        if imports_duckdb and path.name != "queries.py":
            outside.append((path.name, 0, "imports duckdb: queries go in dashboard/queries.py"))
        for lineno, text in _strings(tree):
            for match in QUALIFIED.finditer(text):
                schema, name = match.group(2).lower(), match.group(3).lower()
                if schema == "marts":
                    continue
                if (schema, name) == ("review", "labels") and (
                    INSERT_REVIEW.match(text) or UNDO_REVIEW.match(text)
                ):
                    continue
                if (schema, name) == ("review", "clock_shifts") and INSERT_SHIFT.match(text):
                    continue
                outside.append((path.name, lineno, match.group(0)))
    assert not outside, outside


@pytest.mark.parametrize(
    "text",
    [
        "select * from raw.detections",
        "select d.x from marts.fct_detections as d join intermediate.int_x as i using (x)",
        "select * from review.labels where media_id = ?",
        "select * from information_schema.tables",
    ],
)
def test_the_static_check_catches_a_non_mart_relation(text: str) -> None:
    hits = [m.group(2).lower() for m in QUALIFIED.finditer(text) if m.group(2).lower() != "marts"]
    assert hits and not INSERT_REVIEW.match(text)
