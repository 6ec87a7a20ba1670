"""The DuckDB warehouse: schema, bulk loads in one transaction per batch, and run records.

DuckDB allows one writer process, and a reader also blocks a writer, so connections here are
short-lived and opening one retries with backoff while another process holds the file.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from flows.errors import UserError

T = TypeVar("T")

SCHEMA_DIR = Path(__file__).with_name("schema")  # NN_area.sql, applied in name order

#: How long to wait for another process's lock before giving up (then the task retries).
LOCK_WAIT_S = float(os.environ.get("TRAPFLOW_LOCK_WAIT_S", "60"))


class WarehouseBusyError(UserError, RuntimeError):
    """Another process held the warehouse for longer than we waited."""


#: The name every connection gives the warehouse file: a fixed alias, never the file's stem
#: (``duckdb.connect("alerts.duckdb")`` names its catalog ``alerts``, which collides with the
#: ``alerts`` schema), and no schema of the warehouse is called this.
ALIAS = "warehouse"


@contextmanager
def connect(
    path: Path, *, read_only: bool = False, wait_s: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection that is closed on exit; waits while another process holds the lock.

    The file is attached under :data:`ALIAS` (and in use), whatever it is called. One
    connection to the file at a time per process (threads take turns): opening one while
    another thread closes the last (or registers Arrow tables on it) races inside DuckDB
    ("Table Function with name python_arrow_scan does not exist"). A thread that nests
    connections to the same file gets a cursor of the one it already has open.
    """
    with CONNECTION_LOCK, _connect(path, read_only=read_only, wait_s=wait_s) as con:
        yield con


#: Held while this process has a connection open (see :func:`connect`; the dashboard's
#: read-only connections take it too); re-entrant, so a thread may nest connections.
CONNECTION_LOCK = threading.RLock()

#: Per thread: resolved warehouse path -> the connection that has it attached right now.
_OPEN = threading.local()


def _open_here() -> dict[str, duckdb.DuckDBPyConnection]:
    if not hasattr(_OPEN, "files"):
        _OPEN.files = {}
    files: dict[str, duckdb.DuckDBPyConnection] = _OPEN.files
    return files


def _key(path: Path) -> str:
    return str(Path(path).expanduser().absolute())


