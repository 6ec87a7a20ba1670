"""The ``refresh-marts`` flow: rebuild and test every dbt model (the nightly job)."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.settings import load_settings
from flows.store import open_store
from flows.tasks.dbt import build_marts


@flow(name="refresh-marts", log_prints=False)
def refresh_marts(warehouse: str | None = None) -> float:
    """``dbt build`` on the warehouse: staging, marts and their tests. Returns seconds.

    With a lake configured this is its marts builder: raw.* are views over the workers' files.
    """
    settings = load_settings(warehouse=warehouse)
    result = build_marts(settings, open_store(settings), changed=True, in_run=False)
    seconds = result.seconds if result else 0.0
    get_run_logger().info(
        "marts rebuilt and tested in %.1f s (%s)", seconds, settings.warehouse_path
    )
    return seconds
