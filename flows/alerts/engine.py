"""Alerts: rules over what a run loaded -> an outbox in the warehouse -> Apprise, per URL.

Plain functions, no Prefect (``flows/tasks/alerts.py`` wraps them). See ``docs/alerts.md``.

- **Rules** (``settings.alert_rules``): ``human`` (any person box from any model at or above
  ``min_confidence``), ``label`` (labels of interest, each with its own minimum confidence, from
  the detectors' labels and the species classifications) and ``population`` (rows of
  ``marts.fct_population_variance`` with ``|z_score| >= z_threshold`` on a day and site this run
  touched). Optional site list and camera-local time-of-day windows.
- **Burst control**: per rule and site, the first image opens a cooldown window; the other
  images inside it go into one follow-up summary per run instead of one message each.
- **Outbox** (``alerts.outbox``): deterministic ``alert_id`` so queueing twice adds nothing;
  ``pending`` -> ``sent`` / ``failed`` with attempts, a redacted last error and exponential
  backoff. ``alerts.deliveries`` records each URL that took an alert, so a retry only goes to
  the URLs that have not got it yet.
- **Delivery guarantee**: at least once per URL, with the window for a duplicate cut to the
  milliseconds between a URL accepting a message and the commit that records it (a crash in
  exactly that window resends once). At most once would risk losing a ranger alert; we prefer
  the rare duplicate.
- **Trust**: the channels in ``settings.ranger_channels`` get exact coordinates and the
  unblurred thumbnail; every other channel gets people blurred and, for an image of a
  sensitive species or at a site that ever recorded one, coordinates generalised to the
  ``sensitive_grid_km`` grid. A rule whose channels mix both gets one outbox row per trust
  level (the ranger row keeps the plain ``alert_id``).
- **Secrets**: URLs come from the settings (environment, or a Prefect Secret block with
  ``prefect-secret:NAME``) and are never stored or logged: a log-record factory redacts every
  configured URL, its token-like parts and anything shaped like credentials, for every logger
  (Apprise's and Prefect's included).
"""

from __future__ import annotations

import hashlib
import html
import io
import logging
import re
import tempfile
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import duckdb

from flows.access.privacy import blur_boxes, generalise, is_sensitive, sensitive_sites
from flows.pipeline.discovery import read_file
from flows.settings import AlertRule, Settings
from flows.store import warehouse as _warehouse

log = logging.getLogger(__name__)

DEFAULT_CHANNEL = "default"
CLAIM_LEASE = timedelta(minutes=10)  # a claimed alert is not picked by another deliverer meanwhile
BACKOFF_CAP_S = 1800.0
THUMBNAIL_PX = 640
TEXT_LIMIT = 120


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _md5(*parts: object) -> str:
    return hashlib.md5("|".join(str(p) for p in parts).encode(), usedforsecurity=False).hexdigest()


# --------------------------------------------------------------------------- redaction

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.RLock()
_FACTORY_INSTALLED = False
_CREDENTIALS = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^\s/@:]*:[^\s/@]*@")
_TOKEN_PARAMS = re.compile(
    r"(?i)\b(token|apikey|api_key|key|secret|password|pass|pwd|webhook|access_token)=[^&\s'\"]+"
)
_HOSTNAME = re.compile(r"^(localhost|[0-9.]+|\[[0-9a-fA-F:]+\]|([a-zA-Z0-9-]+\.)+[a-zA-Z]{2,})$")
_HOST_PORT = re.compile(
    r"^(localhost|[0-9.]+|\[[0-9a-fA-F:]+\]|([a-zA-Z0-9-]+\.)+[a-zA-Z]{2,})(:[0-9]{1,5})?$"
)


def _secret_parts(url: str) -> set[str]:
    """The URL and every part of it that may be (or contain) a token or a password."""
    url = url.strip()
    parts = {url}
    try:
        split = urlsplit(url)
        query = parse_qsl(split.query)
    except ValueError:
        return parts
    if not _HOST_PORT.match(split.netloc):
        parts.add(split.netloc)  # credentials, or a token where the host would be (tgram://)
    pieces = re.split(r"[:@]", split.netloc) + split.path.split("/") + [v for _k, v in query]
    for piece in (unquote(p) for p in pieces):
        if len(piece) >= 6 and not _HOSTNAME.match(piece):
            parts.add(piece)
    return {p for p in parts if p}


