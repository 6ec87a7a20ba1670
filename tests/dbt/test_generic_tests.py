"""The project's own generic data tests fail on the rows they guard against.

The tests: dbt/macros/generic_tests.sql.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flows.store.warehouse import open_file
from tests.dbt.test_build import dbt_build, fixture_built

RUNS_TEST = "primary_key_stg_pipeline__runs_run_id__run_status"


def test_key_tests_fail_on_repeated_and_null_keys_null_columns_and_false_rows(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    # the fixture's own `dbt build` (every data test, every primary_key included) must pass
    built = fixture_built(tmp_path_factory)
    select = (
        "--select", "stg_pipeline__runs,test_name:primary_key",
        "live_detections,test_name:primary_key",
        "stg_pipeline__media_files,test_name:unique_combination_of_columns",
    )  # fmt: skip
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy2(built, warehouse)
    with open_file(warehouse) as con:
        # the same tables without their constraints, so repeated and null values can land
        con.execute("create or replace table raw.runs as select * from raw.runs")
        con.execute("insert into raw.runs select * from raw.runs limit 1")
        con.execute("insert into raw.runs select * replace (null as run_id) from raw.runs limit 1")
        con.execute(
            "insert into raw.runs select * replace ('no-status' as run_id, null as status)"
            " from raw.runs where run_id is not null limit 1"
        )
        con.execute("create or replace table raw.detections as select * from raw.detections")
        con.execute("insert into raw.detections select * from raw.detections limit 1")
        con.execute(
            "insert into raw.detections select * replace ('out-of-range' as detection_id,"
            " 1.5 as confidence) from raw.detections order by detection_id limit 1"
        )
        con.execute("create or replace table raw.media_files as select * from raw.media_files")
        con.execute("insert into raw.media_files select * from raw.media_files limit 1")
        con.execute(
            "insert into raw.media_files select * replace ('no-status.jpg' as file_path,"
            " null as status) from raw.media_files limit 1"
        )
    result = dbt_build(warehouse, tmp_path, *select, "--store-failures", command="test")
    assert result.returncode != 0
    assert RUNS_TEST in result.stdout, result.stdout[-3000:]
    assert "Got 3 results" in result.stdout, result.stdout[-3000:]
    with open_file(warehouse, read_only=True) as con:
        tables = dict(
            con.execute(
                "select table_name, table_schema || '.' || table_name from"
                " information_schema.tables where table_name like 'primary_key_%'"
            ).fetchall()
        )
        assert RUNS_TEST in tables, f"stored: {sorted(tables)}"
        runs = con.execute(
            f"select problem, n_records from {tables[RUNS_TEST]} order by 1"
        ).fetchall()
        (live,) = [name for name in tables if "live_detections" in name]
        # the only unique_combination test selected (its stored name is a hash)
        ((paths,),) = con.execute(
            "select table_schema || '.' || table_name from information_schema.tables"
            " where table_name like 'unique_combination_of_columns_%'"
        ).fetchall()
        files = con.execute(
            f"select file_path, n_records, problem from {paths} order by 3"
        ).fetchall()
        boxes = con.execute(
            f"select key_value, problem from {tables[live]} order by 2, 1"
        ).fetchall()
    assert runs == [("null key", 1), ("null run_status", 1), ("repeated key", 2)]
    assert [problem for _, problem in boxes] == ["expression false", "repeated key"]
    assert boxes[0][0] == "out-of-range"
    assert [(n, problem) for _, n, problem in files] == [
        (1, "null file_status"),
        (2, "repeated key"),
    ]
    assert files[0][0] == "no-status.jpg"
