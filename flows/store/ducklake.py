"""Scale-out storage on DuckLake: many workers write raw rows into one lake at once.

A DuckLake is a catalog in a database (PostgreSQL for many machines, SQLite or a DuckDB file
for one) and its data as Parquet files in a folder or an S3-compatible bucket. The ``lake``
setting names the catalog, ``lake_data_path`` the data:

- ``ducklake:postgres:dbname=trapflow host=db.example.org user=trapflow`` (the password from
  ``PGPASSWORD`` or ``~/.pgpass``, never in the setting)
- ``ducklake:sqlite:/data/lake.sqlite`` or ``ducklake:/data/lake.ducklake`` (one machine)

Every batch is one DuckLake transaction: each table's rows are inserted where their primary
key is not stored yet (the keys of :data:`flows.store.lake.TABLES`), and the transaction also
updates the one row of ``lake_meta.commit_token``. DuckLake commits optimistically: of two
transactions that update that row at once, one fails at commit, is rolled back whole and is
tried again on the snapshot that now holds the other's rows, so a photo two workers raced on
is stored once. A worker killed mid-batch leaves no commit, so nothing of its batch is seen.

The marts builder (``trapflow marts``) copies the raw tables as of one snapshot
(``AT (VERSION => n)``) into its own DuckDB file, records that snapshot in
``raw.lake_snapshots`` and runs dbt there; the dashboard reads that file. DuckLake keeps small
commits' rows in the catalog (data inlining); the builder then writes them out as Parquet.

Attaching (the extensions from their wheels, never from the network; the S3 secret) is
:mod:`flows.store.lake_attach`.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from flows.alerts.redaction import redact
from flows.store import warehouse as _warehouse
from flows.store.lake import TABLES
from flows.store.lake_attach import LAKE, attach_lake
from flows.store.lake_url import (
    LakeError,
    catalog_kind,
    check_lake_setting,
    default_data_path,
    is_ducklake,
)
from flows.store.warehouse import sql_literal

T = TypeVar("T")
__all__ = [
    "LAKE", "DuckLakeStore", "LakeError", "attach_lake", "catalog_kind", "check_lake_setting",
    "close_lakes", "default_data_path", "is_ducklake", "redact",
]  # fmt: skip
_log = logging.getLogger(__name__)

#: Tries of a batch's transaction that lost to another worker's commit, then it fails.
MAX_COMMIT_TRIES = 60


def _lake_type(data_type: str) -> str:
    """DuckLake has lists, not fixed-size arrays: FLOAT[128] is stored as FLOAT[]."""
    return re.sub(r"\[\d+\]", "[]", data_type)


def _template() -> dict[str, list[tuple[str, str]]]:
    """Each raw table's (column, type), from the DDL the DuckDB warehouse uses."""
    with duckdb.connect() as con:
        _warehouse.ensure_schema(con)
        rows = con.execute(
            "select table_name, column_name, data_type, is_nullable = 'NO' "
            "from information_schema.columns where table_schema = 'raw' "
            "order by table_name, ordinal_position"
        ).fetchall()
    columns: dict[str, list[tuple[str, str]]] = {t: [] for t in TABLES}
    for table, column, data_type, required in rows:
        if table in columns:
            columns[table].append((column, data_type))
            if required:
                _REQUIRED.add((table, column))
    return columns


#: (table, column) the warehouse declares NOT NULL: so does the lake (DuckLake enforces NOT
#: NULL, not keys), so a bad row fails in the worker that wrote it, not in every later build.
_REQUIRED: set[tuple[str, str]] = set()


_TEMPLATE: dict[str, list[tuple[str, str]]] = {}


def template() -> dict[str, list[tuple[str, str]]]:
    if not _TEMPLATE:
        _TEMPLATE.update(_template())
    return _TEMPLATE