def register_secrets(urls: Iterable[str]) -> None:
    """Remember URLs (and their token-like parts) so that no log record ever shows them."""
    install_log_redaction()
    with _SECRETS_LOCK:
        for url in urls:
            _SECRETS.update(_secret_parts(url))


def redact(text: str) -> str:
    """``text`` with every registered secret, credential and token parameter replaced."""
    if not text:
        return text
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    text = _CREDENTIALS.sub(r"\1***@", text)
    return _TOKEN_PARAMS.sub(r"\1=***", text)


def redact_url(url: str) -> str:
    """A name for a URL that says which it is without a secret: ``json://127.0.0.1:8000/***``."""
    try:
        split = urlsplit(url.strip())
    except ValueError:
        return "***"
    host_port = split.netloc.rsplit("@", 1)[-1]
    shown = host_port if _HOST_PORT.match(host_port) else "***"
    user = "***@" if split.username or split.password else ""
    rest = "/***" if split.path.strip("/") or split.query else ""
    return f"{split.scheme}://{user}{shown}{rest}"


def _scrub(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string is not ours to fix, but it is ours to redact
        message = str(record.msg)
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)


def install_log_redaction() -> None:
    """Redact secrets from every log record of this process, whichever logger makes it.

    A record factory (not a handler filter) so that handlers added later (Prefect's API log
    handler, pytest's caplog) only ever see the redacted text.
    """
    global _FACTORY_INSTALLED
    with _SECRETS_LOCK:
        if _FACTORY_INSTALLED:
            return
        _FACTORY_INSTALLED = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _scrub(record)
        return record

    logging.setLogRecordFactory(factory)


# --------------------------------------------------------------------------- channels


@dataclass(frozen=True)
class Target:
    channel: str
    url: str = field(repr=False)
    key: str  # sha256 of the URL, 16 hex: what the warehouse stores
    name: str  # redacted, for people


class AlertConfigError(ValueError):
    """An alert channel cannot be resolved; the message says what to set."""


def _split_urls(value: str) -> list[str]:
    return [u.strip() for u in re.split(r"[,\s]+", value) if u.strip()]


def _resolve_secret(value: str) -> str:
    if not value.startswith("prefect-secret:"):
        return value
    name = value.removeprefix("prefect-secret:").strip()
    from prefect.blocks.system import Secret

    try:
        secret: Any = Secret.load(name)
    except ValueError as exc:
        raise AlertConfigError(
            f"Prefect Secret block {name!r} not found: create it (prefect block create secret) "
            "or put the URLs in TRAPFLOW_ALERT_URLS"
        ) from exc
    return str(secret.get())


def channel_urls(settings: Settings) -> dict[str, list[str]]:
    """Channel name -> Apprise URLs (``default`` is TRAPFLOW_ALERT_URLS)."""
    raw: dict[str, str] = {}
    if settings.alert_urls is not None:
        raw[DEFAULT_CHANNEL] = settings.alert_urls.get_secret_value()
    for name, value in settings.alert_channels.items():
        raw[name.lower()] = value.get_secret_value()
    channels = {name: _split_urls(_resolve_secret(value)) for name, value in raw.items()}
    register_secrets(u for urls in channels.values() for u in urls)
    return {name: urls for name, urls in channels.items() if urls}


def rule_channels(rule: AlertRule) -> list[str]:
    return [c.lower() for c in rule.channels] or [DEFAULT_CHANNEL]


def targets_for(channels: Sequence[str], urls: dict[str, list[str]]) -> list[Target]:
    """The distinct URLs of the named channels."""
    seen: dict[str, Target] = {}
    for channel in channels:
        for url in urls.get(channel, []):
            key = hashlib.sha256(url.encode()).hexdigest()[:16]
            seen.setdefault(key, Target(channel, url, key, redact_url(url)))
    return list(seen.values())


RANGER = "ranger"  # exact coordinates, unblurred thumbnails
PUBLIC = "public"  # everyone else: sensitive locations generalised, people blurred


