"""Alert rules evaluated on what dbt decides: which images of a run match a rule.

Which boxes count, which review wins and which label a box has are the marts' rules
(``marts.live_detections``, a dbt view: ``dbt/models/marts/live``); this module only applies
the rule settings on top of them: a ``human`` rule's ``min_confidence``, a ``label`` rule's
labels of interest with their own minimum confidences, sites and camera-local hours, and the
cooldown that folds a burst into one alert and one follow-up summary. ``population`` rules
read ``marts.fct_population_variance``.

A box is looked at when dbt says it ``is_recorded``: not a false positive (the latest review
of the box or of its image), and a counting candidate or any model's box at or above its
category's threshold (a second opinion alerts, as it should for rangers). Repeat detections
(static false positives) never alert, except for people: a person who stays is exactly what
rangers want to hear about.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from flows.alerts.channels import AlertConfigError
from flows.alerts.live import ensure_live_views
from flows.settings import AlertRule, Settings
from flows.store import ids

if TYPE_CHECKING:
    import duckdb


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
           m.captured_at
    from marts.live_media m join touched using (media_id)
),
boxes as (
    select b.media_id, b.category, lower(b.label) as label,
           case when b.label_source = 'classifier' then b.classifier_probability
                else b.confidence end as confidence,
           case when b.label_source = 'classifier' then b.classifier_model
                else b.model_name end as model_name,
           b.bbox_x, b.bbox_y, b.bbox_w, b.bbox_h, b.is_repeat_detection, b.is_sensitive
    from marts.live_detections b join touched using (media_id)
    where b.is_recorded
)
select m.*, x.category, x.label, x.confidence, x.model_name,
       x.bbox_x, x.bbox_y, x.bbox_w, x.bbox_h, x.is_repeat_detection, x.is_sensitive
from media m
join boxes x using (media_id)
order by m.captured_at, m.media_id, x.confidence desc
"""


def find_hits(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    rules: Sequence[AlertRule],
    settings: Settings | None = None,
) -> list[Hit]:
    """Images the run loaded (or detected/classified) that match a human or label rule, by the
    boxes ``marts.live_detections`` says are recorded. The live views are made on ``con``
    first unless they are current for ``settings`` (default: the environment's)."""
    image_rules = [r for r in rules if r.kind in ("human", "label")]
    if not image_rules:
        return []
    ensure_live_views(con, settings or Settings())
    rows = con.execute(_RUN_ROWS, {"run": run_id}).fetchall()
    hits: dict[tuple[str, str], Hit] = {}
    for row in rows:
        (media_id, site_id, camera_id, source_uri, file_path, file_name, captured_at,
         category, label, confidence, model_name, bx, by, bw, bh, is_repeat,
         sensitive) = row  # fmt: skip
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
            hit.sensitive = hit.sensitive or bool(sensitive)
    return sorted(hits.values(), key=lambda h: (h.rule.name, h.site_id, h.captured_at, h.media_id))


def _matches(rule: AlertRule, category: str, label: str | None, confidence: float | None) -> bool:
    if confidence is None:
        return False
    if rule.kind == "human":
        return category == "person" and confidence >= rule.min_confidence
    wanted = {k.lower(): v for k, v in rule.labels.items()}
    return label in wanted and confidence >= wanted[label]


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
        alert_id = ids.alert_id(hit.rule.name, hit.site_id, hit.media_id)
        known.append((hit.captured_at, alert_id, hit.media_id))
        new.append(hit)
    return new, followers


_PLACES = """
select media_id, place_latitude, place_longitude, place_source
from marts.live_media
where media_id in (select unnest(?)) and place_source is not null
"""


def find_places(
    con: duckdb.DuckDBPyConnection, media_ids: Sequence[str]
) -> dict[str, tuple[float, float, str]]:
    """media_id -> (lat, lon, where from), as ``marts.live_media`` places the image: the
    deployment's coordinates (deployments.csv) when it has them, else the image's EXIF GPS."""
    if not media_ids:
        return {}
    return {
        media_id: (float(lat), float(lon), source)
        for media_id, lat, lon, source in con.execute(_PLACES, [list(media_ids)]).fetchall()
    }


def find_people(
    con: duckdb.DuckDBPyConnection, media_ids: Sequence[str]
) -> dict[str, list[tuple[float, float, float, float]]]:
    """media_id -> every stored person box of the image (any model, any confidence, and boxes
    a reviewer called a person): what is blurred in thumbnails for channels that are not
    rangers'. Blurring errs on the side of people, so false positives are blurred too."""
    people: dict[str, list[tuple[float, float, float, float]]] = {}
    if not media_ids:
        return people
    rows = con.execute(
        "select media_id, bbox_x, bbox_y, bbox_w, bbox_h from marts.live_detections "
        "where 'person' in (category, detector_category) and frame_number is null "
        "and bbox_x is not null and media_id in (select unnest(?))",
        [list(media_ids)],
    ).fetchall()
    for media_id, x, y, w, h in rows:
        people.setdefault(media_id, []).append((float(x), float(y), float(w), float(h)))
    return people


def find_anomalies(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    rules: Sequence[AlertRule],
    settings: Settings | None = None,
) -> list[tuple[AlertRule, Any, str, str, float]]:
    """(rule, day, label, site, z) beyond the rule's threshold on days and sites this run touched
    (the days ``marts.live_media`` gives its photos, as the marts date them).

    Quietly nothing while ``marts.fct_population_variance`` does not exist.
    """
    population = [r for r in rules if r.kind == "population"]
    if not population or not table_exists(con, "marts", "fct_population_variance"):
        return []
    ensure_live_views(con, settings or Settings())
    rows = con.execute(
        """
        with touched as (
            select distinct site_id, captured_on as day
            from marts.live_media where run_id = ?
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


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchone()
    return bool(row and row[0])


@dataclass(frozen=True)
class Silence:
    """A camera that has gone quiet for longer than dbt says it usually does."""

    rule: AlertRule
    site_id: str
    camera_id: str
    last_media_id: str
    last_captured_at: datetime
    usual_gap_hours: float
    silent_after: datetime

    @property
    def alert_id(self) -> str:
        """One alert per silence episode: named by the camera's last photo."""
        return ids.silence_id(self.rule.name, self.site_id, self.camera_id, self.last_media_id)


def find_silent(
    con: duckdb.DuckDBPyConnection,
    rules: Sequence[AlertRule],
    now: datetime,
    settings: Settings | None = None,
) -> list[Silence]:
    """(rule, camera) for every camera ``marts.live_camera_gaps`` says is silent by ``now``
    (its ``silent_after`` has passed: dbt owns the usual gap and the factor), at the rule's
    sites. Every camera is looked at, not only the run's: silence is what no run loads."""
    silent_rules = [r for r in rules if r.kind == "silent"]
    if not silent_rules:
        return []
    ensure_live_views(con, settings or Settings())
    rows = con.execute(
        "select site_id, camera_id, last_media_id, last_captured_at, usual_gap_hours, "
        "silent_after from marts.live_camera_gaps "
        "where silent_after is not null and silent_after <= ? order by site_id, camera_id",
        [now],
    ).fetchall()
    return [
        Silence(rule, site, camera, media_id, last_at, float(gap), after)
        for rule in silent_rules
        for site, camera, media_id, last_at, gap, after in rows
        if not rule.sites or site in rule.sites
    ]
