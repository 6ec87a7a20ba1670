"""Tasks that run dbt."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from flows._dbt import DbtResult, run_dbt
from flows.settings import Settings


@task(retries=1, retry_delay_seconds=[10], cache_policy=NO_CACHE)
def build_marts(settings: Settings) -> DbtResult:
    """``dbt build``: staging views, the marts and every test; fails loudly."""
    return run_dbt(settings, "build")
