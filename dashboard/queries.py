"""Every query the dashboard runs, cached per argument (the warehouse path is always one).

Reads go only to the marts (``marts.*``, dbt/models/marts): the population tables, and the
views that are current between builds (``fct_detections`` boxes with their label now,
``fct_label_reviews``, ``fct_alerts``, ``fct_pipeline_runs``, ``fct_quarantine``,
``marts_freshness``). The only writes (dashboard/reviews.py, through :func:`_write` here) are
the Review and Label pages' ``review.labels`` inserts, the Label page's undo of its own, and
the Time problems page's ``review.clock_shifts`` insert (tests/dashboard/test_marts_only.py
holds every module to that).

DuckDB allows one writer process *or* many readers. Every read opens a short-lived
``read_only`` connection inside a cached function, so the dashboard never holds the file
while a flow run or ``dbt build`` wants it; when a writer holds it, a read retries for
``READ_WAIT_S`` and then falls back to the last result it had for the same arguments
(``WarehouseBusy`` is raised only when there is none, and pages turn it into a notice).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, ParamSpec

import duckdb
import pandas as pd
import streamlit as st

from dashboard import images
from flows.access.privacy import generalise, sensitive_label_sql
from flows.settings import load_settings
from flows.store import warehouse as _warehouse

P = ParamSpec("P")
TTL_S = 30
READ_WAIT_S = 5.0
WRITE_WAIT_S = 20.0
ALL_SITES = "(all sites)"

_last_good: dict[tuple[str, str], list[pd.DataFrame]] = {}
_busy_until = 0.0


class WarehouseBusy(RuntimeError):
    """The warehouse stayed locked by a writer and no earlier result is at hand."""


def warehouse_path() -> Path:
    """TRAPFLOW_WAREHOUSE, else the settings' default warehouse."""
    env = os.environ.get("TRAPFLOW_WAREHOUSE")
    if env:
        return Path(env).expanduser().absolute()
    return load_settings().warehouse_path


@st.cache_data(ttl=TTL_S, show_spinner=False)
def privacy() -> tuple[tuple[str, ...], float]:
    """(sensitive taxa words, grid km) from the settings."""
    settings = load_settings()
    return tuple(settings.sensitive_species), float(settings.sensitive_grid_km)


def map_style() -> str | None:
    """The Sites map's base map from the settings (none: offline, points only)."""
    return load_settings().dashboard_map_style or None


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text


