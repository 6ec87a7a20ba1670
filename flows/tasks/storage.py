"""Tasks that talk to the run's store (a warehouse file or the lake: ``flows.store``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.pipeline.discovery import (
    Listing,
    SourceFile,
    canonical_uri,
    new_or_changed,
    poll_source,
    stat_file,
    wants_full_listing,
)
from flows.pipeline.intake import outside_link_rows
from flows.settings import Settings
from flows.store import Store
from flows.store.deployments import DeploymentsFileError, load_deployments_csv
from flows.store.time_shifts import load_time_shifts
from flows.tasks._retry import STORE_RETRY_DELAYS_S, retry_on_io

IO_RETRIES: dict[str, Any] = {
    "retries": len(STORE_RETRY_DELAYS_S), "retry_delay_seconds": list(STORE_RETRY_DELAYS_S),
    "retry_condition_fn": retry_on_io,
    "cache_policy": NO_CACHE,
}  # fmt: skip


@task(**IO_RETRIES)
def open_run(
    store: Store, run_id: str, source_uri: str, flow_run_id: str | None, started_at: datetime
) -> dict[str, Any]:
    """Create the raw tables if needed and record that a run started; returns that record."""
    return store.start_run(run_id, source_uri, flow_run_id, started_at)


@task(**IO_RETRIES)
def list_new_media(settings: Settings, store: Store) -> tuple[Listing, list[Any]]:
    """Every media file under the source that the store has not seen in this form."""
    source_uri = canonical_uri(settings.source)
    known = store.known_file_table(source_uri)
    return poll_source(
        settings.source, settings.extensions, known, layout=settings.layout,
        full=wants_full_listing(settings.full_listing, settings.full_listing_every_n,
                                store.run_count(source_uri)),
    )  # fmt: skip


@task(**IO_RETRIES)
def stat_named_media(
    settings: Settings, store: Store, paths: list[str]
) -> tuple[Listing, list[SourceFile], dict[str, str]]:
    """The named files (``trapflow listen``: the notified keys), found without listing the
    source; of those, what the store has not seen in this form; and path -> why, for each
    named file that could not be found."""
    found: list[SourceFile] = []
    missing: dict[str, str] = {}
    for path in dict.fromkeys(paths):
        try:
            found.append(stat_file(settings.source, path))
        except OSError as exc:
            missing[path] = f"{type(exc).__name__}: {exc}"
    listing = Listing(canonical_uri(settings.source), tuple(found), 0, ())
    return listing, new_or_changed(found, store.known_file_table(listing.source_uri)), missing


@task(**IO_RETRIES)
def close_run(store: Store, run_id: str, values: dict[str, Any]) -> None:
    store.finish_run(run_id, values)


@task(**IO_RETRIES)
def load_deployments(settings: Settings, store: Store) -> bool:
    """Load the station table and time-shift table (when configured); True when rows changed.

    A bad table is logged as one line with what to fix; nothing of it is loaded, the previous
    load stays in force, and the run goes on.
    """
    logger = get_run_logger()
    changed = False
    for path, load in (
        (settings.deployments_csv, lambda con, p: load_deployments_csv(
            con, p, settings.station_table_options())),
        (settings.time_shift_table, load_time_shifts),
    ):  # fmt: skip
        if path is None:
            continue
        try:
            with store.writing() as con:
                loaded = load(con, path)
        except DeploymentsFileError as exc:
            logger.error("%s The previous load stays in force.", exc)
            continue
        logger.info("%s: %d rows loaded%s", loaded.path, loaded.loaded,
                    " (changed)" if loaded.changed else "")  # fmt: skip
        changed = changed or loaded.changed
    return changed


@task(**IO_RETRIES)
def record_outside_links(store: Store, run_id: str, listing: Listing) -> int:
    """Links that resolve outside the source root: never read, recorded in the quarantine."""
    if not listing.outside_root:
        return 0
    rows = outside_link_rows(listing, run_id)
    store.write_quarantine(rows, f"{run_id}-outside")
    get_run_logger().warning(
        "%d links point outside %s and were not read", len(rows), listing.source_uri
    )
    return len(rows)
