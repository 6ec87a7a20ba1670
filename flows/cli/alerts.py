"""``trapflow alerts test | list | deliver``: the alert channels and the outbox."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from flows.cli._app import (
    WarehouseOpt,
    alerts_app,
    console,
    fail,
    fail_from,
)
from flows.settings import load_settings


@alerts_app.command("test")
def alerts_test() -> None:
    """Send a test message to every configured alert URL and say which worked (redacted)."""
    from flows.alerts import engine as _alerts

    settings = load_settings()
    try:
        results = _alerts.send_test(settings)
    except _alerts.AlertConfigError as exc:
        raise fail_from(exc) from None
    if not results:
        raise fail(
            "no alert URLs configured: set TRAPFLOW_ALERT_URLS (comma-separated Apprise URLs) "
            "or TRAPFLOW_ALERT_CHANNELS__<NAME>"
        )
    for r in results:
        mark = "[green]ok[/]" if r.ok else "[red]FAILED[/]"
        console.print(f"{mark} {r.channel}: {r.target}" + (f" ({r.error})" if r.error else ""),
                      markup=True, highlight=False)  # fmt: skip
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@alerts_app.command("list")
def alerts_list(
    warehouse: WarehouseOpt = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
) -> None:
    """The alert outbox: pending, sent and failed alerts with attempts and the last error."""
    from flows.alerts import engine as _alerts

    settings = load_settings(warehouse=warehouse)
    rows = _alerts.list_outbox(settings, limit)
    table = Table("created (UTC)", "status", "kind", "rule", "site", "camera", "local time",
                  "images", "tries", "last error", title=f"alerts ({len(rows)} shown)")  # fmt: skip
    for r in rows:
        table.add_row(
            f"{r['created_at']:%Y-%m-%d %H:%M}", r["status"], r["kind"], r["rule_name"],
            r["site_id"] or "", r["camera_id"] or "", str(r["event_at"] or ""),
            str(r["media_count"]), str(r["attempts"]), (r["last_error"] or "")[:80],
        )  # fmt: skip
    console.print(table)


@alerts_app.command("deliver")
def alerts_deliver(warehouse: WarehouseOpt = None) -> None:
    """Send the pending alerts that are due now (what every run does at its end)."""
    from flows.alerts import engine as _alerts

    settings = load_settings(warehouse=warehouse)
    try:
        result = _alerts.deliver_alerts(settings)
    except _alerts.AlertConfigError as exc:
        raise fail_from(exc) from None
    console.print(
        f"{result.sent} sent, {result.retrying} to retry later, {result.failed} failed for good"
    )
