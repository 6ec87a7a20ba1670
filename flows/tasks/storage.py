"""Tasks that talk to the warehouse."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from flows import _warehouse
from flows._discovery import Listing, list_source
from flows.settings import Settings
from flows.tasks._retry import retry_on_io


@task(
    retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=retry_on_io, cache_policy=NO_CACHE
)
def open_run(
    settings: Settings, run_id: str, source_uri: str, flow_run_id: str | None, started_at: datetime
) -> None:
    """Create the raw tables if needed and record that a run started."""
    with _warehouse.connect(settings.warehouse_path) as con:
        _warehouse.ensure_schema(con)
        _warehouse.start_run(con, run_id, source_uri, flow_run_id, started_at)


@task(
    retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=retry_on_io, cache_policy=NO_CACHE
)
def list_new_media(settings: Settings) -> tuple[Listing, list[Any]]:
    """Every media file under the source that the warehouse has not seen in this form."""
    listing = list_source(settings.source, settings.extensions)
    with _warehouse.connect(settings.warehouse_path) as con:
        _warehouse.ensure_schema(con)
        known = _warehouse.known_files(con, listing.source_uri)
    new = [f for f in listing.media if known.get(f.path) != (f.size, f.modified_at)]
    return listing, new


@task(
    retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=retry_on_io, cache_policy=NO_CACHE
)
def close_run(settings: Settings, run_id: str, values: dict[str, Any]) -> None:
    with _warehouse.connect(settings.warehouse_path) as con:
        _warehouse.finish_run(con, run_id, values)
