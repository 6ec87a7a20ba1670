"""Pure DataFrame -> chart functions (altair, pydeck). No queries, no Streamlit calls."""

from __future__ import annotations

import math
from typing import Any

import altair as alt
import pandas as pd
import pydeck as pdk

WIDTH_STEP = 180
# altair's mark_*() and encode() are untyped (they return Any): a chart is bound to a typed
# name before it is returned.


def _band(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    sd = out["rolling_var_7d"].clip(lower=0) ** 0.5
    out["band_lo"] = (out["rolling_mean_7d"] - sd).clip(lower=0)
    out["band_hi"] = out["rolling_mean_7d"] + sd
    return out


def rai_with_variance(df: pd.DataFrame) -> alt.LayerChart | alt.FacetChart:
    """Daily RAI (points), its 7-day rolling mean (line) and mean ± 1 sd (band), per label."""
    data = _band(df)
    base = alt.Chart(data).encode(
        x=alt.X("captured_on:T", title="day"), color=alt.Color("label:N", title="species")
    )
    band = base.mark_area(opacity=0.2).encode(
        y=alt.Y("band_lo:Q", title="RAI (events / 100 trap-nights)"), y2="band_hi:Q"
    )
    line = base.mark_line().encode(
        y="rolling_mean_7d:Q",
        tooltip=["captured_on:T", "label:N", "rolling_mean_7d:Q", "rolling_cv_7d:Q"],
    )
    points = base.mark_circle(size=18, opacity=0.6).encode(
        y="rai:Q", tooltip=["captured_on:T", "label:N", "events:Q", "trap_nights:Q", "rai:Q"]
    )
    return alt.layer(band, line, points).properties(height=280)


def rai_with_interval(df: pd.DataFrame) -> alt.LayerChart | alt.FacetChart:
    """RAI per period (line and points) inside its bootstrap interval (band), per label."""
    base = alt.Chart(df).encode(
        x=alt.X("period_start:T", title="period"), color=alt.Color("label:N", title="species")
    )
    band = base.mark_area(opacity=0.2).encode(
        y=alt.Y("rai_lower:Q", title="RAI (events / 100 trap-nights)"), y2="rai_upper:Q"
    )
    tooltip = [
        "period_start:T", "label:N", "events:Q", "trap_nights:Q", "rai:Q", "rai_lower:Q",
        "rai_upper:Q", "n_units:Q", "between_deployment_variance:Q",
    ]  # fmt: skip
    line = base.mark_line(point=True).encode(y="rai:Q", tooltip=tooltip)
    chart: alt.LayerChart | alt.FacetChart = alt.layer(band, line).properties(height=260)
    return chart


def effort(df: pd.DataFrame) -> alt.Chart:
    """Trap-nights per day: shown beside every count so a drop in effort reads as one."""
    daily = df.groupby("captured_on", as_index=False)["trap_nights"].max()
    chart: alt.Chart = (
        alt.Chart(daily)
        .mark_bar(color="#999999")
        .encode(
            x=alt.X("captured_on:T", title="day"),
            y=alt.Y("trap_nights:Q", title="effort (trap-nights)"),
            tooltip=["captured_on:T", "trap_nights:Q"],
        )
        .properties(height=120)
    )
    return chart


def events_per_day(df: pd.DataFrame) -> alt.Chart:
    chart: alt.Chart = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("captured_on:T", title="day"),
            y=alt.Y("events:Q", title="independent events"),
            color=alt.Color("label:N", title="species"),
            tooltip=["captured_on:T", "label:N", "events:Q", "trap_nights:Q"],
        )
        .properties(height=180)
    )
    return chart


def cv_and_z(df: pd.DataFrame) -> alt.Chart:
    """CV of the 7-day window and the z-score of the 7-day mean over time, one panel each."""
    long = df.melt(
        id_vars=["captured_on", "label"],
        value_vars=["rolling_cv_7d", "z_score"],
        var_name="statistic",
        value_name="value",
    ).dropna(subset=["value"])
    chart: alt.Chart = (
        alt.Chart(long)
        .mark_line(point=False)
        .encode(
            x=alt.X("captured_on:T", title="day"),
            y=alt.Y("value:Q", title=None),
            color=alt.Color("label:N", title="species"),
            row=alt.Row("statistic:N", title=None),
            tooltip=["captured_on:T", "label:N", "statistic:N", "value:Q"],
        )
        .properties(height=120)
        .resolve_scale(y="independent")
    )
    return chart


