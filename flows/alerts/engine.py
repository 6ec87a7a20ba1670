"""Alerts: rules over what a run loaded -> an outbox in the warehouse -> Apprise, per URL.

Plain functions, no Prefect (``flows/tasks/alerts.py`` wraps them). See ``docs/alerts.md``.
This module is the public face of the package; the work is done in:

- :mod:`flows.alerts.live`: the dbt views the rules read (``marts.live_detections``,
  ``marts.live_sites``), made on the run's connection from SQL dbt compiled once.
- :mod:`flows.alerts.rules`: ``human`` / ``label`` / ``population`` rules, sites, hours and
  burst control, over what dbt says is recorded (never SQL that re-derives it from raw.*).
- :mod:`flows.alerts.messages`, :mod:`flows.alerts.thumbnails`: texts made inert, places
  exact for rangers and generalised for others at sensitive sites, thumbnails with people
  blurred for everyone but rangers.
- :mod:`flows.alerts.outbox`: deterministic alert ids, one row per trust level.
- :mod:`flows.alerts.delivery`: at least once per URL, backoff, claim leases.
- :mod:`flows.alerts.channels`, :mod:`flows.alerts.redaction`: channels, trust levels, and
  secrets kept out of every log record.
"""

from __future__ import annotations

from flows.alerts.channels import (
    DEFAULT_CHANNEL,
    PUBLIC,
    RANGER,
    AlertConfigError,
    Target,
    channel_trust,
    channel_urls,
    rule_channels,
    targets_for,
    trust_groups,
    with_timeouts,
)
from flows.alerts.delivery import (
    BACKOFF_CAP_S,
    CLAIM_LEASE,
    DeliveryResult,
    TestResult,
    backoff,
    deliver_alerts,
    send,
    send_test,
)
from flows.alerts.live import ensure_live_views
from flows.alerts.messages import (
    TEXT_LIMIT,
    alert_message,
    anomaly_message,
    dashboard_link,
    location_text,
    plain,
    sanitize,
    summary_message,
)
from flows.alerts.outbox import (
    Outgoing,
    QueueResult,
    list_outbox,
    queue_alerts,
    utcnow,
    write_outbox,
)
from flows.alerts.redaction import install_log_redaction, redact, redact_url, register_secrets
from flows.alerts.rules import (
    Hit,
    Seen,
    find_anomalies,
    find_hits,
    find_people,
    find_places,
    in_windows,
    parse_window,
    plan_bursts,
)
from flows.alerts.thumbnails import THUMBNAIL_PX, hit_thumbnail, thumbnail

_hit_thumbnail = hit_thumbnail  # the name tests/flows/pipeline/test_video.py knows

__all__ = [
    "BACKOFF_CAP_S",
    "CLAIM_LEASE",
    "DEFAULT_CHANNEL",
    "PUBLIC",
    "RANGER",
    "TEXT_LIMIT",
    "THUMBNAIL_PX",
    "AlertConfigError",
    "DeliveryResult",
    "Hit",
    "Outgoing",
    "QueueResult",
    "Seen",
    "Target",
    "TestResult",
    "alert_message",
    "anomaly_message",
    "backoff",
    "channel_trust",
    "channel_urls",
    "dashboard_link",
    "deliver_alerts",
    "ensure_live_views",
    "find_anomalies",
    "find_hits",
    "find_people",
    "find_places",
    "hit_thumbnail",
    "in_windows",
    "install_log_redaction",
    "list_outbox",
    "location_text",
    "parse_window",
    "plain",
    "plan_bursts",
    "queue_alerts",
    "redact",
    "redact_url",
    "register_secrets",
    "rule_channels",
    "sanitize",
    "send",
    "send_test",
    "summary_message",
    "targets_for",
    "thumbnail",
    "trust_groups",
    "utcnow",
    "with_timeouts",
    "write_outbox",
]