@contextmanager
def _nested(host: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor of a connection this thread already has open on the file."""
    cursor = host.cursor()
    try:
        cursor.execute(f"use {ALIAS}")
        yield cursor
    finally:
        cursor.close()


def sql_literal(value: object) -> str:
    """A SQL string literal (quotes doubled): duckdb 1.5 takes no prepared parameter in ATTACH."""
    return "'" + str(value).replace("'", "''") + "'"


def open_file(
    path: Path, *, read_only: bool = False, config: dict[str, Any] | None = None
) -> duckdb.DuckDBPyConnection:
    """A new connection with the file attached as :data:`ALIAS` and in use; no lock, no wait
    (the caller closes it). Raises what DuckDB raises, e.g. ``IOException`` on a locked file."""
    # spills go beside the file, as for a database opened directly (not to ./.tmp)
    con = duckdb.connect(":memory:", config={"temp_directory": f"{path}.tmp", **(config or {})})
    try:
        mode = " (read_only)" if read_only else ""
        con.execute(f"attach {sql_literal(path)} as {ALIAS}{mode}")
        con.execute(f"use {ALIAS}")
    except BaseException:
        con.close()
        raise
    return con


@contextmanager
def _connect(
    path: Path, *, read_only: bool = False, wait_s: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    path = Path(path)
    open_here = _open_here()
    key = _key(path)
    if key in open_here:
        with _nested(open_here[key]) as cursor:
            yield cursor
        return
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = _waiting(path, wait_s, lambda: open_file(path, read_only=read_only))
    open_here[key] = con
    try:
        yield con
    finally:
        del open_here[key]
        con.close()


def _waiting(path: Path, wait_s: float | None, open_it: Callable[[], T]) -> T:
    """``open_it()``, retried with backoff while another process holds the file's lock."""
    wait_s = LOCK_WAIT_S if wait_s is None else wait_s
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        try:
            return open_it()
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() > deadline:
                raise WarehouseBusyError(
                    f"the warehouse {path} stayed locked by another process for {wait_s:.0f} s "
                    f"({exc}). Stop the other writer (a second 'trapflow run', or a dbt "
                    "build) and try again."
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


@contextmanager
def attached(path: Path, *, wait_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """:func:`connect` for the ingest's per-batch work: the same tables, and the file is
    unlocked again on exit, but it is attached to one in-memory DuckDB kept for the life of
    this process instead of opened and closed.

    Closing a DuckDB database (and its threads exiting) makes DuckDB hand the freed memory of
    the whole process back to the kernel (``malloc_trim``), so the decoder's and detectors'
    buffers are page-faulted in again after every batch: about 200,000 page faults for 173
    photos. Attach and detach do not (the host runs on its caller's thread only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with CONNECTION_LOCK:
        open_here = _open_here()
        key = _key(path)
        if key in open_here:  # nested in a connection of this thread to the same file
            with _nested(open_here[key]) as cursor:
                yield cursor
            return
        host = _host()
        _waiting(path, wait_s, lambda: host.execute(f"attach {sql_literal(path)} as {ALIAS}"))
        open_here[key] = host
        failed = True
        try:
            host.execute(f"use {ALIAS}")
            yield host
            failed = False
        finally:
            del open_here[key]
            _detach(host, raise_errors=not failed)


def _detach(host: duckdb.DuckDBPyConnection, *, raise_errors: bool) -> None:
    """Detach the warehouse (which checkpoints and unlocks it). If that fails (a full disk at
    the checkpoint), the host is closed, which lets go of the file, and the next
    :func:`attached` starts a new one."""
    global _HOST
    with contextlib.suppress(duckdb.Error):
        host.execute("rollback")  # a transaction left open by an exception
    try:
        host.execute("use memory")
        host.execute(f"detach {ALIAS}")
    except duckdb.Error:
        _HOST = None
        with contextlib.suppress(duckdb.Error):
            host.close()
        if raise_errors:
            raise


_HOST: duckdb.DuckDBPyConnection | None = None


def _host() -> duckdb.DuckDBPyConnection:
    """The in-memory DuckDB that :func:`attached` attaches files to (caller holds the lock)."""
    global _HOST
    if _HOST is None:
        _HOST = duckdb.connect(":memory:", config={"threads": 1})
    return _HOST


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every table the flows write (idempotent: ``create ... if not exists``).

    In a warehouse that reads a lake, ``raw.*`` are views over its Parquet files: they are
    dropped first (``flows.store.lake.attach`` puts them back) so that the schema's ``alter table``
    statements apply to tables.
    """
    views = con.execute(
        "select view_name from duckdb_views() where schema_name = 'raw' and not internal"
    ).fetchall()
    for (name,) in views:
        con.execute(f'drop view raw."{name}"')
    for sql in sorted(SCHEMA_DIR.glob("*.sql")):
        con.execute(sql.read_text(encoding="utf-8"))


def known_files(con: duckdb.DuckDBPyConnection, source_uri: str) -> dict[str, tuple[int, Any]]:
    """Path -> (size, mtime) of every file already seen under this source."""
    rows = con.execute(
        "select file_path, file_size, file_modified_at from raw.media_files where source_uri = ?",
        [source_uri],
    ).fetchall()
    return {path: (size, mtime) for path, size, mtime in rows}


def known_file_table(con: duckdb.DuckDBPyConnection, source_uri: str) -> pa.Table:
    """file_path, file_size, file_modified_at of every file seen under this source, as Arrow
    (no Python object per file: ``flows.pipeline.discovery.new_or_changed`` joins it)."""
    return con.execute(
        "select file_path, file_size, file_modified_at from raw.media_files where source_uri = ?",
        [source_uri],
    ).fetch_arrow_table()


def run_count(con: duckdb.DuckDBPyConnection, source_uri: str) -> int:
    """How many runs have polled this source (the periodic full listing counts them)."""
    row = con.execute("select count(*) from raw.runs where source_uri = ?", [source_uri]).fetchone()
    return int(row[0]) if row else 0


def known_media(con: duckdb.DuckDBPyConnection, media_ids: Sequence[str]) -> set[str]:
    if not media_ids:
        return set()
    table = pa.table({"media_id": pa.array(list(media_ids), pa.string())})
    con.register("_ids", table)
    try:
        rows = con.execute(
            "select m.media_id from raw.media m join _ids using (media_id)"
        ).fetchall()
    finally:
        con.unregister("_ids")
    return {r[0] for r in rows}


def _table(rows: list[dict[str, Any]], con: duckdb.DuckDBPyConnection, name: str) -> pa.Table:
    """Rows as an Arrow table typed like the warehouse table (missing keys are null)."""
    target = con.sql(f"select * from raw.{name} limit 0").to_arrow_table().schema
    return pa.table({f.name: pa.array([r.get(f.name) for r in rows], type=f.type) for f in target})


def load_batch(
    con: duckdb.DuckDBPyConnection,
    *,
    media: list[dict[str, Any]],
    detections: list[dict[str, Any]],
    quarantine: list[dict[str, Any]],
    files: list[dict[str, Any]],
    classifications: list[dict[str, Any]] | None = None,
    media_labels: list[dict[str, Any]] | None = None,
    frame_labels: list[dict[str, Any]] | None = None,
    crop_embeddings: list[dict[str, Any]] | None = None,
    transaction: bool = True,
) -> dict[str, int]:
    """Write one batch atomically: all of it or none. Re-loading the same rows adds nothing.
    ``transaction`` False: the caller holds the transaction (an import of several tables)."""
    counts: dict[str, int] = {}
    if transaction:
        con.execute("begin transaction")
    try:
        for name, rows, verb in (
            ("media", media, "insert or ignore"),
            ("detections", detections, "insert or ignore"),
            ("classifications", classifications or [], "insert or ignore"),
            ("media_labels", media_labels or [], "insert or ignore"),
            ("frame_labels", frame_labels or [], "insert or ignore"),
            ("crop_embeddings", crop_embeddings or [], "insert or ignore"),
            ("quarantine", quarantine, "insert or ignore"),
            ("media_files", files, "insert or replace"),
        ):
            if not rows:
                counts[name] = 0
                continue
            before = _count(con, name)
            con.register("_batch", _table(rows, con, name))
            con.execute(f"{verb} into raw.{name} by name select * from _batch")
            con.unregister("_batch")
            counts[name] = _count(con, name) - before
        if transaction:
            con.execute("commit")
    except BaseException:
        if transaction:
            con.execute("rollback")
        raise
    return counts


def _count(con: duckdb.DuckDBPyConnection, name: str) -> int:
    ((count,),) = con.execute(f"select count(*) from raw.{name}").fetchall()
    return int(count)


def start_run(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    source_uri: str,
    flow_run_id: str | None,
    started_at: datetime,
) -> None:
    con.execute(
        "insert or replace into raw.runs (run_id, flow_run_id, source_uri, started_at, status) "
        "values (?, ?, ?, ?, 'running')",
        [run_id, flow_run_id, source_uri, started_at],
    )


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, values: dict[str, Any]) -> None:
    columns = ", ".join(f"{k} = ?" for k in values)
    con.execute(f"update raw.runs set {columns} where run_id = ?", [*values.values(), run_id])


def has_mart(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the marts hold ``name`` (a warehouse built before it was added does not)."""
    row = con.execute(
        "select count(*) from information_schema.tables "
        "where table_schema = 'marts' and table_name = ?",
        [name],
    ).fetchone()
    return bool(row and row[0])


def has_marts(path: Path) -> bool:
    """Whether dbt has built the marts in this warehouse."""
    if not path.exists():
        return False
    with connect(path, read_only=True) as con:
        return has_mart(con, "fct_daily_population")


def quarantine_row(
    source_uri: str, file_path: str, run_id: str, reason: str, error: str, action: str = "skipped"
) -> dict[str, Any]:
    """A raw.quarantine row for a file that was never read (its id is stable across polls).

    Kept for callers of the old name: rows are built by :func:`flows.store.rows.quarantine_row`.
    """
    from flows.pipeline.quarantine import QuarantineReason
    from flows.store import rows

    return rows.quarantine_row(
        source_uri=source_uri, file_path=file_path, reason=QuarantineReason(reason), error=error,
        run_id=run_id, action=action,
    ).as_row()  # fmt: skip


class WarehouseStore:
    """The :class:`flows.store.Store` of one DuckDB file: every table, marts and outbox in it.

    The ingest's per-batch calls (:meth:`known_media`, :meth:`load_batch`) go through
    :func:`attached`, everything else through :func:`connect`.
    """

    lake: str | None = None

    def __init__(self, warehouse: Path) -> None:
        self.warehouse = Path(warehouse)
        self._schema_ready = False

    def __repr__(self) -> str:
        return f"WarehouseStore({str(self.warehouse)!r})"

    @property
    def holds_history(self) -> bool:
        return True

    def exists(self) -> bool:
        return self.warehouse.exists()

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect(self.warehouse, read_only=True) as con:
            yield con

    @contextmanager
    def writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect(self.warehouse) as con:
            if not self._schema_ready:
                ensure_schema(con)
                self._schema_ready = True
            yield con

    def known_files(self, source_uri: str) -> dict[str, tuple[int, Any]]:
        with self.writing() as con:
            return known_files(con, source_uri)

    def known_file_table(self, source_uri: str) -> pa.Table:
        with self.writing() as con:
            return known_file_table(con, source_uri)

    def run_count(self, source_uri: str) -> int:
        with self.writing() as con:
            return run_count(con, source_uri)

    def known_media(self, media_ids: Sequence[str]) -> set[str]:
        with attached(self.warehouse) as con:
            return known_media(con, media_ids)

    def load_batch(
        self,
        batch_id: str,
        *,
        media: list[dict[str, Any]],
        detections: list[dict[str, Any]],
        quarantine: list[dict[str, Any]],
        files: list[dict[str, Any]],
        classifications: list[dict[str, Any]] | None = None,
        media_labels: list[dict[str, Any]] | None = None,
        frame_labels: list[dict[str, Any]] | None = None,
        crop_embeddings: list[dict[str, Any]] | None = None,
    ) -> dict[str, int]:
        with attached(self.warehouse) as con:
            return load_batch(
                con, media=media, detections=detections, quarantine=quarantine, files=files,
                classifications=classifications, media_labels=media_labels,
                frame_labels=frame_labels, crop_embeddings=crop_embeddings,
            )  # fmt: skip

    def start_run(
        self, run_id: str, source_uri: str, flow_run_id: str | None, started_at: datetime
    ) -> dict[str, Any]:
        with self.writing() as con:
            start_run(con, run_id, source_uri, flow_run_id, started_at)
        return {"run_id": run_id, "flow_run_id": flow_run_id, "source_uri": source_uri,
                "started_at": started_at, "status": "running"}  # fmt: skip

    def finish_run(self, run_id: str, values: dict[str, Any]) -> None:
        with self.writing() as con:
            finish_run(con, run_id, values)

    def write_quarantine(self, rows: list[dict[str, Any]], batch_id: str) -> int:
        if not rows:
            return 0
        with self.writing() as con:
            load_batch(con, media=[], detections=[], quarantine=rows, files=[])
        return len(rows)

    def has_marts(self) -> bool:
        return has_marts(self.warehouse)

    def prepare_build(self) -> None:
        """raw.* are tables of the file: only the ones a newer trapflow added are created
        (a warehouse from before ``raw.media_labels`` builds as it is)."""
        if self.warehouse.is_file():
            with self.writing():
                pass