def channel_trust(settings: Settings, channel: str) -> str:
    """``ranger`` for the channels named in ``settings.ranger_channels``, else ``public``."""
    return RANGER if channel.lower() in settings.ranger_channels else PUBLIC


def trust_groups(
    settings: Settings, rule: AlertRule, urls: dict[str, list[str]]
) -> list[tuple[str, list[str]]]:
    """The rule's channels that have a URL, by trust level, rangers first: one outbox row
    (one message text, one thumbnail) per group."""
    groups: dict[str, list[str]] = {RANGER: [], PUBLIC: []}
    for channel in rule_channels(rule):
        if urls.get(channel) and channel not in groups[channel_trust(settings, channel)]:
            groups[channel_trust(settings, channel)].append(channel)
    return [(trust, channels) for trust, channels in groups.items() if channels]


def _row_id(base: str, trust: str, groups: Sequence[tuple[str, list[str]]]) -> str:
    """The first group's row keeps ``base`` (a rule with one trust level: ids as before)."""
    return base if not groups or trust == groups[0][0] else _md5(base, trust)


def with_timeouts(url: str, timeout_s: float) -> str:
    """The URL with Apprise's connect/read timeouts (``cto``/``rto``) unless it sets its own."""
    split = urlsplit(url)
    query = dict(parse_qsl(split.query, keep_blank_values=True))
    query.setdefault("cto", f"{timeout_s:g}")
    query.setdefault("rto", f"{timeout_s:g}")
    return urlunsplit(split._replace(query=urlencode(query)))


# --------------------------------------------------------------------------- sanitising

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def sanitize(value: object, limit: int = TEXT_LIMIT) -> str:
    """Text from EXIF, file or folder names made inert for Markdown, HTML, Slack and Telegram.

    Control characters and newlines go, the length is capped, Markdown punctuation is
    backslash-escaped and ``& < >`` become entities (which also defuses Slack's ``<url|text>``).
    ``://`` is broken up so that a name cannot become a link.
    """
    text = unicodedata.normalize("NFKC", str(value))
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = html.escape(text, quote=False)
    return text.replace("://", ":\u2060//")


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Seen:
    """One box (or classification) that matched a rule."""

    label: str
    confidence: float
    model: str
    bbox: tuple[float, float, float, float] | None


@dataclass
class Hit:
    """One image that matched one rule."""

    rule: AlertRule
    media_id: str
    site_id: str
    camera_id: str
    captured_at: datetime
    source_uri: str
    file_path: str
    file_name: str
    seen: list[Seen] = field(default_factory=list)
    place: tuple[float, float, str] | None = None  # (lat, lon, 'deployment' / 'image GPS')
    sensitive: bool = False  # a sensitive taxon in the image or ever at its site

    @property
    def best(self) -> float:
        return max((s.confidence for s in self.seen), default=0.0)


def parse_window(text: str) -> tuple[time, time]:
    """'HH:MM-HH:MM' -> (start, end); the window may wrap midnight."""
    try:
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError as exc:
        raise AlertConfigError(
            f"time window {text!r} is not 'HH:MM-HH:MM' (camera-local, e.g. '18:00-06:00')"
        ) from exc
    return start, end


def in_windows(moment: datetime, windows: Sequence[str]) -> bool:
    if not windows:
        return True
    clock = moment.time()
    for text in windows:
        start, end = parse_window(text)
        inside = start <= clock < end if start <= end else clock >= start or clock < end
        if inside:
            return True
    return False