def _lake_columns(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    rows = con.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_catalog = ? and table_schema in ('raw', 'lake_meta')",
        [LAKE],
    ).fetchall()
    found: dict[str, set[str]] = {}
    for schema, table, column in rows:
        found.setdefault(f"{schema}.{table}", set()).add(column)
    return found


def ensure_lake_schema(con: duckdb.DuckDBPyConnection) -> None:
    """The raw tables (and any column a newer trapflow added) and the commit token."""
    wanted = template()
    found = _lake_columns(con)
    if "lake_meta.commit_token" in found and all(
        {c for c, _ in cols} <= found.get(f"raw.{t}", set()) for t, cols in wanted.items()
    ):
        return

    def create(c: duckdb.DuckDBPyConnection) -> None:
        have = _lake_columns(c)
        c.execute(f"create schema if not exists {LAKE}.raw")
        c.execute(f"create schema if not exists {LAKE}.lake_meta")
        for table, cols in wanted.items():
            if f"raw.{table}" not in have:
                body = ", ".join(
                    f'"{n}" {_lake_type(t)}' + (" not null" if (table, n) in _REQUIRED else "")
                    for n, t in cols
                )
                c.execute(f"create table {LAKE}.raw.{table} ({body})")
                continue
            for name, data_type in cols:
                if name not in have[f"raw.{table}"]:
                    c.execute(f'alter table {LAKE}.raw.{table} add column "{name}" '
                              f"{_lake_type(data_type)}")  # fmt: skip
        if "lake_meta.commit_token" not in have:
            c.execute(f"create table {LAKE}.lake_meta.commit_token (commits bigint, "
                      "committed_at timestamp)")  # fmt: skip
            c.execute(f"insert into {LAKE}.lake_meta.commit_token values (0, now()::timestamp)")

    in_transaction(con, create, token=False)


def _conflict(exc: duckdb.Error) -> bool:
    """Lost to another commit (or, with a SQLite catalog, found it busy): try again."""
    text = str(exc).lower()
    return isinstance(exc, duckdb.TransactionException) or any(
        word in text for word in ("conflict", "database is locked", "busy")
    )


def in_transaction(
    con: duckdb.DuckDBPyConnection,
    work: Callable[[duckdb.DuckDBPyConnection], T],
    *,
    token: bool = True,
    message: str | None = None,
) -> T:
    """``work`` in one lake transaction, retried whole while it loses to another commit.

    ``token``: the transaction also bumps ``lake_meta.commit_token``, so any two writers that
    overlap in time conflict, and the one that commits second does its work again on top of
    the first's rows (its inserts-where-absent then skip them).
    """
    delay = 0.02
    for attempt in range(1, MAX_COMMIT_TRIES + 1):
        con.execute("begin transaction")
        try:
            if token:
                con.execute(f"update {LAKE}.lake_meta.commit_token set commits = commits + 1, "
                            "committed_at = now()::timestamp")  # fmt: skip
            if message:
                with contextlib.suppress(duckdb.Error):
                    con.execute(f"call {LAKE}.set_commit_message('trapflow', "
                                f"{sql_literal(message)})")  # fmt: skip
            result = work(con)
            con.execute("commit")
            return result
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):
                con.execute("rollback")
            if not _conflict(exc) or attempt == MAX_COMMIT_TRIES:
                raise
            time.sleep(delay * (1 + random.random()))  # noqa: S311 (jitter, not a secret)
            delay = min(delay * 2, 1.0)
    raise AssertionError("unreachable")


_ARROW: dict[str, pa.Schema] = {}


