"""flows.store.warehouse.attached: the ingest's per-batch connection (a file attached to one
in-memory DuckDB kept for the process) must behave like a connection to the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from flows.store import warehouse as _warehouse

OPEN_AND_COUNT = (
    "import duckdb, sys; con = duckdb.connect(sys.argv[1]); "
    "print(con.execute('select count(*) from raw.runs').fetchall()[0][0])"
)
INSERT_RUN = (
    "insert into raw.runs (run_id, source_uri, started_at, status) values (?, 's', now(), ?)"
)
HOLD = (
    "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); "
    "sys.stdin.readline()"
)


def _count_elsewhere(path: Path) -> int:
    """Open the file read-write from another process: fails while this one holds it."""
    out = subprocess.run(
        [sys.executable, "-c", OPEN_AND_COUNT, str(path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout)


def test_attached_unlocks_on_exit_and_rolls_back_a_failed_batch(tmp_path: Path) -> None:
    wh = tmp_path / "w.duckdb"
    with _warehouse.attached(wh) as con:
        _warehouse.ensure_schema(con)
        con.execute(INSERT_RUN, ["a", "completed"])
    assert _count_elsewhere(wh) == 1  # committed, and the file is free again
    with pytest.raises(RuntimeError, match="boom"), _warehouse.attached(wh) as con:
        con.execute("begin transaction")
        con.execute(INSERT_RUN, ["b", "running"])
        raise RuntimeError("boom")
    assert _count_elsewhere(wh) == 1  # the open transaction was rolled back, not committed
    with _warehouse.attached(wh) as con:  # and the next batch attaches as usual
        assert con.execute("select count(*) from raw.runs").fetchall() == [(1,)]
        assert con.execute("select current_database()").fetchall() == [("warehouse",)]


def test_attached_waits_for_another_process_then_says_what_to_do(tmp_path: Path) -> None:
    wh = tmp_path / "w.duckdb"
    with _warehouse.attached(wh) as con:
        _warehouse.ensure_schema(con)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(wh)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with (
            pytest.raises(_warehouse.WarehouseBusyError, match="Stop the other writer"),
            _warehouse.attached(wh, wait_s=0.3),
        ):
            pass
    finally:
        holder.communicate("\n", timeout=30)
    with _warehouse.attached(wh) as con:
        assert con.execute("select count(*) from raw.media").fetchall() == [(0,)]
    with duckdb.connect(str(wh)) as con:  # nothing of ours stayed attached
        assert con.execute("select count(*) from raw.runs").fetchall() == [(0,)]
