"""The outbox (``alerts.outbox``): what the rules found this run, written once.

Deterministic ids (``flows.store.ids``) so queueing twice adds nothing; one row per trust
level (the ranger row keeps the plain ``alert_id``); ``pending`` until delivery
(``flows.alerts.delivery``) marks it ``sent`` or ``failed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

import duckdb

from flows.access.privacy import sensitive_site_ids
from flows.alerts.channels import (
    RANGER,
    channel_urls,
    row_id,
    rule_channels,
    trust_groups,
)
from flows.alerts.digest import (
    DigestItem,
    digest_channels,
    hit_items,
    queue_digests,
    silence_items,
    without_digests,
    write_items,
)
from flows.alerts.messages import alert_message, anomaly_message, silent_message, summary_message
from flows.alerts.rules import (
    Hit,
    Silence,
    find_anomalies,
    find_hits,
    find_people,
    find_places,
    find_silent,
    parse_window,
    plan_bursts,
    table_exists,
)
from flows.alerts.thumbnails import hit_thumbnail
from flows.settings import AlertRule, Settings
from flows.store import Store, ids, open_store
from flows.store import warehouse as _warehouse


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Outgoing:
    """One outbox row to be written."""

    alert_id: str
    rule: AlertRule
    kind: str  # alert / summary / anomaly
    title: str
    body: str
    site_id: str | None = None
    camera_id: str | None = None
    media_id: str | None = None
    anchor_id: str | None = None
    event_at: datetime | None = None
    event_until: datetime | None = None
    media_count: int = 1
    thumbnail: bytes | None = None
    channels: list[str] | None = None  # None: every channel of the rule


def _known_anchors(
    con: duckdb.DuckDBPyConnection, hits: Sequence[Hit]
) -> dict[tuple[str, str], list[tuple[datetime, str, str | None]]]:
    anchors: dict[tuple[str, str], list[tuple[datetime, str, str | None]]] = {}
    keys = {(h.rule.name, h.site_id) for h in hits}
    for rule_name, site_id in keys:
        rows = con.execute(
            "select event_at, alert_id, media_id from alerts.outbox "
            "where kind = 'alert' and rule_name = ? and site_id = ? and event_at is not null",
            [rule_name, site_id],
        ).fetchall()
        # one anchor per image: a rule with ranger and other channels has a row for each
        # trust level; the anchor is named by its plain id (the ranger row's, row_id)
        by_media = {r[2]: r[0] for r in rows}
        anchors[(rule_name, site_id)] = [
            (at, ids.alert_id(rule_name, site_id, media_id), media_id)
            for media_id, at in by_media.items()
        ]
    return anchors


@dataclass
class QueueResult:
    queued: int = 0
    alerts: int = 0
    summaries: int = 0
    anomalies: int = 0
    silent: int = 0  # silent-camera alerts (new episodes)
    digest_items: int = 0  # kept for a digest channel's day
    digests: int = 0  # daily digests queued
    skipped_rules: list[str] = field(default_factory=list)


def queue_alerts(
    settings: Settings, run_id: str, store: Store | None = None, now: datetime | None = None
) -> QueueResult:
    """Evaluate every rule over what ``run_id`` loaded and write new alerts to the outbox
    (through the run's ``store``, else the settings'; a lake worker's outbox is its file).

    Rules whose channels have no URL are skipped (nothing would deliver them). Re-running
    with the same run adds nothing. Silent-camera rules look at every camera as of ``now``
    (default: the clock); a digest channel's alerts are kept for its daily digest, queued
    once the (UTC) day is over (``flows.alerts.digest``).
    """
    result = QueueResult()
    now = now or utcnow()
    urls = channel_urls(settings)
    digest = digest_channels(settings, urls)
    rules = []
    groups: dict[str, list[tuple[str, list[str]]]] = {}
    digests_of: dict[str, list[str]] = {}
    for rule in settings.alert_rules:
        every = trust_groups(settings, rule, urls)
        groups[rule.name] = without_digests(every, digest)
        digests_of[rule.name] = sorted({c for _t, cs in every for c in cs} & digest)
        if every:
            for window in rule.hours:
                parse_window(window)
            rules.append(rule)
        else:
            result.skipped_rules.append(rule.name)
    if not rules:
        return result
    cooldown = {
        r.name: timedelta(minutes=r.cooldown_min if r.cooldown_min is not None
                          else settings.alert_cooldown_min)
        for r in rules
    }  # fmt: skip
    with (store or open_store(settings)).writing() as con:
        hits = find_hits(con, run_id, rules, settings)  # makes the live views if need be
        anchors = _known_anchors(con, hits)
        anomalies = find_anomalies(con, run_id, rules, settings)
        media_ids = sorted({h.media_id for h in hits})
        places = find_places(con, media_ids)
        people = find_people(con, media_ids)
        risky = sensitive_site_ids(con) if hits else set()
        silences = _new_silences(con, find_silent(con, rules, now, settings), cooldown, now)
    for hit in hits:
        hit.place = places.get(hit.media_id)
        hit.sensitive = hit.sensitive or hit.site_id in risky  # the image's labels, or its site
    new, followers = plan_bursts(hits, anchors, cooldown)
    items: list[DigestItem] = []
    for hit in hits:  # every image of a burst counts in a digest
        items.extend(hit_items(hit, digests_of[hit.rule.name]))
    rows: list[Outgoing] = []
    for silence in silences:
        items.extend(silence_items(silence, digests_of[silence.rule.name]))
        channels = [c for _t, cs in groups[silence.rule.name] for c in cs]
        if channels:
            title, body = silent_message(silence)
            rows.append(
                Outgoing(silence.alert_id, silence.rule, "silent", title, body, silence.site_id,
                         silence.camera_id, silence.last_media_id, None,
                         silence.last_captured_at, silence.silent_after, 0, None, channels)
            )  # fmt: skip
    for hit in new:  # one row per trust level: rangers' exact and unblurred, others' not
        if not groups[hit.rule.name]:
            continue  # only digest channels: the digest items hold it
        base = ids.alert_id(hit.rule.name, hit.site_id, hit.media_id)
        for trust, channels in groups[hit.rule.name]:
            title, body = alert_message(settings, hit, trust)
            thumb = hit_thumbnail(
                settings, hit, None if trust == RANGER else people.get(hit.media_id, [])
            )
            rows.append(
                Outgoing(
                    row_id(base, trust, groups[hit.rule.name]), hit.rule, "alert", title,
                    body, hit.site_id, hit.camera_id, hit.media_id, None, hit.captured_at,
                    hit.captured_at, 1, thumb, channels,
                )
            )  # fmt: skip
    for anchor_id, (anchor, group) in followers.items():
        group.sort(key=lambda h: (h.captured_at, h.media_id))
        first = group[0]
        if not groups[first.rule.name]:
            continue
        base = ids.summary_id(first.rule.name, anchor_id, run_id)
        trusts = groups[first.rule.name]
        for trust, channels in trusts:
            title, body = summary_message(settings, anchor, group, trust)
            rows.append(
                Outgoing(
                    row_id(base, trust, trusts), first.rule, "summary", title, body,
                    first.site_id, first.camera_id, group[-1].media_id,
                    row_id(anchor_id, trust, trusts), first.captured_at,
                    group[-1].captured_at, len(group), None, channels,
                )
            )  # fmt: skip
    for rule, day, label, site_id, z in anomalies:
        title, body = anomaly_message(rule, day, label, site_id, z)
        rows.append(
            Outgoing(ids.anomaly_id(rule.name, site_id, label, day), rule, "anomaly", title,
                     body, site_id, event_at=datetime.combine(day, time()), media_count=0)
        )  # fmt: skip
    with _warehouse.connect(settings.warehouse_path) as con:
        result.queued = write_outbox(con, rows, run_id, now)
        result.digest_items = write_items(con, items, now)
    if digest:
        with (store or open_store(settings)).writing() as con:  # new species: the live views
            result.digests = queue_digests(con, digest, now)
        result.queued += result.digests
    result.silent = sum(r.kind == "silent" for r in rows)
    result.alerts = sum(r.kind == "alert" for r in rows)
    result.summaries = sum(r.kind == "summary" for r in rows)
    result.anomalies = sum(r.kind == "anomaly" for r in rows)
    return result


def _new_silences(
    con: duckdb.DuckDBPyConnection,
    silences: list[Silence],
    cooldown: dict[str, timedelta],
    now: datetime,
) -> list[Silence]:
    """The silence episodes not alerted yet, and not within the rule's cooldown of the
    camera's last silent alert (a camera that blinks once between two silences)."""
    if not silences:
        return []
    rows = con.execute(
        "select alert_id, rule_name, site_id, camera_id, created_at from alerts.outbox "
        "where kind = 'silent'"
    ).fetchall()
    done = {r[0] for r in rows}
    last: dict[tuple[str, str, str], datetime] = {}
    for _id, rule, site, camera, at in rows:
        last[(rule, site, camera)] = max(at, last.get((rule, site, camera), at))
    fresh = []
    for s in silences:
        before = last.get((s.rule.name, s.site_id, s.camera_id))
        if s.alert_id in done or (before is not None and now - before < cooldown[s.rule.name]):
            continue
        fresh.append(s)
    return fresh


def write_outbox(
    con: duckdb.DuckDBPyConnection,
    rows: Sequence[Outgoing],
    run_id: str | None,
    now: datetime | None = None,
) -> int:
    """Insert new alerts (``insert or ignore``: an alert_id already there is left alone)."""
    if not rows:
        return 0
    now = now or utcnow()
    before = _count(con)
    con.execute("begin transaction")
    try:
        for r in rows:
            con.execute(
                "insert or ignore into alerts.outbox (alert_id, rule_name, rule_kind, kind, "
                "site_id, camera_id, media_id, anchor_id, event_at, event_until, media_count, "
                "title, body, thumbnail, channels, status, attempts, next_attempt_at, run_id, "
                "created_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, "
                "?, ?, ?)",
                [r.alert_id, r.rule.name, r.rule.kind, r.kind, r.site_id, r.camera_id,
                 r.media_id, r.anchor_id, r.event_at, r.event_until, r.media_count, r.title,
                 r.body, r.thumbnail,
                 ",".join(r.channels if r.channels is not None else rule_channels(r.rule)), now,
                 run_id, now],
            )  # fmt: skip
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return _count(con) - before


def _count(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("select count(*) from alerts.outbox").fetchone()
    return int(row[0]) if row else 0


def list_outbox(settings: Settings, limit: int = 50) -> list[dict[str, Any]]:
    """The latest outbox rows (newest first), without bodies or thumbnails."""
    if not settings.warehouse_path.exists():
        return []
    with _warehouse.connect(settings.warehouse_path, read_only=True) as con:
        if not table_exists(con, "alerts", "outbox"):
            return []
        cur = con.execute(
            "select created_at, status, kind, rule_name, site_id, camera_id, event_at, "
            "media_count, attempts, last_error, next_attempt_at, title, alert_id "
            "from alerts.outbox order by created_at desc, event_at desc limit ?",
            [limit],
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
