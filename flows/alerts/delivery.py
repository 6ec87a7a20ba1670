"""Delivery: every due pending alert to each of its URLs that has not taken it yet, through
Apprise, with a claim lease, exponential backoff and a redacted last error.

At least once per URL: ``alerts.deliveries`` records each URL that took an alert, so a retry
only goes to the URLs that have not got it; a crash between a URL accepting a message and the
commit that records it resends once (we prefer the rare duplicate to a lost ranger alert).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from flows.alerts.channels import channel_urls, targets_for, with_timeouts
from flows.alerts.outbox import utcnow
from flows.alerts.redaction import redact, redact_url, register_secrets
from flows.settings import Settings
from flows.store import warehouse as _warehouse

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=10)  # a claimed alert is not picked by another deliverer meanwhile
BACKOFF_CAP_S = 1800.0


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _apprise_warnings() -> Iterator[list[str]]:
    """Apprise says why a send failed only in its log: collect its warnings during a send."""
    handler = _Collect()
    logger = logging.getLogger("apprise")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def send(
    url: str, title: str, body: str, attachment: bytes | None, timeout_s: float
) -> tuple[bool, str | None]:
    """One message to one Apprise URL: (accepted, redacted error)."""
    import apprise

    register_secrets([url])
    asset = apprise.AppriseAsset(app_id="trapflow", app_desc="trapflow camera-trap alerts")
    ap = apprise.Apprise(asset=asset)
    with _apprise_warnings() as warnings:
        if not ap.add(with_timeouts(url, timeout_s)):
            return False, (
                f"{redact_url(url)} is not a valid Apprise URL: check it against "
                "https://github.com/caronc/apprise/wiki"
            )
        with tempfile.TemporaryDirectory(prefix="trapflow-alert-") as tmp:
            attach = None
            if attachment:
                path = Path(tmp) / "trapflow-alert.jpg"
                path.write_bytes(attachment)
                attach = apprise.AppriseAttachment(str(path))
            try:
                ok = bool(
                    ap.notify(
                        body=body, title=title, body_format=apprise.NotifyFormat.MARKDOWN,
                        attach=attach,
                    )
                )  # fmt: skip
            except Exception as exc:  # a plugin bug must not stop the other alerts
                return False, redact(f"{type(exc).__name__}: {exc}")
    if ok:
        return True, None
    detail = "; ".join(dict.fromkeys(warnings)) or "the service did not accept the message"
    return False, redact(f"{redact_url(url)}: {detail}")


@dataclass
class DeliveryResult:
    sent: int = 0  # alerts now fully delivered
    retrying: int = 0  # alerts left pending with a later next_attempt_at
    failed: int = 0  # alerts that ran out of attempts
    messages: int = 0  # messages accepted by a URL
    errors: list[str] = field(default_factory=list)  # redacted


def backoff(settings: Settings, attempts: int) -> timedelta:
    return timedelta(seconds=min(settings.alert_backoff_s * 2 ** max(attempts - 1, 0),
                                 BACKOFF_CAP_S))  # fmt: skip


_DUE = """
select alert_id, title, body, thumbnail, channels, attempts
from alerts.outbox o
where status = 'pending' and next_attempt_at <= ?
  and (kind <> 'summary' or not exists (
        select 1 from alerts.outbox a where a.alert_id = o.anchor_id and a.status = 'pending'))