_RUN_ROWS = """
with touched as (
    select media_id from raw.media where run_id = $run
    union select media_id from raw.detections where run_id = $run
    union select media_id from raw.classifications where run_id = $run
),
media as (
    select m.media_id, m.site_id, m.camera_id, m.source_uri, m.file_path, m.file_name,
           coalesce(m.captured_at, m.file_modified_at, m.ingested_at) as captured_at
    from raw.media m join touched using (media_id)
),
boxes as (
    select d.media_id, d.detection_id, d.category, lower(d.label) as label, d.confidence,
           d.model_name, d.bbox_x, d.bbox_y, d.bbox_w, d.bbox_h,
           exists (
               select 1 from raw.detection_flags f
               where f.detection_id = d.detection_id and f.flag = 'repeat_detection'
           ) as is_repeat
    from raw.detections d join touched using (media_id)
    where not exists (
        select 1 from review.labels r
        where r.detection_id = d.detection_id and r.is_false_positive
    )
),
species as (
    select c.media_id, 'classification' as category, lower(c.label) as label,
           c.probability as confidence, c.model_name, b.bbox_x, b.bbox_y, b.bbox_w, b.bbox_h,
           coalesce(b.is_repeat, false) as is_repeat
    from raw.classifications c join touched using (media_id)
    left join boxes b on b.detection_id = c.detection_id
)
select m.*, x.category, x.label, x.confidence, x.model_name,
       x.bbox_x, x.bbox_y, x.bbox_w, x.bbox_h, x.is_repeat
from media m
join (
    select media_id, category, label, confidence, model_name, bbox_x, bbox_y, bbox_w, bbox_h,
           is_repeat
    from boxes
    union all
    select * from species
) x using (media_id)
order by m.captured_at, m.media_id, x.confidence desc
"""


def find_hits(con: duckdb.DuckDBPyConnection, run_id: str, rules: Sequence[AlertRule]) -> list[Hit]:
    """Images the run loaded (or detected/classified) that match a human or label rule."""
    image_rules = [r for r in rules if r.kind in ("human", "label")]
    if not image_rules:
        return []
    rows = con.execute(_RUN_ROWS, {"run": run_id}).fetchall()
    hits: dict[tuple[str, str], Hit] = {}
    for row in rows:
        (media_id, site_id, camera_id, source_uri, file_path, file_name, captured_at,
         category, label, confidence, model_name, bx, by, bw, bh, is_repeat) = row  # fmt: skip
        bbox = (bx, by, bw, bh) if bx is not None else None
        for rule in image_rules:
            if not _matches(rule, category, label, confidence):
                continue
            if is_repeat and rule.kind != "human":
                continue  # a static false positive; people who stay are exactly what rangers want
            if rule.sites and site_id not in rule.sites:
                continue
            if not in_windows(captured_at, rule.hours):
                continue
            hit = hits.setdefault(
                (rule.name, media_id),
                Hit(rule, media_id, site_id, camera_id, captured_at, source_uri, file_path,
                    file_name),
            )  # fmt: skip
            hit.seen.append(Seen(label, float(confidence), model_name, bbox))
    return sorted(hits.values(), key=lambda h: (h.rule.name, h.site_id, h.captured_at, h.media_id))


def _matches(rule: AlertRule, category: str, label: str, confidence: float) -> bool:
    if rule.kind == "human":
        return category == "person" and confidence >= rule.min_confidence
    wanted = {k.lower(): v for k, v in rule.labels.items()}
    return label in wanted and confidence >= wanted[label]


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


def plan_bursts(
    hits: Sequence[Hit],
    anchors: dict[tuple[str, str], list[tuple[datetime, str, str | None]]],
    cooldown: dict[str, timedelta],
) -> tuple[list[Hit], dict[str, tuple[tuple[datetime, str, str | None], list[Hit]]]]:
    """Split hits into new alerts and followers grouped by the alert whose window they fall in.

    ``anchors``: (rule, site) -> [(event_at, alert_id, media_id)] of alerts already queued.
    Returns (hits that open a new alert, anchor alert_id -> (anchor, followers)).
    """
    new: list[Hit] = []
    followers: dict[str, tuple[tuple[datetime, str, str | None], list[Hit]]] = {}
    for hit in hits:
        known = anchors.setdefault((hit.rule.name, hit.site_id), [])
        if any(media_id == hit.media_id for _t, _a, media_id in known):
            continue  # this image already opened an alert (a re-run): nothing new
        window = cooldown[hit.rule.name]
        near = [a for a in known if abs(hit.captured_at - a[0]) < window]
        if near:
            anchor = min(near, key=lambda a: abs(hit.captured_at - a[0]))
            followers.setdefault(anchor[1], (anchor, []))[1].append(hit)
            continue
        alert_id = _md5(hit.rule.name, "alert", hit.site_id, hit.media_id)
        known.append((hit.captured_at, alert_id, hit.media_id))
        new.append(hit)
    return new, followers


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
        # trust level; the anchor is named by its plain id (the ranger row's, _row_id)
        by_media = {r[2]: r[0] for r in rows}
        anchors[(rule_name, site_id)] = [
            (at, _md5(rule_name, "alert", site_id, media_id), media_id)
            for media_id, at in by_media.items()
        ]
    return anchors