def _arrow(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows typed as the lake's table (missing keys null)."""
    if table not in _ARROW:
        with duckdb.connect() as con:
            cols = template()[table]
            _ARROW[table] = con.sql(
                "select " + ", ".join(f'null::{_lake_type(t)} as "{n}"' for n, t in cols)
            ).to_arrow_table().schema  # fmt: skip
    schema = _ARROW[table]
    return pa.table({f.name: pa.array([r.get(f.name) for r in rows], type=f.type)
                     for f in schema})  # fmt: skip


def insert_absent(
    con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]], *,
    replace: bool = False,
) -> int:  # fmt: skip
    """Insert the rows whose key is not stored (``replace``: delete those stored first);
    returns rows added. Runs inside the caller's transaction."""
    if not rows:
        return 0
    keys = TABLES[table][0]
    on = " and ".join(f"x.{k} = b.{k}" for k in keys)
    con.register("_batch", _arrow(table, rows))
    try:
        first = f"qualify row_number() over (partition by {', '.join(keys)}) = 1"
        con.execute(f"create or replace temp table _rows as select * from _batch {first}")
        if replace:
            con.execute(f"delete from {LAKE}.raw.{table} x where exists "
                        f"(select 1 from _rows b where {on})")  # fmt: skip
        row = con.execute(
            f"insert into {LAKE}.raw.{table} by name select * from _rows b "
            f"where not exists (select 1 from {LAKE}.raw.{table} x where {on})"
        ).fetchone()
    finally:
        con.unregister("_batch")
    return int(row[0]) if row else 0


def current_snapshot(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute(f"select max(snapshot_id) from {LAKE}.snapshots()").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def copy_snapshot(con: duckdb.DuckDBPyConnection, lake: str) -> int:
    """The raw tables as of the lake's current snapshot, copied into the file's ``raw.*``
    (one transaction) with the snapshot recorded in ``raw.lake_snapshots``; returns its id."""
    snapshot = current_snapshot(con)
    _warehouse.ensure_schema(con)
    con.execute("create table if not exists raw.lake_snapshots (snapshot_id bigint, "
                "lake varchar, copied_at timestamp, media bigint)")  # fmt: skip
    con.execute("begin transaction")
    try:
        for table in TABLES:  # ensure_schema made them tables (a worker's views are gone)
            con.execute(f"delete from raw.{table}")
            con.execute(f"insert into raw.{table} by name select * from "
                        f"{LAKE}.raw.{table} at (version => {snapshot})")  # fmt: skip
        con.execute(
            "insert into raw.lake_snapshots select ?, ?, ?, (select count(*) from raw.media)",
            [snapshot, redact(lake), datetime.now(UTC).replace(tzinfo=None)],
        )
        con.execute("commit")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("rollback")
        raise
    return snapshot


def live_views(con: duckdb.DuckDBPyConnection) -> None:
    """``raw.<table>`` in the file as views over the lake's latest snapshot (a worker's file:
    its alerts read the rows every worker committed)."""
    for table, cols in template().items():
        row = con.execute(
            "select table_type from information_schema.tables where "
            "table_catalog = current_database() and table_schema = 'raw' and table_name = ?",
            [table],
        ).fetchone()
        if row and row[0] == "BASE TABLE":
            con.execute(f"drop table raw.{table}")
        select = ", ".join(f'"{n}"::{t} as "{n}"' for n, t in cols)
        con.execute(f"create or replace view raw.{table} as select {select} "
                    f"from {LAKE}.raw.{table}")  # fmt: skip


#: Per process: (lake, data path) -> the one connection that has that lake attached.
_LAKES: dict[tuple[str, str | None], duckdb.DuckDBPyConnection] = {}
_LAKES_LOCK = threading.RLock()


def lake_connection(lake: str, data_path: str | None) -> duckdb.DuckDBPyConnection:
    """This process's connection to the lake (made, attached and its schema ensured once);
    the caller holds :data:`_LAKES_LOCK`."""
    key = (lake, data_path)
    for attempt in range(1, 9):
        if key in _LAKES:
            break
        con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                     "autoload_known_extensions": False})  # fmt: skip
        try:
            attach_lake(con, lake, data_path)
            ensure_lake_schema(con)
        except LakeError as exc:
            con.close()
            if not exc.racing or attempt == 8:
                raise
            time.sleep(0.1 * attempt * (1 + random.random()))  # noqa: S311 (jitter)
            continue
        except BaseException:
            con.close()
            raise
        _LAKES[key] = con
    return _LAKES[key]