order by created_at, case kind when 'alert' then 0 when 'anomaly' then 1 else 2 end, event_at
limit ?
"""


def deliver_alerts(
    settings: Settings, now: datetime | None = None, limit: int = 200
) -> DeliveryResult:
    """Send every due pending alert to each of its URLs that has not taken it yet.

    An alert claims a lease first (``next_attempt_at`` moves on by ten minutes) so that a
    second deliverer running at the same time leaves it alone.
    """
    result = DeliveryResult()
    if not settings.warehouse_path.exists():
        return result
    urls = channel_urls(settings)
    if not urls:
        return result  # nothing could deliver them: pending alerts wait for a URL
    now = now or utcnow()
    for _pass in range(5):  # a summary becomes due once its burst's first alert is out
        sent_before = result.sent + result.failed
        if not _deliver_pass(settings, urls, now, limit, result):
            break
        if result.sent + result.failed == sent_before:
            break
    for error in result.errors:
        log.warning("alert delivery: %s", error)
    return result


def _deliver_pass(
    settings: Settings,
    urls: dict[str, list[str]],
    now: datetime,
    limit: int,
    result: DeliveryResult,
) -> int:
    """Claim the due alerts, send each to its remaining URLs, record; how many were claimed."""
    with _warehouse.connect(settings.warehouse_path) as con:
        _warehouse.ensure_schema(con)
        con.execute("begin transaction")
        due = con.execute(_DUE, [now, limit]).fetchall()
        if not due:
            con.execute("commit")
            return 0
        con.executemany(
            "update alerts.outbox set next_attempt_at = ? where alert_id = ?",
            [[now + CLAIM_LEASE, row[0]] for row in due],
        )
        con.execute("commit")
        done = {
            (a, k)
            for a, k in con.execute(
                "select alert_id, target_key from alerts.deliveries"
                " where alert_id in (select unnest(?))",
                [[row[0] for row in due]],
            ).fetchall()
        }
    down: set[str] = set()
    for alert_id, title, body, thumb, channels, attempts in due:
        targets = [
            t for t in targets_for(channels.split(","), urls) if (alert_id, t.key) not in done
        ]
        errors: list[str] = []
        if not targets and not any(a == alert_id for a, _k in done):
            errors.append(
                f"no URL for channel(s) {channels}: set TRAPFLOW_ALERT_URLS or "
                "TRAPFLOW_ALERT_CHANNELS__<NAME>"
            )
        if targets and all(t.key in down for t in targets):
            _postpone(settings, alert_id, attempts)  # its URLs failed moments ago: no new try
            result.retrying += 1
            continue
        for target in targets:
            if target.key in down:
                errors.append(f"{target.name}: failed earlier in this delivery")
                continue
            ok, error = send(target.url, title, body, thumb, settings.alert_timeout_s)
            if not ok:
                down.add(target.key)  # one timeout per dead URL and pass, not one per alert
            if ok:
                result.messages += 1
                with _warehouse.connect(settings.warehouse_path) as con:
                    con.execute(
                        "insert or ignore into alerts.deliveries values (?, ?, ?, ?)",
                        [alert_id, target.key, target.name, utcnow()],
                    )
            else:
                errors.append(error or "failed")
        status = _finish(settings, alert_id, attempts + 1, errors, now)
        if status == "sent":
            result.sent += 1
        elif status == "failed":
            result.failed += 1
        else:
            result.retrying += 1
        result.errors.extend(errors)
    return len(due)


def _postpone(settings: Settings, alert_id: str, attempts: int) -> None:
    """Back off without counting an attempt (nothing was sent)."""
    with _warehouse.connect(settings.warehouse_path) as con:
        con.execute(
            "update alerts.outbox set next_attempt_at = ? where alert_id = ?",
            [utcnow() + backoff(settings, max(attempts, 1)), alert_id],
        )


def _finish(
    settings: Settings, alert_id: str, attempts: int, errors: list[str], now: datetime
) -> str:
    if not errors:
        status, next_at = "sent", now
    elif attempts >= settings.alert_max_attempts:
        status, next_at = "failed", now
    else:
        status, next_at = "pending", utcnow() + backoff(settings, attempts)
    with _warehouse.connect(settings.warehouse_path) as con:
        con.execute(
            "update alerts.outbox set status = ?, attempts = ?, last_error = ?, "
            "next_attempt_at = ?, sent_at = case when ? = 'sent' then ? else sent_at end "
            "where alert_id = ?",
            [status, attempts, redact("; ".join(errors))[:2000] or None, next_at, status,
             utcnow(), alert_id],
        )  # fmt: skip
    return status


@dataclass(frozen=True)
class TestResult:
    channel: str
    target: str  # redacted
    ok: bool
    error: str | None


def send_test(settings: Settings) -> list[TestResult]:
    """A test message to every configured URL; which worked (nothing is written anywhere)."""
    urls = channel_urls(settings)
    results = []
    body = (
        f"This is a test of trapflow alerts, sent {utcnow():%Y-%m-%d %H:%M:%S} UTC. "
        f"If you read this, the channel works.  \n[Dashboard]({settings.dashboard_url})"
    )
    for target in targets_for(list(urls), urls):
        ok, error = send(target.url, "trapflow test alert", body, None, settings.alert_timeout_s)
        results.append(TestResult(target.channel, target.name, ok, error))
    return results