_PLACES = """
select m.media_id, d.latitude, d.longitude, m.latitude, m.longitude
from raw.media m
left join raw.deployments d
  on d.site_id = m.site_id and d.camera_id = m.camera_id
 and coalesce(m.captured_at, m.file_modified_at) between d.deployment_start and d.deployment_end
where m.media_id in (select unnest(?))
order by m.media_id, d.deployment_start desc
"""


def _known(lat: Any, lon: Any) -> bool:
    """A usable coordinate: present, and not the (0, 0) some cameras write without a fix."""
    return lat is not None and lon is not None and (float(lat), float(lon)) != (0.0, 0.0)


def find_places(
    con: duckdb.DuckDBPyConnection, media_ids: Sequence[str]
) -> dict[str, tuple[float, float, str]]:
    """media_id -> (lat, lon, where from): the deployment's coordinates (deployments.csv)
    when it has them, else the image's EXIF GPS."""
    places: dict[str, tuple[float, float, str]] = {}
    if not media_ids:
        return places
    for media_id, dlat, dlon, glat, glon in con.execute(_PLACES, [list(media_ids)]).fetchall():
        if media_id in places:
            continue
        if _known(dlat, dlon):
            places[media_id] = (float(dlat), float(dlon), "deployment")
        elif _known(glat, glon):
            places[media_id] = (float(glat), float(glon), "image GPS")
    return places


def find_people(
    con: duckdb.DuckDBPyConnection, media_ids: Sequence[str]
) -> dict[str, list[tuple[float, float, float, float]]]:
    """media_id -> every stored person box of the image (any model, any confidence): what
    is blurred in thumbnails for channels that are not rangers'."""
    people: dict[str, list[tuple[float, float, float, float]]] = {}
    if not media_ids:
        return people
    rows = con.execute(
        "select media_id, bbox_x, bbox_y, bbox_w, bbox_h from raw.detections "
        "where category = 'person' and frame_number is null and bbox_x is not null "
        "and media_id in (select unnest(?))",
        [list(media_ids)],
    ).fetchall()
    for media_id, x, y, w, h in rows:
        people.setdefault(media_id, []).append((float(x), float(y), float(w), float(h)))
    return people


def find_anomalies(
    con: duckdb.DuckDBPyConnection, run_id: str, rules: Sequence[AlertRule]
) -> list[tuple[AlertRule, Any, str, str, float]]:
    """(rule, day, label, site, z) beyond the rule's threshold on days and sites this run touched.

    Quietly nothing while ``marts.fct_population_variance`` does not exist.
    """
    population = [r for r in rules if r.kind == "population"]
    if not population or not _table_exists(con, "marts", "fct_population_variance"):
        return []
    rows = con.execute(
        """
        with touched as (
            select distinct site_id, cast(coalesce(captured_at, file_modified_at) as date) as day
            from raw.media where run_id = ?
        )
        select v.captured_on, v.label, v.site_id, v.z_score
        from marts.fct_population_variance v
        join touched t on t.site_id = v.site_id and t.day = v.captured_on
        where v.z_score is not null and not coalesce(v.is_low_effort, false)
        order by v.captured_on, v.site_id, v.label
        """,
        [run_id],
    ).fetchall()
    found = []
    for rule in population:
        labels = {k.lower() for k in rule.labels}
        for day, label, site_id, z in rows:
            if abs(z) < rule.z_threshold or (labels and str(label).lower() not in labels):
                continue
            if rule.sites and site_id not in rule.sites:
                continue
            found.append((rule, day, str(label), str(site_id), float(z)))
    return found


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchone()
    return bool(row and row[0])


# --------------------------------------------------------------------------- messages


def dashboard_link(settings: Settings, media_id: str) -> str:
    return f"{settings.dashboard_url.rstrip('/')}/?media_id={media_id}"


