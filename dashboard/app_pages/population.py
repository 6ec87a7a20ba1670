"""Population: daily events and RAI with rolling mean and variance band, CV, z-score, RAI per
period with its bootstrap interval, trend."""

import streamlit as st

from dashboard import charts, queries

wh = str(queries.warehouse_path())


def _behaviour(site: str) -> None:
    """Time per behaviour, when a behaviour head labelled clips (with or without species)."""
    behaviour = queries.load(queries.behaviour_time, wh, site)
    if behaviour.empty:
        return
    st.subheader("Time per behaviour (clips)")
    st.caption(
        "Seconds of clip each behaviour head's label covers (marts.fct_behaviour_time), from "
        "its per-frame labels; a behaviour never replaces the species."
    )
    st.bar_chart(behaviour, x="label", y="seconds", color="model_name", horizontal=True)
    st.dataframe(behaviour, hide_index=True, width="stretch")


st.title("Population")
span = queries.load(queries.date_span, wh) if queries.has_marts(wh) else None
species = queries.labels(wh, "animal") if span else []
if not span or not species:
    st.info(
        "No population marts yet. Run `trapflow run --source DIR --once` (or `trapflow marts`) "
        f"to fill the warehouse {wh}."
    )
    if queries.has_marts(wh):  # clips with behaviours, and no species counted (yet)
        _behaviour(queries.ALL_SITES)
    st.stop()

left, mid, right = st.columns([3, 2, 2])
chosen = left.multiselect("Species", species, default=species[:3], key="pop_species")
site = mid.selectbox("Site", [queries.ALL_SITES, *queries.sites(wh)], key="pop_site")
dates = right.date_input("Dates", value=span, min_value=span[0], max_value=span[1], key="pop_dates")
start, end = (dates[0], dates[-1]) if isinstance(dates, tuple) and dates else span

df = queries.load(queries.population_variance, wh, tuple(chosen), str(site), start, end)
if df.empty:
    st.info("Nothing for this choice: pick at least one species, another site or wider dates.")
    st.stop()

a, b, c, d = st.columns(4)
a.metric("Independent events", int(df["events"].sum()))
b.metric("Trap-nights", f"{df.groupby('captured_on')['trap_nights'].max().sum():.0f}")
c.metric("Days without effort", int(df.groupby("captured_on")["trap_nights"].max().isna().sum()))
d.metric(
    "Low-effort days (no statistics)", int(df.groupby("captured_on")["is_low_effort"].all().sum())
)

st.subheader("RAI, 7-day rolling mean ± 1 sd")
st.altair_chart(charts.rai_with_variance(df), width="stretch")
st.caption("Effort beside the counts: a gap here is missing cameras, not missing animals.")
st.altair_chart(charts.effort(df), width="stretch")
st.subheader("Independent events per day")
st.altair_chart(charts.events_per_day(df), width="stretch")
st.subheader("Variability: CV of the 7-day window and z-score against the 30 days before")
st.altair_chart(charts.cv_and_z(df), width="stretch")

intervals = queries.load(queries.rai_intervals, wh, tuple(chosen), str(site))
if not intervals.empty:
    first = intervals.iloc[0]
    st.subheader(f"RAI per {first['period']} with its {first['confidence_level']:.0%} interval")
    st.caption(
        f"Percentile bootstrap ({first['replicates']} resamples of {first['unit']}s, "
        "marts.fct_rai_intervals); a wide band is few units or uneven ones, not a trend."
    )
    st.altair_chart(charts.rai_with_interval(intervals), width="stretch")

st.subheader("Trend (Mann-Kendall, Sen's slope)")
trend = queries.load(queries.population_trend, wh, tuple(chosen), str(site))
if trend.empty:
    st.info("No trend yet: it needs RAI over several periods with enough effort.")
else:
    st.dataframe(trend, hide_index=True, width="stretch")

_behaviour(str(site))