def _read(warehouse: str, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    """Run one query on a fresh read-only connection; empty when the file or table is missing."""
    return _read_all(warehouse, [(sql, params or [])])[0]


Statements = list[tuple[str, list[Any]]]


def _read_all(
    warehouse: str,
    statements: Statements,
    then: Callable[[list[pd.DataFrame]], Statements] | None = None,
) -> list[pd.DataFrame]:
    """Run queries on one fresh read-only connection (opening one costs ~50 ms on a large file).
    ``then`` makes more statements from the first ones' results, run on the same connection
    (their frames follow). A missing file or table gives empty frames; a lock retries, then
    serves the last result."""
    global _busy_until
    path = Path(warehouse)
    if not path.exists():
        return [pd.DataFrame() for _ in statements]
    key = (warehouse, repr(statements) + repr(getattr(then, "__qualname__", None)))
    # after one read gave up, the others of the same page try once instead of waiting again
    wait = 0.0 if time.monotonic() < _busy_until else READ_WAIT_S
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        try:
            # no replacement scans: a missing marts.x must be a CatalogException, not a read
            # of this module's Python object named x; the file is attached under a fixed name
            # (a warehouse called alerts.duckdb must not collide with the alerts schema)
            with (
                _warehouse.CONNECTION_LOCK,  # sessions are threads: one connection at a time
                _warehouse.open_file(
                    path, read_only=True, config={"python_enable_replacements": False}
                ) as con,
            ):
                frames: list[pd.DataFrame] = []
                for sql, params in statements:
                    try:
                        frames.append(con.execute(sql, params).df())
                    except duckdb.CatalogException:
                        frames.append(pd.DataFrame())  # not built yet (no run, or no marts)
                for sql, params in then(frames) if then is not None else []:
                    try:
                        frames.append(con.execute(sql, params).df())
                    except duckdb.CatalogException:
                        frames.append(pd.DataFrame())
            if len(_last_good) >= 512:
                _last_good.pop(next(iter(_last_good)))
            _last_good[key] = frames
            return frames
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not _is_lock_error(exc):
                raise
            if time.monotonic() >= deadline:
                _busy_until = time.monotonic() + READ_WAIT_S
                if key in _last_good:
                    return _last_good[key]
                raise WarehouseBusy(
                    f"The warehouse {path} is being written by a run (locked for more than "
                    f"{READ_WAIT_S:.0f} s). Reload the page in a few seconds."
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def load(fn: Callable[P, pd.DataFrame], *args: P.args, **kwargs: P.kwargs) -> pd.DataFrame:
    """Call a cached query; a busy warehouse becomes a notice and an empty frame."""
    try:
        return fn(*args, **kwargs)
    except WarehouseBusy as exc:
        st.warning(str(exc), icon="⏳")
        return pd.DataFrame()


# ---------------------------------------------------------------- pickers


@st.cache_data(ttl=TTL_S, show_spinner=False)
def has_marts(warehouse: str) -> bool:
    """Whether dbt has built the marts (a missing table reads as an empty frame)."""
    df = _read(warehouse, "select count(*) as n from marts.fct_daily_population")
    return not df.empty


@st.cache_data(ttl=TTL_S, show_spinner=False)
def labels(warehouse: str, category: str = "animal") -> list[str]:
    df = _read(
        warehouse,
        "select label, sum(events) as events from marts.fct_daily_population "
        "where category = ? group by label order by events desc, label",
        [category],
    )
    return [] if df.empty else [str(x) for x in df["label"]]


@st.cache_data(ttl=TTL_S, show_spinner=False)
def sites(warehouse: str) -> list[str]:
    df = _read(warehouse, "select distinct site_id from marts.dim_deployments order by site_id")
    return [] if df.empty else [str(x) for x in df["site_id"]]


@st.cache_data(ttl=TTL_S, show_spinner=False)
def date_span(warehouse: str) -> tuple[date, date] | None:
    df = _read(
        warehouse,
        "select min(captured_on) as lo, max(captured_on) as hi from marts.fct_daily_population",
    )
    if df.empty or pd.isna(df["lo"].iloc[0]):
        return None
    return pd.Timestamp(df["lo"].iloc[0]).date(), pd.Timestamp(df["hi"].iloc[0]).date()


# ---------------------------------------------------------------- population


@st.cache_data(ttl=TTL_S, show_spinner=False)
def population_variance(
    warehouse: str, labels_: tuple[str, ...], site: str, start: date, end: date
) -> pd.DataFrame:
    """Daily events, effort, RAI and its rolling statistics (marts.fct_population_variance)."""
    return _for_labels(
        warehouse, labels_,
        "select captured_on, site_id, label, events, trap_nights, rai, rolling_mean_7d, "
        "rolling_var_7d, rolling_cv_7d, rolling_mean_30d, rolling_cv_30d, z_score, is_low_effort "
        "from marts.fct_population_variance",
        "site_id = ? and captured_on between ? and ? order by label, captured_on",
        [site, start, end],
    )  # fmt: skip


def _for_labels(
    warehouse: str, labels_: tuple[str, ...], select: str, where: str, params: list[Any]
) -> pd.DataFrame:
    """``select ... where label in (labels_) and <where>``; nothing asked, nothing read."""
    if not labels_:
        return pd.DataFrame()
    marks = ", ".join("?" * len(labels_))
    return _read(warehouse, f"{select} where label in ({marks}) and {where}", [*labels_, *params])


@st.cache_data(ttl=TTL_S, show_spinner=False)
def behaviour_time(warehouse: str, site: str) -> pd.DataFrame:
    """Seconds of clip per behaviour label (marts.fct_behaviour_time), at one site or all
    (empty before any behaviour head labelled a clip)."""
    return _read(
        warehouse,
        "select label, model_name, sum(seconds) as seconds, sum(clips) as clips "
        "from marts.fct_behaviour_time where ? = ? or site_id = ? "
        "group by all order by seconds desc",
        [site, ALL_SITES, site],
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def population_trend(warehouse: str, labels_: tuple[str, ...], site: str) -> pd.DataFrame:
    return _for_labels(
        warehouse, labels_,
        "select label, site_id, period, first_period, last_period, n_periods, sens_slope, "
        "mann_kendall_z, p_value, direction from marts.fct_population_trend",
        "site_id = ? order by label", [site],
    )  # fmt: skip


@st.cache_data(ttl=TTL_S, show_spinner=False)
def rai_intervals(warehouse: str, labels_: tuple[str, ...], site: str) -> pd.DataFrame:
    """RAI per period with its bootstrap interval (marts.fct_rai_intervals); empty when the
    marts predate that mart."""
    return _for_labels(
        warehouse, labels_,
        "select period, period_start, label, events, trap_nights, rai, rai_lower, rai_upper, "
        "rai_se, n_units, between_deployment_variance, n_deployments, confidence_level, "
        "replicates, unit, is_low_effort from marts.fct_rai_intervals",
        "category = 'animal' and site_id = ? order by label, period_start", [site],
    )  # fmt: skip


# ---------------------------------------------------------------- sites


@st.cache_data(ttl=TTL_S, show_spinner=False)
def deployments(warehouse: str, exact: bool = False) -> pd.DataFrame:
    """Deployments with their site's events per label, coordinates generalised at sensitive
    sites (flows/access/privacy.py): those dbt marks sensitive (marts.live_sites) and those
    whose population mart shows a sensitive label. Exact coordinates never leave this function
    unless ``exact`` (pages pass it for rangers only, dashboard/auth.py)."""
    sensitive, grid_km = privacy()
    label_match, words = sensitive_label_sql("label", sensitive)
    mart_sql = (
        "select site_id from (select site_id, label from marts.fct_daily_population "
        f"group by all having sum(events) > 0) where {label_match}"
    )
    dep, ev, flagged = _read_all(
        warehouse,
        [
            (
                "select deployment_id, site_id, camera_id, deployment_start, deployment_end, "
                "latitude, longitude, images, deployed_days, trap_nights, is_inferred "
                "from marts.dim_deployments order by site_id, camera_id",
                [],
            ),
            (
                "select site_id, label, sum(events) as events from marts.fct_daily_population "
                "group by all having sum(events) > 0",
                [],
            ),
            (
                f"select site_id from marts.live_sites where is_sensitive union {mart_sql}",
                words,
            ),
        ],
    )
    if dep.empty:
        return dep
    if flagged.empty and words:  # no marts.live_sites (built before it): the mart's labels
        flagged = _read(warehouse, mart_sql, words)
    risky = set(flagged["site_id"]) if not flagged.empty else set()
    dep["events"] = 0
    dep["species"] = ""
    dep["is_generalised"] = False
    dep["is_sensitive"] = dep["site_id"].isin(risky)
    dep["coordinate_uncertainty_m"] = None
    dep = dep.astype({"coordinate_uncertainty_m": "object"})
    for i, row in dep.iterrows():
        mine = ev[ev["site_id"] == row["site_id"]] if not ev.empty else ev
        if not mine.empty:
            dep.at[i, "events"] = int(mine["events"].sum())
            top = mine.sort_values("events", ascending=False)
            dep.at[i, "species"] = ", ".join(
                f"{lab} ({n})" for lab, n in zip(top["label"], top["events"], strict=True)
            )
        if row["site_id"] in risky:
            lat, lon = row["latitude"], row["longitude"]
            if pd.notna(lat) and pd.notna(lon) and not exact:
                glat, glon, unc = generalise(float(lat), float(lon), grid_km)
                dep.at[i, "latitude"], dep.at[i, "longitude"] = glat, glon
                dep.at[i, "coordinate_uncertainty_m"] = unc
            dep.at[i, "is_generalised"] = not exact
    return dep


@st.cache_data(ttl=TTL_S, show_spinner=False)
def site_events(warehouse: str) -> pd.DataFrame:
    """Independent events per site x category x label (events are per site: its cameras are
    not independent of each other)."""
    return _read(
        warehouse,
        "select site_id, category, label, sum(events) as events "
        "from marts.fct_daily_population group by all having sum(events) > 0 "
        "order by site_id, events desc",
    )


# ---------------------------------------------------------------- human activity


@st.cache_data(ttl=TTL_S, show_spinner=False)
def human_activity(warehouse: str, start: date, end: date) -> pd.DataFrame:
    return _read(
        warehouse,
        "select captured_on, site_id, human_events, human_images, max_people, trap_nights, "
        "human_activity_index from marts.fct_human_activity "
        "where captured_on between ? and ? order by captured_on, site_id",
        [start, end],
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def alerts_sent(warehouse: str, limit: int = 200) -> pd.DataFrame:
    """The alert outbox, newest first (marts.fct_alerts: no body, no thumbnail, and any URL in
    its text reads '<url>')."""
    return _read(
        warehouse,
        "select created_at, rule_name, rule_kind, alert_kind, site_id, camera_id, media_id, "
        "event_at, media_count, title, channels, alert_status, attempts, targets_delivered, "
        "last_error, delivered_at from marts.fct_alerts order by created_at desc limit ?",
        [limit],
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def people_images(warehouse: str, limit: int = 12) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The latest images with people (marts.dim_media) and every box in them that is or was a
    person, of any model and confidence (marts.fct_detections; all of them are blurred)."""
    latest = (
        "select media_id, site_id, camera_id, captured_at, source_uri, file_path, n_persons "
        "from marts.dim_media where has_person order by captured_at desc nulls last limit ?"
    )
    media_df, boxes_df = _read_all(
        warehouse,
        [
            (latest, [limit]),
            (
                "select media_id, confidence, bbox_x, bbox_y, bbox_w, bbox_h "
                "from marts.fct_detections where 'person' in (category, detector_category) "
                f"and media_id in (select media_id from ({latest}))",
                [limit],
            ),
        ],
    )
    return media_df, boxes_df


# ---------------------------------------------------------------- review


@st.cache_data(ttl=TTL_S, show_spinner=False)
def review_queue(
    warehouse: str,
    label: str | None,
    min_confidence: float,
    max_confidence: float,
    site: str | None,
    start: date | None,
    end: date | None,
    limit: int = 200,
) -> pd.DataFrame:
    """Images to review, newest first: one row per image with a candidate box (marts.fct_detections
    is_candidate: what the counting rules or a reviewer let count) matching the filters, its
    labels as they are now, best confidence and number of boxes."""
    where = ["d.is_candidate", "d.confidence between ? and ?"]
    params: list[Any] = [min_confidence, max_confidence]
    if label:
        where.append("d.label = ?")
        params.append(label)
    if site:
        where.append("d.site_id = ?")
        params.append(site)
    if start and end:
        where.append("d.captured_on between ? and ?")
        params += [start, end]
    # the newest matching boxes (a top-N, no group-by over every box), their images, then
    # the labels of just those images
    params += [limit * 20, limit]
    return _read(
        warehouse,
        "with recent as (select d.media_id, d.captured_at from marts.fct_detections as d "
        f"where {' and '.join(where)} "
        "order by d.captured_at desc nulls last limit ?), "
        "hits as (select media_id, max(captured_at) as captured_at from recent "
        "group by media_id order by captured_at desc nulls last, media_id limit ?), "
        "named as (select d.media_id, string_agg(distinct d.label, ', ' order by d.label) "
        "as labels, max(d.confidence) as confidence, count(*) as boxes, "
        "bool_or(d.is_reviewed) as has_box_review from marts.fct_detections as d "
        "semi join hits using (media_id) where d.is_candidate group by d.media_id) "
        "select h.media_id, m.site_id, m.camera_id, h.captured_at, "
        "m.is_reviewed or n.has_box_review as is_reviewed, n.labels, "
        "n.confidence, n.boxes from hits as h join named as n using (media_id) "
        "join marts.dim_media as m using (media_id) "
        "order by h.captured_at desc nulls last, h.media_id",
        params,
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def review_image(warehouse: str, media_id: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One image for Review: (its dim_media row, its boxes with their labels as they are now,
    the reviews it already has), read on one connection. Boxes and reviews come from views
    (fct_detections, fct_label_reviews), so a review shows as soon as it is saved."""
    meta, found, history = _read_all(
        warehouse,
        [
            (
                "select media_id, site_id, camera_id, deployment_id, source_uri, file_path, "
                "captured_at, timestamp_source, width, height, n_animals, n_persons, n_vehicles, "
                "is_reviewed from marts.dim_media where media_id = ?",
                [media_id],
            ),
            (
                "select detection_id, model_name, model_version, category, confidence, bbox_x, "
                "bbox_y, bbox_w, bbox_h, label, label_source, is_counted, is_false_positive, "
                "frame_number, frame_time_s from marts.fct_detections where media_id = ? "
                "order by confidence desc, detection_id",
                [media_id],
            ),
            (
                "select reviewed_at, reviewer, detection_id, category, label, is_false_positive, "
                "individuals as count, note, is_latest from marts.fct_label_reviews "
                "where media_id = ? order by reviewed_at desc, label_id desc",
                [media_id],
            ),
        ],
    )
    return meta, found, history


@st.cache_data(ttl=600, show_spinner=False, max_entries=64)
def image_bytes(source_uri: str, file_path: str) -> bytes:
    """The image's bytes, from wherever its source lives (folder or s3://)."""
    from flows.pipeline.discovery import read_file

    return read_file(source_uri, file_path)


@st.cache_data(ttl=600, show_spinner=False, max_entries=128)
def image_view(
    source_uri: str,
    file_path: str,
    boxes: tuple[images.Box, ...],
    blur_people: bool,
    max_side: int = images.MAX_SIDE,
) -> bytes:
    """The image read from its source with its boxes drawn, people blurred unless turned off
    (cached per image, boxes and toggle)."""
    return images.render(
        image_bytes(source_uri, file_path), boxes, blur_people=blur_people, max_side=max_side
    )


def _write(warehouse: str, sql: str, params: list[list[Any]], what: str) -> None:
    """executemany in one transaction, waiting up to WRITE_WAIT_S while a run holds the file."""
    deadline = time.monotonic() + WRITE_WAIT_S
    delay = 0.1
    while True:
        try:
            with _warehouse.CONNECTION_LOCK, _warehouse.open_file(Path(warehouse)) as con:
                con.executemany(sql, params)
            break
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not _is_lock_error(exc) or time.monotonic() > deadline:
                raise WarehouseBusy(
                    f"Could not {what}: the warehouse {warehouse} stayed locked by a run for "
                    f"{WRITE_WAIT_S:.0f} s. Try again when the run has finished."
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    review_image.clear()  # the Label page clears its own (dashboard/labelling.py)
    review_queue.clear()


# ---------------------------------------------------------------- time problems


@st.cache_data(ttl=TTL_S, show_spinner=False)
def time_problems(warehouse: str) -> pd.DataFrame:
    """The cameras whose clocks look wrong and the shift proposed for each
    (marts.fct_time_problems; empty before a build that has the mart)."""
    return _read(
        warehouse,
        "select time_problem_id, site_id, camera_id, kind, photos_checked, photos_disagreeing, "
        "photos_fixed_by_shift, median_offset_s, proposed_shift_s, proposed_timeshift, "
        "proposed_sign, proposed_shift_text from marts.fct_time_problems "
        "order by site_id, camera_id, kind",
    )


# ---------------------------------------------------------------- pipeline health


@st.cache_data(ttl=TTL_S, show_spinner=False)
def runs(warehouse: str, limit: int = 200) -> pd.DataFrame:
    """Runs, newest first (marts.fct_pipeline_runs, a view: the run in progress shows)."""
    return _read(
        warehouse,
        "select run_id, source_uri, started_at, finished_at, run_status as status, "
        "files_listed, files_new, images_processed, duplicates, detections, quarantined, "
        "warnings, model_versions, duration_s, images_per_s, list_s, read_s, detect_s, load_s, "
        "marts_s from marts.fct_pipeline_runs order by started_at desc limit ?",
        [limit],
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def quarantine(warehouse: str, limit: int = 500) -> pd.DataFrame:
    """Quarantined files, newest first, with the reason and what to do (marts.fct_quarantine)."""
    return _read(
        warehouse,
        "select quarantined_at, source_uri, file_path, reason, error_message, action, run_id "
        "from marts.fct_quarantine order by quarantined_at desc limit ?",
        [limit],
    )


# ---------------------------------------------------------------- freshness


@st.cache_data(ttl=TTL_S, show_spinner=False)
def marts_freshness(warehouse: str) -> pd.DataFrame:
    """One row from marts.marts_freshness: when the table marts were built and whether media
    were ingested since (empty before the first build)."""
    return _read(
        warehouse,
        "select built_at, built_through_at, latest_ingested_at, media_since_build, "
        "station_tables_changed, is_stale from marts.marts_freshness",
    )


def stale_marts_notice(warehouse: str) -> None:
    """An st.info on every page when the table marts are older than the newest ingest (called
    once from streamlit_app.py). Says nothing when they are current, not built yet, or the
    warehouse is busy (the page itself says so then)."""
    try:
        df = marts_freshness(warehouse)
    except WarehouseBusy:
        return
    if df.empty or not bool(df["is_stale"].iloc[0]):
        return
    row = df.iloc[0]
    new = int(row["media_since_build"])
    what = f"{new} image{'s' if new != 1 else ''} ingested" if new else "new detections"
    if bool(row["station_tables_changed"]) and not new:
        what = "the station tables (deployments, problem periods or clock shifts) changed"
    st.info(
        f"The marts are out of date: {what} since they were built "
        f"({row['built_at']:%Y-%m-%d %H:%M} UTC), so counts, charts and queues do not include "
        "them yet. Refresh them with `trapflow marts`.",
        icon="🕒",
    )
