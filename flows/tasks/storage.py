"""Tasks that talk to the warehouse."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.pipeline.discovery import Listing, list_source
from flows.settings import Settings
from flows.store import lake as _lake
from flows.store import warehouse as _warehouse
from flows.store.deployments import DeploymentsFileError, load_deployments_csv
from flows.tasks._retry import retry_on_io


@task(
    retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=retry_on_io, cache_policy=NO_CACHE
)
def open_run(
    settings: Settings, run_id: str, source_uri: str, flow_run_id: str | None, started_at: datetime
) -> dict[str, Any]:
    """Create the raw tables if needed and record that a run started; returns that record."""
    started = {"run_id": run_id, "flow_run_id": flow_run_id, "source_uri": source_uri,
               "started_at": started_at, "status": "running"}  # fmt: skip
    if settings.lake:
        _lake.write_rows(settings.lake, "runs", [started], f"{run_id}-started")
        return started
    with _warehouse.connect(settings.warehouse_path) as con:
        _warehouse.ensure_schema(con)
        _warehouse.start_run(con, run_id, source_uri, flow_run_id, started_at)
    return started


@task(
    retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=retry_on_io, cache_policy=NO_CACHE
)
def list_new_media(settings: Settings) -> tuple[Listing, list[Any]]:
    """Every media file under the source that the warehouse has not seen in this form."""
    listing = list_source(settings.source, settings.extensions)
    if settings.lake:
        known = _lake.known_files(settings.lake, listing.source_uri)
    else:
        with _warehouse.connect(settings.warehouse_path) as con:
            _warehouse.ensure_schema(con)
            known = _warehouse.known_files(con, listing.source_uri)
    new = [f for f in listing.media if known.get(f.path) != (f.size, f.modified_at)]
    return listing, new


@task(
    retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=retry_on_io, cache_policy=NO_CACHE
)
def close_run(settings: Settings, started: dict[str, Any], values: dict[str, Any]) -> None:
    if settings.lake:
        run_id = started["run_id"]
        _lake.write_rows(settings.lake, "runs", [{**started, **values}], f"{run_id}-finished")
        return
    with _warehouse.connect(settings.warehouse_path) as con:
        _warehouse.finish_run(con, started["run_id"], values)


@task(
    retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=retry_on_io, cache_policy=NO_CACHE
)
def load_deployments(settings: Settings) -> bool:
    """Load deployments.csv (if configured) into raw.deployments; True when it changed rows.

    A bad file or bad rows are logged with what to fix; they never stop the run.
    """
    if settings.deployments_csv is None:
        return False
    logger = get_run_logger()
    try:
        with _warehouse.connect(settings.warehouse_path) as con:
            _warehouse.ensure_schema(con)
            loaded = load_deployments_csv(con, settings.deployments_csv)
    except DeploymentsFileError as exc:
        logger.error("%s Deployments are inferred from the images meanwhile.", exc)
        return False
    for message in loaded.errors:
        logger.warning(message)
    logger.info("deployments: %d of %d rows from %s", loaded.loaded, loaded.rows, loaded.path)
    return loaded.changed


@task(
    retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=retry_on_io, cache_policy=NO_CACHE
)
def record_outside_links(settings: Settings, run_id: str, listing: Listing) -> int:
    """Links that resolve outside the source root: never read, recorded in the quarantine."""
    if not listing.outside_root:
        return 0
    rows = [
        _warehouse.quarantine_row(
            listing.source_uri, path, run_id, "outside_source",
            "the file is a link to a place outside the source folder; it was not read. Copy the "
            "file into the source folder if it belongs to this survey.",
        )
        for path in listing.outside_root
    ]  # fmt: skip
    if settings.lake:
        _lake.write_rows(settings.lake, "quarantine", rows, f"{run_id}-outside")
    else:
        with _warehouse.connect(settings.warehouse_path) as con:
            _warehouse.load_batch(con, media=[], detections=[], quarantine=rows, files=[])
    get_run_logger().warning(
        "%d links point outside %s and were not read", len(rows), listing.source_uri
    )
    return len(rows)