def events_per_site(df: pd.DataFrame) -> alt.Chart:
    chart: alt.Chart = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("events:Q", title="independent events"),
            y=alt.Y("site_id:N", title="site", sort="-x"),
            color=alt.Color("label:N", title="label"),
            tooltip=["site_id:N", "category:N", "label:N", "events:Q"],
        )
    )
    return chart


def deployments_map(df: pd.DataFrame, map_style: str | None = None) -> pdk.Deck | None:
    """Deployments with coordinates as circles sized by events; None when none has GPS.

    ``map_style``: the base map (a CARTO style name or a MapLibre style.json URL); none by
    default, so the page works offline.
    """
    located = df.dropna(subset=["latitude", "longitude"])
    if located.empty:
        return None
    data: list[dict[str, Any]] = [
        {
            "lat": float(r.latitude),
            "lon": float(r.longitude),
            "site": str(r.site_id),
            "camera": str(r.camera_id),
            "events": int(r.events),
            "species": str(r.species) or "-",
            "note": "generalised" if r.is_generalised else "exact",
            "radius": 200 + 40 * int(r.events) ** 0.5,  # metres; radius_min_pixels keeps it seen
        }
        for r in located.itertuples()
    ]
    layer = pdk.Layer(
        "ScatterplotLayer",
        data=data,
        get_position="[lon, lat]",
        get_radius="radius",
        radius_min_pixels=6,
        get_fill_color=[200, 60, 30, 160],
        pickable=True,
    )
    lat, lon = located["latitude"].astype(float), located["longitude"].astype(float)
    span = max(float(lat.max() - lat.min()), float(lon.max() - lon.min()), 0.05)
    view = pdk.ViewState(  # every deployment in view
        latitude=float(lat.min() + lat.max()) / 2,
        longitude=float(lon.min() + lon.max()) / 2,
        zoom=max(0.0, min(12.0, math.log2(360.0 / span) - 0.5)),
    )
    tooltip = {"text": "{site}/{camera}: {events} events\n{species}\ncoordinates: {note}"}
    return pdk.Deck(
        layers=[layer],
        initial_view_state=view,
        tooltip=tooltip,
        map_style=map_style or None,
        map_provider="carto" if map_style else None,
    )


def human_timeline(df: pd.DataFrame) -> alt.Chart:
    chart: alt.Chart = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("captured_on:T", title="day"),
            y=alt.Y("human_events:Q", title="human events"),
            color=alt.Color("site_id:N", title="site"),
            tooltip=["captured_on:T", "site_id:N", "human_events:Q", "human_activity_index:Q"],
        )
        .properties(height=240)
    )
    return chart


def _count_bars(df: pd.DataFrame, by: str, counted: str, x_title: str) -> alt.Chart:
    """Horizontal bars: rows of ``df`` per ``by`` (counting ``counted``), largest first."""
    counts = df.groupby(by, as_index=False)[counted].count()
    chart: alt.Chart = (
        alt.Chart(counts)
        .mark_bar()
        .encode(
            x=alt.X(f"{counted}:Q", title=x_title),
            y=alt.Y(f"{by}:N", title=by, sort="-x"),
            tooltip=[f"{by}:N", f"{counted}:Q"],
        )
    )
    return chart


def queue_by_label(df: pd.DataFrame) -> alt.Chart:
    return _count_bars(df, "labels", "media_id", "images in the queue").properties(
        height=alt.Step(18)
    )


def throughput(df: pd.DataFrame) -> alt.Chart:
    chart: alt.Chart = (
        alt.Chart(df.dropna(subset=["images_per_s"]))
        .mark_line(point=True)
        .encode(
            x=alt.X("started_at:T", title="run started"),
            y=alt.Y("images_per_s:Q", title="images / s"),
            tooltip=["run_id:N", "status:N", "images_processed:Q", "duration_s:Q"],
        )
        .properties(height=200)
    )
    return chart


def quarantine_reasons(df: pd.DataFrame) -> alt.Chart:
    return _count_bars(df, "reason", "file_path", "files")