_TITLE_DROP = re.compile(r"[<>&\[\](){}*_`|~#\\!]")


def plain(value: object, limit: int = 40) -> str:
    """Text for a title (an e-mail subject, a push headline): markup characters dropped."""
    text = _TITLE_DROP.sub("", unicodedata.normalize("NFKC", str(value)))
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    text = text.replace("://", ":/ /")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _what(rule: AlertRule) -> str:
    if rule.kind == "human":
        return "Person"
    labels = sorted(k.lower() for k in rule.labels)
    return plain(", ".join(labels)) if labels else plain(rule.name)


def _seen_text(seen: Sequence[Seen]) -> str:
    best: dict[tuple[str, str], float] = {}
    for s in seen:
        key = (s.label, s.model)
        best[key] = max(best.get(key, 0.0), s.confidence)
    parts = sorted(best.items(), key=lambda kv: -kv[1])[:5]
    return ", ".join(f"{sanitize(label)} {conf:.2f} ({sanitize(model)})" for (label, model), conf
                     in parts)  # fmt: skip


def location_text(settings: Settings, hits: Sequence[Hit], trust: str) -> str:
    """Where the images were taken, for a message to a channel of ``trust``.

    Rangers get the exact coordinates. Every other channel gets the centre of the
    ``sensitive_grid_km`` cell when any of ``hits`` shows a sensitive taxon or was taken at a
    site that ever recorded one (a person near the rhinos tells where the rhinos are). The
    text never says why a location is approximate.
    """
    coarse = trust != RANGER and any(h.sensitive for h in hits)
    shown: list[str] = []
    for h in hits:
        if h.place is None:
            continue
        lat, lon, source = h.place
        text = f"{lat:.6f}, {lon:.6f} ({source})"
        if coarse:
            glat, glon, radius_m = generalise(lat, lon, settings.sensitive_grid_km)
            if radius_m is not None:
                text = (
                    f"{glat:.5f}, {glon:.5f} (approximate: {settings.sensitive_grid_km:g} km "
                    f"grid cell, ±{radius_m:,} m)"
                )
        if text not in shown:
            shown.append(text)
    if not shown:
        return "not recorded (no deployment coordinates, no GPS in the image)"
    more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
    return "; ".join(shown[:5]) + more


def alert_message(settings: Settings, hit: Hit, trust: str = PUBLIC) -> tuple[str, str]:
    site, camera = plain(hit.site_id), plain(hit.camera_id)
    title = f"{_what(hit.rule)} at site {site}, camera {camera}"
    body = "\n".join(
        [
            f"**Rule:** {sanitize(hit.rule.name)}  ",
            f"**Site:** {sanitize(hit.site_id)}  ",
            f"**Camera:** {sanitize(hit.camera_id)}  ",
            f"**Location:** {location_text(settings, [hit], trust)}  ",
            f"**Local time:** {hit.captured_at:%Y-%m-%d %H:%M:%S} (camera clock)  ",
            f"**Seen:** {_seen_text(hit.seen)}  ",
            f"**File:** {sanitize(hit.file_path)}  ",
            f"[Open in the dashboard]({dashboard_link(settings, hit.media_id)})",
        ]
    )
    return title, body


def summary_message(
    settings: Settings,
    anchor: tuple[datetime, str, str | None],
    hits: Sequence[Hit],
    trust: str = PUBLIC,
) -> tuple[str, str]:
    first, last = hits[0], hits[-1]
    cameras = sorted({h.camera_id for h in hits})
    title = (
        f"{_what(first.rule)} at site {plain(first.site_id)}: "
        f"{len(hits)} more image{'s' if len(hits) != 1 else ''}"
    )
    all_seen = [s for h in hits for s in h.seen]
    body = "\n".join(
        [
            f"**Rule:** {sanitize(first.rule.name)} (follow-up to the alert of "
            f"{anchor[0]:%Y-%m-%d %H:%M:%S})  ",
            f"**Site:** {sanitize(first.site_id)}  ",
            f"**Cameras:** {', '.join(sanitize(c) for c in cameras[:10])}  ",
            f"**Location:** {location_text(settings, hits, trust)}  ",
            f"**Local time:** {first.captured_at:%Y-%m-%d %H:%M:%S} to "
            f"{last.captured_at:%Y-%m-%d %H:%M:%S} (camera clock)  ",
            f"**Images:** {len(hits)}, best {max(h.best for h in hits):.2f}  ",
            f"**Seen:** {_seen_text(all_seen)}  ",
            f"[Last image in the dashboard]({dashboard_link(settings, last.media_id)})",
        ]
    )
    return title, body


