"""Storage: the DuckDB warehouse (or the scale-out lake), its schema, and the dbt runner.

Everything that reads or writes trapflow's tables goes through one :class:`Store`, chosen once
per run by :func:`open_store`: :class:`~flows.store.warehouse.WarehouseStore` (one DuckDB file),
:class:`~flows.store.ducklake.DuckLakeStore` (scale-out: one DuckLake, many writers) or the legacy
:class:`~flows.store.lake.LakeStore` (Parquet files per batch, read through views). Nothing
else asks whether the settings name a lake.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from flows.settings import Settings

Rows = list[dict[str, Any]]


class Store(Protocol):
    """Where a run's rows go and where every reader finds them."""

    @property
    def warehouse(self) -> Path:
        """The DuckDB file: all the data (warehouse), or a lake worker's outbox and marts."""

    @property
    def lake(self) -> str | None:
        """The lake's folder or bucket; None for a warehouse file."""

    @property
    def holds_history(self) -> bool:
        """Whether a run sees every earlier row (warehouse: yes; a lake worker: no, the marts
        builder does), so repeat flags and the marts can be done in the run."""

    def exists(self) -> bool:
        """Whether there is anything stored to read or build on."""

    def known_files(self, source_uri: str) -> dict[str, tuple[int, Any]]:
        """Path -> (size, mtime) of every file already seen under this source."""

    def known_file_table(self, source_uri: str) -> pa.Table:
        """file_path, file_size, file_modified_at of every file seen under this source (Arrow:
        one row per path, the latest)."""

    def run_count(self, source_uri: str) -> int:
        """How many runs have polled this source."""

    def known_media(self, media_ids: Sequence[str]) -> set[str]:
        """The ids among these that are stored already."""

    def load_batch(
        self,
        batch_id: str,
        *,
        media: Rows,
        detections: Rows,
        quarantine: Rows,
        files: Rows,
        classifications: Rows | None = None,
        media_labels: Rows | None = None,
        frame_labels: Rows | None = None,
        crop_embeddings: Rows | None = None,
    ) -> dict[str, int]:
        """Write one batch whole or not at all; returns rows added per table."""

    def start_run(
        self, run_id: str, source_uri: str, flow_run_id: str | None, started_at: datetime
    ) -> dict[str, Any]:
        """Record that a run started (creating the tables if needed); returns the record."""

    def finish_run(self, run_id: str, values: dict[str, Any]) -> None:
        """Complete the run's record with these values."""

    def write_quarantine(self, rows: Rows, batch_id: str) -> int:
        """Quarantine rows for files that were never read; returns how many were written."""

    def reading(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A connection where raw.*, review.*, alerts.* and the dbt-built relations resolve."""

    def writing(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """:meth:`reading`, writable (tables created if missing); one transaction owner."""

    def has_marts(self) -> bool:
        """Whether dbt has built the marts."""

    def prepare_build(self) -> None:
        """Make raw.* readable for ``dbt build`` in the warehouse file."""


def store_for(warehouse: Path, lake: str | None = None, lake_data_path: str | None = None) -> Store:
    """The store of a warehouse file, or of a lake (with ``warehouse`` as its DuckDB file):
    ``ducklake:...`` a DuckLake (``lake_data_path``: its Parquet files), else the legacy
    Parquet lake in that folder or bucket."""
    if lake and lake.startswith("ducklake:"):
        from flows.store.ducklake import DuckLakeStore

        return DuckLakeStore(Path(warehouse), lake, lake_data_path)
    if lake:
        from flows.store.lake import LakeStore

        return LakeStore(Path(warehouse), lake)
    from flows.store.warehouse import WarehouseStore

    return WarehouseStore(Path(warehouse))


def open_store(settings: Settings) -> Store:
    """The run's store, chosen once from the settings (``lake`` set: the lake)."""
    return store_for(settings.warehouse_path, settings.lake, settings.lake_data_path)


__all__ = ["Rows", "Store", "open_store", "store_for"]
