"""The project's own generic data tests fail on the rows they guard against.

The tests: dbt/macros/generic_tests.sql.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flows.store.warehouse import open_file
from tests.dbt.test_build import dbt_build, fixture_built


def test_primary_key_fails_on_a_repeated_and_a_null_key_and_passes_on_the_fixture(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    # the fixture's own `dbt build` (every data test, primary_key's 24 included) must pass
    built = fixture_built(tmp_path_factory)
    select = ("--select", "stg_pipeline__runs,test_name:primary_key")
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy2(built, warehouse)
    with open_file(warehouse) as con:
        # the same table without its key constraint, so a repeated and a null key can land
        con.execute("create or replace table raw.runs as select * from raw.runs")
        con.execute("insert into raw.runs select * from raw.runs limit 1")
        con.execute("insert into raw.runs select * replace (null as run_id) from raw.runs limit 1")
    result = dbt_build(warehouse, tmp_path, *select, "--store-failures", command="test")
    assert result.returncode != 0
    assert "primary_key_stg_pipeline__runs_run_id" in result.stdout, result.stdout[-3000:]
    assert "Got 2 results" in result.stdout, result.stdout[-3000:]
    with open_file(warehouse, read_only=True) as con:
        (failures,) = con.execute(
            "select table_schema || '.' || table_name from information_schema.tables"
            " where table_name = 'primary_key_stg_pipeline__runs_run_id'"
        ).fetchone() or (None,)
        assert failures, "dbt stored no failures"
        problems = con.execute(f"select problem, n_records from {failures} order by 1").fetchall()
    assert problems == [("null key", 1), ("repeated key", 2)]
