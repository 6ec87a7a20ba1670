"""Human activity: human events per site over time, alerts sent, images with people (blurred)."""

import streamlit as st

from dashboard import auth, charts, images, queries

wh = str(queries.warehouse_path())
st.title("Human activity")
span = queries.load(queries.date_span, wh) if queries.has_marts(wh) else None
if not span:
    st.info(f"No marts yet. Run `trapflow run --source DIR --once` to fill {wh}.")
    st.stop()

dates = st.date_input("Dates", value=span, min_value=span[0], max_value=span[1], key="hum_dates")
start, end = (dates[0], dates[-1]) if isinstance(dates, tuple) and dates else span
df = queries.load(queries.human_activity, wh, start, end)
if df.empty or int(df["human_events"].sum()) == 0:
    st.info("No people detected in these dates.")
else:
    a, b = st.columns(2)
    a.metric("Human events", int(df["human_events"].sum()))
    b.metric("Sites with people", int(df.loc[df["human_events"] > 0, "site_id"].nunique()))
    st.altair_chart(charts.human_timeline(df[df["human_events"] > 0]), width="stretch")

st.subheader("Alerts sent")
outbox = queries.load(queries.alerts_sent, wh)
if outbox.empty:
    st.info("No alerts queued yet (see docs/alerts.md for the rules).")
else:
    st.dataframe(outbox, hide_index=True, width="stretch")

st.subheader("Latest images with people")
blur = st.toggle("Blur people", value=True, key="hum_blur") if auth.is_ranger() else True  # viewer
try:
    people, person_boxes = queries.people_images(wh)
except queries.WarehouseBusy as exc:
    st.warning(str(exc), icon="⏳")
    st.stop()
unreadable = []
cols = st.columns(3)
for i, row in enumerate(people.itertuples()):
    mine = person_boxes[person_boxes["media_id"] == row.media_id]
    drawn = tuple(
        images.Box(b.bbox_x, b.bbox_y, b.bbox_w, b.bbox_h, "person", f"person {b.confidence:.2f}")
        for b in mine.itertuples()
    )
    try:
        shown = queries.image_view(str(row.source_uri), str(row.file_path), drawn, blur, 480)
    except (OSError, ValueError) as exc:  # moved, unreachable, or a video
        unreadable.append(f"{row.file_path} ({exc})")
        continue
    cols[i % 3].image(shown)
    cols[i % 3].markdown(
        f"{row.site_id}/{row.camera_id} · {row.captured_at} · "
        f"[review](/review?media_id={row.media_id})"
    )
if unreadable:
    st.warning(
        f"{len(unreadable)} images could not be read from their source (moved, or the bucket "
        f"is unreachable from here): {'; '.join(unreadable[:3])}"
    )
