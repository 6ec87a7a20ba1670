"""Scale-out storage: raw rows as Parquet files, one set per batch, in a folder or bucket.

A DuckDB file has one writer, so workers on several machines cannot share it. In lake mode
(``TRAPFLOW_LAKE=/data/lake`` or ``s3://bucket/lake``) every batch writes its rows as new
Parquet files (``<lake>/<table>/<run>-<batch>.parquet``; a file appears whole or not at all),
so any number of workers ingest at once without locks. The marts builder (``trapflow marts``,
the nightly deployment) then points views over those files from its own DuckDB file and runs
dbt; it is the only process that opens the warehouse.

Two workers that race on the same new image both write it; the views keep one row per media
(the first written) and that row's boxes, so the marts count every image exactly once.
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from flows.store import warehouse as _warehouse

#: The columns of a source's known files (``known_file_table``), as the warehouse types them.
KNOWN_FILES_SCHEMA = pa.schema([("file_path", pa.string()), ("file_size", pa.int64()),
                                ("file_modified_at", pa.timestamp("us"))])  # fmt: skip

#: raw table -> (primary key columns, the order that picks the row kept among duplicates)
TABLES: dict[str, tuple[tuple[str, ...], str]] = {
    "media": (("media_id",), "ingested_at"),
    "detections": (("detection_id",), "detected_at"),
    "quarantine": (("quarantine_id",), "quarantined_at"),
    "runs": (("run_id",), "finished_at desc nulls last"),
    "media_files": (("source_uri", "file_path"), "seen_at desc"),
    "classifications": (("classification_id",), "classified_at"),
    "detection_flags": (("detection_id", "flag"), "flagged_at"),
    "media_labels": (("media_label_id",), "imported_at"),
    "frame_labels": (("frame_label_id",), "labelled_at"),
    "crop_embeddings": (("media_id", "crop_key", "embedder"), "embedded_at"),
}


def _fs(lake: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, root = fsspec.core.url_to_fs(lake)
    return fs, root.rstrip("/")


def _glob(lake: str, table: str) -> str:
    return posixpath.join(lake.rstrip("/"), table, "*.parquet")


def _schemas() -> dict[str, pa.Schema]:
    """Arrow schemas of the raw tables, read from the DDL the DuckDB warehouse uses."""
    with duckdb.connect() as con:
        _warehouse.ensure_schema(con)
        return {
            t: con.sql(f"select * from raw.{t} limit 0").to_arrow_table().schema for t in TABLES
        }


_SCHEMAS: dict[str, pa.Schema] = {}


def schema(table: str) -> pa.Schema:
    if not _SCHEMAS:
        _SCHEMAS.update(_schemas())
    return _SCHEMAS[table]


def write_rows(lake: str, table: str, rows: list[dict[str, Any]], batch_id: str) -> str | None:
    """Write rows as one new Parquet file; returns its path (None when there are no rows)."""
    if not rows:
        return None
    target = schema(table)
    arrays = [pa.array([r.get(f.name) for r in rows], type=f.type) for f in target]
    data = pa.Table.from_arrays(arrays, schema=target)
    fs, root = _fs(lake)
    folder = posixpath.join(root, table)
    fs.makedirs(folder, exist_ok=True)
    final = posixpath.join(folder, f"{batch_id}.parquet")
    if fs.protocol in ("file", ("file", "local")) or "file" in fs.protocol:
        partial = final + f".{uuid.uuid4().hex}.tmp"  # rename: readers never see half a file
        with fs.open(partial, "wb") as fh:
            pq.write_table(data, fh, compression="zstd")
        fs.mv(partial, final)
    else:  # object stores: a PUT is atomic
        with fs.open(final, "wb") as fh:
            pq.write_table(data, fh, compression="zstd")
    return final


def load_batch(lake: str, batch_id: str, **tables: list[dict[str, Any]]) -> dict[str, int]:
    """The lake's version of ``_warehouse.load_batch``: media and files last, so a worker that
    dies half-way leaves boxes without media (ignored by the views) rather than media without
    boxes, and the files are not marked seen: the next poll does the batch again."""
    order = [
        "detections",
        "classifications",
        "detection_flags",
        "media_labels",
        "frame_labels",
        "crop_embeddings",
        "quarantine",
        "media",
        "media_files",
    ]
    counts = {}
    for table in order + [t for t in tables if t not in order]:
        rows = tables.get(table) or []
        write_rows(lake, table, rows, batch_id)
        counts[table] = len(rows)
    return counts


def _connect_lake(lake: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    fs, _root = _fs(lake)
    if "file" not in fs.protocol:
        con.register_filesystem(fs)
    return con


def _exists(lake: str, table: str) -> bool:
    fs, root = _fs(lake)
    return bool(fs.glob(posixpath.join(root, table, "*.parquet")))


def known_files(lake: str, source_uri: str) -> dict[str, tuple[int, Any]]:
    if not _exists(lake, "media_files"):
        return {}
    with _connect_lake(lake) as con:
        rows = con.execute(
            "select file_path, file_size, file_modified_at "
            f"from read_parquet('{_glob(lake, 'media_files')}') where source_uri = ? "
            "qualify row_number() over (partition by file_path order by seen_at desc) = 1",
            [source_uri],
        ).fetchall()
    return {p: (size, mtime) for p, size, mtime in rows}


def known_file_table(lake: str, source_uri: str) -> pa.Table:
    """The latest (file_path, file_size, file_modified_at) per path of this source, as Arrow."""
    if not _exists(lake, "media_files"):
        return pa.Table.from_batches([], KNOWN_FILES_SCHEMA)
    with _connect_lake(lake) as con:
        return con.execute(
            "select file_path, file_size, file_modified_at "
            f"from read_parquet('{_glob(lake, 'media_files')}') where source_uri = ? "
            "qualify row_number() over (partition by file_path order by seen_at desc) = 1",
            [source_uri],
        ).fetch_arrow_table()


def run_count(lake: str, source_uri: str) -> int:
    if not _exists(lake, "runs"):
        return 0
    with _connect_lake(lake) as con:
        row = con.execute(
            f"select count(distinct run_id) from read_parquet('{_glob(lake, 'runs')}', "
            "union_by_name = true) where source_uri = ?",
            [source_uri],
        ).fetchone()
    return int(row[0]) if row else 0


def known_media(lake: str, media_ids: Sequence[str]) -> set[str]:
    if not media_ids or not _exists(lake, "media"):
        return set()
    with _connect_lake(lake) as con:
        con.register("_ids", pa.table({"media_id": pa.array(list(media_ids), pa.string())}))
        rows = con.execute(
            f"select distinct m.media_id from read_parquet('{_glob(lake, 'media')}') m "
            "join _ids using (media_id)"
        ).fetchall()
    return {r[0] for r in rows}


def attach(con: duckdb.DuckDBPyConnection, lake: str) -> None:
    """Views ``raw.<table>`` over the lake in the marts builder's DuckDB file, one row per key.

    Boxes, labels and flags are kept only from the run whose media row won, so an image two
    workers both processed is counted once.
    """
    fs, _root = _fs(lake)
    if "file" not in fs.protocol:
        con.register_filesystem(fs)
    con.execute("create schema if not exists raw")
    for table, (keys, order) in TABLES.items():
        empty = ", ".join(f"cast(null as {t}) as {n}" for n, t in _duck_types(table))
        source = (
            f"read_parquet('{_glob(lake, table)}', union_by_name = true)"
            if _exists(lake, table)
            else f"(select {empty} where false)"
        )
        winners = ""
        if table in ("detections", "classifications", "frame_labels"):  # the winning run's only
            winners = (
                " as d where exists (select 1 from raw.media as m "
                "where m.media_id = d.media_id and m.run_id = d.run_id)"
            )
        dedup = (
            f"select * from {source}{winners} qualify row_number() over "
            f"(partition by {', '.join(keys)} order by {order}, run_id) = 1"
        )
        _drop_table(con, table)
        con.execute(f"create or replace view raw.{table} as {dedup}")


def _duck_types(table: str) -> list[tuple[str, str]]:
    with duckdb.connect() as con:
        _warehouse.ensure_schema(con)
        return [
            (r[0], r[1])
            for r in con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'raw' and table_name = ? order by ordinal_position",
                [table],
            ).fetchall()
        ]


def _drop_table(con: duckdb.DuckDBPyConnection, table: str) -> None:
    row = con.execute(
        "select table_type from information_schema.tables where table_schema = 'raw' "
        "and table_name = ?",
        [table],
    ).fetchone()
    if row and row[0] == "BASE TABLE":
        con.execute(f"drop table raw.{table}")


class LakeStore:
    """The :class:`flows.store.Store` of a lake: a worker's rows go to Parquet files (no lock),
    and its DuckDB file (``warehouse``: the outbox, or the marts builder's file) reads them
    through the views of :func:`attach`."""

    def __init__(self, warehouse: Path, lake: str) -> None:
        self.warehouse = Path(warehouse)
        self.lake = lake
        self._started: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"LakeStore({str(self.warehouse)!r}, {self.lake!r})"

    @property
    def holds_history(self) -> bool:
        return False  # the workers write Parquet; the marts builder sees the whole history

    def exists(self) -> bool:
        return True  # a lake with no files yet reads as empty tables

    @contextmanager
    def writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with _warehouse.connect(self.warehouse) as con:
            _warehouse.ensure_schema(con)
            attach(con, self.lake)
            yield con

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Read-only once the file has the lake's views (they read the files as they are at
        query time); the first time, the views are made (which needs the file writable)."""
        if self._has_views():
            with _warehouse.connect(self.warehouse, read_only=True) as con:
                yield con
        else:
            with self.writing() as con:
                yield con

    def _has_views(self) -> bool:
        if not self.warehouse.exists():
            return False
        with _warehouse.connect(self.warehouse, read_only=True) as con:
            row = con.execute(
                "select count(*) from duckdb_views() where database_name = ? "
                "and schema_name = 'raw' and view_name in ('media', 'detections')",
                [_warehouse.ALIAS],
            ).fetchone()
        return bool(row and row[0] == 2)

    def known_files(self, source_uri: str) -> dict[str, tuple[int, Any]]:
        return known_files(self.lake, source_uri)

    def known_file_table(self, source_uri: str) -> pa.Table:
        return known_file_table(self.lake, source_uri)

    def run_count(self, source_uri: str) -> int:
        return run_count(self.lake, source_uri)

    def known_media(self, media_ids: Sequence[str]) -> set[str]:
        return known_media(self.lake, media_ids)

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
        counts = load_batch(
            self.lake, batch_id, media=media, detections=detections, quarantine=quarantine,
            media_files=files, classifications=classifications or [],
            media_labels=media_labels or [], frame_labels=frame_labels or [],
            crop_embeddings=crop_embeddings or [],
        )  # fmt: skip
        counts["files"] = counts.pop("media_files", 0)
        return counts

    def start_run(
        self, run_id: str, source_uri: str, flow_run_id: str | None, started_at: datetime
    ) -> dict[str, Any]:
        started = {"run_id": run_id, "flow_run_id": flow_run_id, "source_uri": source_uri,
                   "started_at": started_at, "status": "running"}  # fmt: skip
        write_rows(self.lake, "runs", [started], f"{run_id}-started")
        self._started[run_id] = started
        return started

    def finish_run(self, run_id: str, values: dict[str, Any]) -> None:
        """A second ``runs`` row, the started one completed (the views keep the finished)."""
        started = self._started.get(run_id) or self._started_row(run_id)
        write_rows(self.lake, "runs", [{**started, **values}], f"{run_id}-finished")

    def _started_row(self, run_id: str) -> dict[str, Any]:
        """The run's started row from the lake (a store that did not start the run)."""
        if not _exists(self.lake, "runs"):
            return {"run_id": run_id}
        with _connect_lake(self.lake) as con:
            rel = con.execute(
                f"select * from read_parquet('{_glob(self.lake, 'runs')}', union_by_name = true) "
                "where run_id = ? order by started_at nulls last limit 1",
                [run_id],
            )
            names = [d[0] for d in rel.description or []]
            row = rel.fetchone()
        return dict(zip(names, row, strict=True)) if row else {"run_id": run_id}

    def write_quarantine(self, rows: list[dict[str, Any]], batch_id: str) -> int:
        write_rows(self.lake, "quarantine", rows, batch_id)
        return len(rows)

    def has_marts(self) -> bool:
        return _warehouse.has_marts(self.warehouse)

    def prepare_build(self) -> None:
        """Views ``raw.*`` over the lake's files in the warehouse file, for ``dbt build``."""
        with self.writing():
            pass
