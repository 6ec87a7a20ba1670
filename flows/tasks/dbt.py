"""Tasks that run dbt."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.settings import Settings
from flows.store import Store
from flows.store.dbt import DbtResult, run_dbt


@task(retries=1, retry_delay_seconds=[10], cache_policy=NO_CACHE)
def build_marts(
    settings: Settings, store: Store, changed: bool = True, in_run: bool = True
) -> DbtResult | None:
    """``dbt build``: staging views, the marts and every test; fails loudly.

    In a run, a poll that found nothing new leaves marts that exist as they are (saves ~4 s a
    poll), and a lake worker leaves them to the marts builder (``in_run=False``: refresh-marts).
    """
    if in_run and not store.holds_history:
        get_run_logger().info("lake mode: marts are built by the refresh-marts deployment")
        return None
    if not changed and store.has_marts():
        get_run_logger().info("nothing new: marts left as they are")
        return None
    return run_dbt(settings, "build", store=store)
