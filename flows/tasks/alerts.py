"""Tasks that queue and deliver alerts (rules, outbox and Apprise: ``flows.alerts``)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.alerts import engine as _alerts
from flows.settings import Settings
from flows.store import Store
from flows.tasks._retry import retry_on_io


@task(retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_on_io, cache_policy=NO_CACHE)
def queue_alerts(settings: Settings, store: Store, run_id: str) -> _alerts.QueueResult:
    """Evaluate the alert rules over what this run loaded; new alerts go to the outbox.

    A scale-out worker (a lake store) reads its run's rows from the lake and keeps its outbox
    in its own DuckDB file (``warehouse``), which it opens only when alerts are configured.
    """
    try:
        result = _alerts.queue_alerts(settings, run_id, store=store)
    except _alerts.AlertConfigError as exc:  # a bad rule must not stop the run
        get_run_logger().error("alerts not queued: %s", exc)
        return _alerts.QueueResult()
    if result.queued or result.alerts or result.summaries or result.anomalies:
        get_run_logger().info(
            "alerts: %d queued (%d alerts, %d summaries, %d anomalies)",
            result.queued, result.alerts, result.summaries, result.anomalies,
        )  # fmt: skip
    return result


@task(cache_policy=NO_CACHE)
def deliver_alerts(settings: Settings) -> _alerts.DeliveryResult:
    """Send due alerts (this run's and earlier ones still pending); failures wait for backoff."""
    try:
        result = _alerts.deliver_alerts(settings)
    except _alerts.AlertConfigError as exc:
        get_run_logger().error("alerts not delivered: %s", exc)
        return _alerts.DeliveryResult()
    if result.messages or result.errors:
        get_run_logger().info(
            "alerts: %d sent, %d retrying later, %d failed for good (%d messages)",
            result.sent, result.retrying, result.failed, result.messages,
        )  # fmt: skip
    return result
