"""Daily digests: a channel with ``alert_channel_options.NAME.digest = true`` gets one message
a day instead of one per photo.

While a day goes by, every alert a digest channel would have had (each image of a burst, each
silent camera) is kept in ``alerts.digest_items`` (ids from ``flows.store.ids``: queueing
twice adds nothing). At the first run after the UTC day is over, the day's items become one
``digest`` row of ``alerts.outbox`` per channel (``ids.digest_id``: made once), which the
usual delivery sends through Apprise with its retries and redaction. Counts: photos per
species, species that no earlier photo in the warehouse shows (``marts.live_detections``),
photos of people per site, silent cameras.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from flows.alerts.messages import digest_message
from flows.alerts.rules import Hit, Silence
from flows.settings import Settings
from flows.store import ids

if TYPE_CHECKING:
    import duckdb

DIGEST = "digest"  # the outbox rows' kind, rule_name and rule_kind


def digest_channels(settings: Settings, urls: dict[str, list[str]]) -> set[str]:
    """The channels with a URL that asked for a daily digest."""
    return {
        name for name, options in settings.alert_channel_options.items()
        if options.digest and urls.get(name)
    }  # fmt: skip


def without_digests(
    groups: Sequence[tuple[str, list[str]]], digest: set[str]
) -> list[tuple[str, list[str]]]:
    """A rule's trust groups (``channels.trust_groups``) less the digest channels."""
    kept = [(trust, [c for c in channels if c not in digest]) for trust, channels in groups]
    return [(trust, channels) for trust, channels in kept if channels]


@dataclass(frozen=True)
class DigestItem:
    channel: str
    source_id: str  # the alert id the channel would have had
    item_kind: str  # photo / silent
    rule_name: str
    site_id: str | None
    camera_id: str | None
    media_id: str | None
    label: str | None
    event_at: datetime | None


def hit_items(hit: Hit, channels: Sequence[str]) -> list[DigestItem]:
    label = "person" if hit.rule.kind == "human" else max(
        hit.seen, key=lambda s: s.confidence).label  # fmt: skip
    source = ids.alert_id(hit.rule.name, hit.site_id, hit.media_id)
    return [
        DigestItem(c, source, "photo", hit.rule.name, hit.site_id, hit.camera_id, hit.media_id,
                   label, hit.captured_at)
        for c in channels
    ]  # fmt: skip


def silence_items(silence: Silence, channels: Sequence[str]) -> list[DigestItem]:
    return [
        DigestItem(c, silence.alert_id, "silent", silence.rule.name, silence.site_id,
                   silence.camera_id, silence.last_media_id, None, silence.last_captured_at)
        for c in channels
    ]  # fmt: skip


def write_items(con: duckdb.DuckDBPyConnection, items: Sequence[DigestItem], now: datetime) -> int:
    """Keep the items for the digest of ``now``'s UTC day; an item already kept stays as is."""
    if not items:
        return 0
    before = _count(con, "alerts.digest_items")
    con.executemany(
        "insert or ignore into alerts.digest_items values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [[ids.digest_item_id(i.channel, i.source_id), i.channel, now.date(), i.item_kind,
          i.rule_name, i.site_id, i.camera_id, i.media_id, i.label, i.event_at, now]
         for i in items],
    )  # fmt: skip
    return _count(con, "alerts.digest_items") - before


def queue_digests(con: duckdb.DuckDBPyConnection, channels: set[str], now: datetime) -> int:
    """One outbox row per digest channel and finished UTC day that has items and no digest
    yet; how many were queued. ``con`` has the live views (new species are read there)."""
    if not channels:
        return 0
    done = {r[0] for r in con.execute(
        "select alert_id from alerts.outbox where kind = ?", [DIGEST]).fetchall()}  # fmt: skip
    days = con.execute(
        "select distinct channel, day from alerts.digest_items "
        "where day < ? and channel in (select unnest(?)) order by day, channel",
        [now.date(), sorted(channels)],
    ).fetchall()
    queued = 0
    for channel, day in days:
        alert_id = ids.digest_id(channel, day)
        if alert_id in done:
            continue
        title, body, photos = _digest(con, channel, day)
        con.execute(
            "insert or ignore into alerts.outbox (alert_id, rule_name, rule_kind, kind, "
            "media_count, title, body, channels, status, attempts, next_attempt_at, "
            "created_at, event_at) values (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
            [alert_id, DIGEST, DIGEST, DIGEST, photos, title, body, channel, now, now,
             datetime.combine(day, datetime.min.time())],
        )  # fmt: skip
        queued += 1
    return queued


def _digest(con: duckdb.DuckDBPyConnection, channel: str, day: object) -> tuple[str, str, int]:
    rows = con.execute(
        "select item_kind, label, site_id, camera_id, media_id, event_at "
        "from alerts.digest_items where channel = ? and day = ?",
        [channel, day],
    ).fetchall()
    per_label: dict[str, set[str]] = {}
    people: dict[str, set[str]] = {}
    first_seen: dict[str, datetime] = {}
    silent: dict[tuple[str, str], datetime | None] = {}
    for kind, label, site, camera, media_id, event_at in rows:
        if kind == "silent":
            silent[(str(site), str(camera))] = event_at
        elif label == "person":
            people.setdefault(str(site), set()).add(str(media_id))
        elif label:
            per_label.setdefault(label, set()).add(str(media_id))
            if event_at is not None and (label not in first_seen or event_at < first_seen[label]):
                first_seen[label] = event_at
    new = [
        label for label in sorted(per_label) if not _seen_before(con, label, first_seen.get(label))
    ]
    species = {label: len(media) for label, media in per_label.items()}
    by_site = {site: len(media) for site, media in people.items()}
    title, body = digest_message(
        channel, day, species, new, by_site,
        [(site, camera, last) for (site, camera), last in sorted(silent.items())],
    )  # fmt: skip
    return title, body, sum(species.values()) + sum(by_site.values())


def _seen_before(con: duckdb.DuckDBPyConnection, label: str, before: datetime | None) -> bool:
    """Whether a recorded box of ``label`` is in a photo taken before ``before``."""
    if before is None:
        return True
    row = con.execute(
        "select count(*) from marts.live_detections d join marts.live_media m using (media_id) "
        "where d.is_recorded and lower(d.label) = ? and m.captured_at < ?",
        [label, before],
    ).fetchone()
    return bool(row and row[0])


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = con.execute(f"select count(*) from {table}").fetchone()
    return int(row[0]) if row else 0