def anomaly_message(
    rule: AlertRule, day: Any, label: str, site_id: str, z: float
) -> tuple[str, str]:
    direction = "drop" if z < 0 else "rise"
    title = f"Population {direction}: {plain(label)} at site {plain(site_id)}"
    body = "\n".join(
        [
            f"**Rule:** {sanitize(rule.name)}  ",
            f"**Site:** {sanitize(site_id)}  ",
            f"**Label:** {sanitize(label)}  ",
            f"**Day:** {day}  ",
            f"**z-score:** {z:+.2f} (threshold ±{rule.z_threshold:g}, from "
            "marts.fct\\_population\\_variance)",
        ]
    )
    return title, body


def thumbnail(
    data: bytes, boxes: Iterable[tuple[float, float, float, float]], max_pixels: int,
    size: int = THUMBNAIL_PX, blur: Iterable[tuple[float, float, float, float]] = (),
) -> bytes | None:  # fmt: skip
    """A JPEG at most ``size`` px wide or high with the ``blur`` boxes blurred and the
    ``boxes`` drawn; None if it cannot be made. A new encode: no EXIF (GPS) goes with it."""
    from PIL import ImageDraw

    from models_ml import ImageRejected, decode_rgb, open_image

    try:
        rgb = decode_rgb(open_image(data, max_pixels=max_pixels), draft_size=(size, size))
        rgb.thumbnail((size, size))
        blur_boxes(rgb, blur)
        draw = ImageDraw.Draw(rgb)
        width = max(2, max(rgb.size) // 200)
        for x, y, w, h in boxes:
            box = (x * rgb.width, y * rgb.height, (x + w) * rgb.width, (y + h) * rgb.height)
            draw.rectangle(box, outline=(255, 40, 40), width=width)
        out = io.BytesIO()
        rgb.save(out, format="JPEG", quality=80)
        return out.getvalue()
    except (ImageRejected, OSError, ValueError) as exc:
        log.warning("no thumbnail for an alert (%s); the alert goes without one", exc)
        return None


def _hit_thumbnail(
    settings: Settings, hit: Hit, people: Sequence[tuple[float, float, float, float]] | None = None
) -> bytes | None:
    """The alert's thumbnail; ``people`` given (channels that are not rangers'): those person
    boxes blurred (for a clip: every person box of the frame shown)."""
    from flows.pipeline import video as _video

    if _video.is_video(hit.file_path):  # the sampled frame of the best box, with its boxes
        seen = [(s.model, s.label, s.confidence) for s in hit.seen]
        return _video.clip_thumbnail(
            settings.warehouse_path, hit.source_uri, hit.file_path, hit.media_id, seen,
            THUMBNAIL_PX, blur_people=people is not None,
        )  # fmt: skip
    try:
        data = read_file(hit.source_uri, hit.file_path)
    except OSError as exc:
        log.warning("cannot read %s for a thumbnail (%s)", hit.file_path, exc)
        return None
    boxes = [s.bbox for s in hit.seen if s.bbox is not None]
    return thumbnail(data, boxes, settings.max_image_pixels, blur=people or ())


# --------------------------------------------------------------------------- queueing


@dataclass
class QueueResult:
    queued: int = 0
    alerts: int = 0
    summaries: int = 0
    anomalies: int = 0
    skipped_rules: list[str] = field(default_factory=list)


def queue_alerts(settings: Settings, run_id: str) -> QueueResult:
    """Evaluate every rule over what ``run_id`` loaded and write new alerts to the outbox.

    Rules whose channels have no URL are skipped (nothing would deliver them). Re-running
    with the same run adds nothing.
    """
    result = QueueResult()
    urls = channel_urls(settings)
    rules = []
    groups: dict[str, list[tuple[str, list[str]]]] = {}
    for rule in settings.alert_rules:
        groups[rule.name] = trust_groups(settings, rule, urls)
        if groups[rule.name]:
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
    with _warehouse.connect(settings.warehouse_path) as con:
        _warehouse.ensure_schema(con)
        if settings.lake:  # a scale-out worker: the run's rows are in the lake, its outbox here
            from flows.store import lake as _lake

            _lake.attach(con, settings.lake)
        hits = find_hits(con, run_id, rules)
        anchors = _known_anchors(con, hits)
        anomalies = find_anomalies(con, run_id, rules)
        media_ids = sorted({h.media_id for h in hits})
        places = find_places(con, media_ids)
        people = find_people(con, media_ids)
        risky = sensitive_sites(
            con, settings.sensitive_species, settings.detection_thresholds,
            settings.classification_threshold,
        ) if hits else set()  # fmt: skip
    for hit in hits:
        hit.place = places.get(hit.media_id)
        hit.sensitive = hit.site_id in risky or any(
            is_sensitive(s.label, settings.sensitive_species) for s in hit.seen
        )
    new, followers = plan_bursts(hits, anchors, cooldown)
    rows: list[Outgoing] = []
    for hit in new:  # one row per trust level: rangers' exact and unblurred, others' not
        base = _md5(hit.rule.name, "alert", hit.site_id, hit.media_id)
        for trust, channels in groups[hit.rule.name]:
            title, body = alert_message(settings, hit, trust)
            thumb = _hit_thumbnail(
                settings, hit, None if trust == RANGER else people.get(hit.media_id, [])
            )
            rows.append(
                Outgoing(
                    _row_id(base, trust, groups[hit.rule.name]), hit.rule, "alert", title,
                    body, hit.site_id, hit.camera_id, hit.media_id, None, hit.captured_at,
                    hit.captured_at, 1, thumb, channels,
                )
            )  # fmt: skip
    for anchor_id, (anchor, group) in followers.items():
        group.sort(key=lambda h: (h.captured_at, h.media_id))
        first = group[0]
        base = _md5(first.rule.name, "summary", anchor_id, run_id)
        trusts = groups[first.rule.name]
        for trust, channels in trusts:
            title, body = summary_message(settings, anchor, group, trust)
            rows.append(
                Outgoing(
                    _row_id(base, trust, trusts), first.rule, "summary", title, body,
                    first.site_id, first.camera_id, group[-1].media_id,
                    _row_id(anchor_id, trust, trusts), first.captured_at,
                    group[-1].captured_at, len(group), None, channels,
                )
            )  # fmt: skip
    for rule, day, label, site_id, z in anomalies:
        title, body = anomaly_message(rule, day, label, site_id, z)
        rows.append(
            Outgoing(_md5(rule.name, "anomaly", site_id, label, day), rule, "anomaly", title,
                     body, site_id, event_at=datetime.combine(day, time()), media_count=0)
        )  # fmt: skip
    with _warehouse.connect(settings.warehouse_path) as con:
        result.queued = write_outbox(con, rows, run_id)
    result.alerts = sum(r.kind == "alert" for r in rows)
    result.summaries = sum(r.kind == "summary" for r in rows)
    result.anomalies = sum(r.kind == "anomaly" for r in rows)
    return result


def write_outbox(
    con: duckdb.DuckDBPyConnection, rows: Sequence[Outgoing], run_id: str | None
) -> int:
    """Insert new alerts (``insert or ignore``: an alert_id already there is left alone)."""
    if not rows:
        return 0
    now = utcnow()
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


# --------------------------------------------------------------------------- delivery


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


def list_outbox(settings: Settings, limit: int = 50) -> list[dict[str, Any]]:
    """The latest outbox rows (newest first), without bodies or thumbnails."""
    if not settings.warehouse_path.exists():
        return []
    with _warehouse.connect(settings.warehouse_path, read_only=True) as con:
        if not _table_exists(con, "alerts", "outbox"):
            return []
        cur = con.execute(
            "select created_at, status, kind, rule_name, site_id, camera_id, event_at, "
            "media_count, attempts, last_error, next_attempt_at, title, alert_id "
            "from alerts.outbox order by created_at desc, event_at desc limit ?",
            [limit],
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