def close_lakes() -> None:
    """Close every lake connection of this process (tests; a file catalog is then free)."""
    with _LAKES_LOCK:
        while _LAKES:
            _LAKES.popitem()[1].close()


class DuckLakeStore:
    """The :class:`flows.store.Store` of a DuckLake: rows go to the lake in one transaction
    per batch; ``warehouse`` is this process's DuckDB file (a worker's outbox, or the marts
    builder's snapshot copy and marts)."""

    def __init__(self, warehouse: Path, lake: str, data_path: str | None = None) -> None:
        catalog_kind(lake)  # a URL of no known form fails here, in one line
        self.warehouse = Path(warehouse)
        self.lake = lake
        self.data_path = data_path
        self._started: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"DuckLakeStore({str(self.warehouse)!r}, {redact(self.lake)!r})"

    @property
    def holds_history(self) -> bool:
        return False  # the marts builder builds on one snapshot of every worker's rows

    @contextmanager
    def _lake(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with _LAKES_LOCK:
            yield lake_connection(self.lake, self.data_path)

    def exists(self) -> bool:
        with self._lake():
            return True  # a new lake reads as empty tables; an unreachable one raises

    def snapshot(self) -> int:
        with self._lake() as con:
            return current_snapshot(con)

    @contextmanager
    def _file(self, *, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        """The process's lake connection with the DuckDB file attached as the warehouse (and in
        use), so the catalog is attached once per process (a file catalog allows no more)."""
        path = self.warehouse
        with _warehouse.CONNECTION_LOCK, self._lake() as con:
            open_here, key = _warehouse._open_here(), _warehouse._key(path)
            if key in open_here:  # nested in a connection of this thread to the file
                with _warehouse._nested(open_here[key]) as cursor:
                    attach_lake(cursor, self.lake, self.data_path)
                    yield cursor
                return
            if not read_only:
                path.parent.mkdir(parents=True, exist_ok=True)
            mode = " (read_only)" if read_only else ""
            _warehouse._waiting(path, None, lambda: con.execute(
                f"attach {sql_literal(path)} as {_warehouse.ALIAS}{mode}"))  # fmt: skip
            open_here[key] = con
            try:
                con.execute(f"use {_warehouse.ALIAS}")
                yield con
            finally:
                del open_here[key]
                with contextlib.suppress(duckdb.Error):
                    con.execute("rollback")  # a transaction an exception left open
                con.execute("use memory")
                con.execute(f"detach {_warehouse.ALIAS}")

    @contextmanager
    def writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._file(read_only=False) as con:
            _warehouse.ensure_schema(con)
            live_views(con)
            yield con

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The file read-only when it has raw.* (views over the lake, or a builder's snapshot
        tables); the first time, the views are made (which needs the file writable)."""
        if _has_raw(self.warehouse):
            with self._file(read_only=True) as con:
                yield con
        else:
            with self.writing() as con:
                yield con

    def known_files(self, source_uri: str) -> dict[str, tuple[int, Any]]:
        table = self.known_file_table(source_uri).to_pylist()
        return {r["file_path"]: (r["file_size"], r["file_modified_at"]) for r in table}

    def known_file_table(self, source_uri: str) -> pa.Table:
        with self._lake() as con:
            return con.execute(
                "select file_path, file_size, file_modified_at from "
                f"{LAKE}.raw.media_files where source_uri = ?", [source_uri],
            ).fetch_arrow_table()  # fmt: skip

    def run_count(self, source_uri: str) -> int:
        with self._lake() as con:
            row = con.execute(
                f"select count(*) from {LAKE}.raw.runs where source_uri = ?", [source_uri]
            ).fetchone()
        return int(row[0]) if row else 0

    def known_media(self, media_ids: Sequence[str]) -> set[str]:
        if not media_ids:
            return set()
        with self._lake() as con:
            con.register("_ids", pa.table({"media_id": pa.array(list(media_ids), pa.string())}))
            try:
                rows = con.execute(
                    f"select distinct m.media_id from {LAKE}.raw.media m join _ids using (media_id)"
                ).fetchall()
            finally:
                con.unregister("_ids")
        return {r[0] for r in rows}

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
        tables = {
            "media": media, "detections": detections,
            "classifications": classifications or [], "media_labels": media_labels or [],
            "frame_labels": frame_labels or [], "crop_embeddings": crop_embeddings or [],
            "quarantine": quarantine, "media_files": files,
        }  # fmt: skip

        def load(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
            return {
                ("files" if t == "media_files" else t): insert_absent(
                    con, t, rows, replace=t == "media_files"
                )
                for t, rows in tables.items()
            }

        with self._lake() as con:
            return in_transaction(con, load, message=batch_id)

    def start_run(
        self, run_id: str, source_uri: str, flow_run_id: str | None, started_at: datetime
    ) -> dict[str, Any]:
        started = {"run_id": run_id, "flow_run_id": flow_run_id, "source_uri": source_uri,
                   "started_at": started_at, "status": "running"}  # fmt: skip
        with self._lake() as con:
            in_transaction(con, lambda c: insert_absent(c, "runs", [started], replace=True),
                           message=f"{run_id} started")  # fmt: skip
        self._started[run_id] = started
        return started

    def finish_run(self, run_id: str, values: dict[str, Any]) -> None:
        columns = ", ".join(f'"{k}" = ?' for k in values)

        def finish(con: duckdb.DuckDBPyConnection) -> None:
            row = con.execute(f"select count(*) from {LAKE}.raw.runs where run_id = ?",
                              [run_id]).fetchone()  # fmt: skip
            if row == (0,):  # a store that did not see the start (a retry elsewhere)
                insert_absent(con, "runs", [{"run_id": run_id, **values}])
                return
            con.execute(f"update {LAKE}.raw.runs set {columns} where run_id = ?",
                        [*values.values(), run_id])  # fmt: skip

        with self._lake() as con:
            in_transaction(con, finish, message=f"{run_id} finished")

    def write_quarantine(self, rows: list[dict[str, Any]], batch_id: str) -> int:
        if not rows:
            return 0
        with self._lake() as con:
            in_transaction(con, lambda c: insert_absent(c, "quarantine", rows), message=batch_id)
        return len(rows)

    def has_marts(self) -> bool:
        return _warehouse.has_marts(self.warehouse)

    def prepare_build(self) -> None:
        """The raw tables as of one snapshot, copied into the builder's file for dbt."""
        with self._file(read_only=False) as con:
            copy_snapshot(con, self.lake)
        self.flush_inlined()

    def flush_inlined(self) -> None:
        """Rows DuckLake kept in the catalog (small commits are inlined there) written out as
        Parquet files in the data path, by the one marts builder after it copied its snapshot;
        a worker committing meanwhile conflicts with it and retries, so nothing is lost."""
        with self._lake() as con:
            try:
                in_transaction(con, lambda c: c.execute(
                    f"call ducklake_flush_inlined_data({sql_literal(LAKE)})").fetchall(),
                    message="flush inlined rows")  # fmt: skip
            except duckdb.Error as exc:
                _log.warning("the lake's inlined rows stay in the catalog for now: %s",
                             redact(str(exc)).splitlines()[0])  # fmt: skip


def _has_raw(path: Path) -> bool:
    if not path.exists():
        return False
    with _warehouse.connect(path, read_only=True) as con:
        row = con.execute(
            "select count(*) from information_schema.tables where table_catalog = ? "
            "and table_schema = 'raw' and table_name in ('media', 'detections')",
            [_warehouse.ALIAS],
        ).fetchone()
    return bool(row and row[0] == 2)
