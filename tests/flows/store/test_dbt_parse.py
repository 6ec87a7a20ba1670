"""dbt attaches a warehouse by its name, running in its folder, so the profile is the same for
every warehouse of one name and a new one starts from the last run's partial parse instead of
a full one; each build still writes to its own file. Real dbt runs on real DuckDB files."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.settings import Settings
from flows.store import dbt as dbt_module
from flows.store.dbt import run_dbt
from flows.store.warehouse import ensure_schema, open_file

FULL = "Unable to do partial parsing"


def _log(settings: Settings) -> str:
    return (settings.scratch_path / "logs" / "dbt.log").read_text()


def test_a_new_warehouse_of_the_same_name_parses_partially_and_builds_its_own_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dbt_module, "PARSE_SEEDS", tmp_path / "seeds")
    first, second = (
        Settings(warehouse=tmp_path / name / "warehouse.duckdb", home=tmp_path / name)
        for name in ("first", "second")
    )
    for settings in (first, second):
        settings.warehouse_path.parent.mkdir(parents=True)
        with open_file(settings.warehouse_path) as con:
            ensure_schema(con)
    run_dbt(first, "parse")
    assert FULL in _log(first)  # nothing to start from

    run_dbt(second, "run", "--select", "stg_pipeline__media")
    assert FULL not in _log(second)
    assert "Partial parsing enabled" in _log(second)
    with open_file(second.warehouse_path, read_only=True) as con:
        assert con.execute("select count(*) from staging.stg_pipeline__media").fetchone() == (0,)
    with open_file(first.warehouse_path, read_only=True) as con:
        views = con.execute(
            "select count(*) from duckdb_views() where view_name = 'stg_pipeline__media'"
        ).fetchone()
    assert views == (0,)  # the second build wrote its own file, not the first one's

    other_vars = Settings(
        warehouse=tmp_path / "third" / "warehouse.duckdb",
        home=tmp_path / "third",
        independence_minutes=90,
    )
    run_dbt(other_vars, "parse")
    assert FULL in _log(other_vars)  # other vars: a parse of their own
