"""Review: browse images with their boxes and labels; confirm, correct or mark false positives."""

import streamlit as st

from dashboard import auth, charts, images, queries, reviews

VIDEO = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
wh = str(queries.warehouse_path())
st.title("Review")
span = queries.load(queries.date_span, wh) if queries.has_marts(wh) else None
if not span:
    st.info(f"No marts yet. Run `trapflow run --source DIR --once` to fill {wh}.")
    st.stop()

with st.sidebar:
    st.header("Filter")
    species = st.selectbox(
        "Label", ["(any)", *queries.labels(wh, "animal"), "person"], key="rv_label"
    )
    site = st.selectbox("Site", ["(any)", *queries.sites(wh)], key="rv_site")
    conf = st.slider("Confidence", 0.0, 1.0, (0.0, 1.0), 0.05, key="rv_conf")
    dates = st.date_input("Dates", value=span, min_value=span[0], max_value=span[1], key="rv_dates")
    min_box = st.slider("Draw boxes from confidence", 0.0, 1.0, 0.1, 0.05, key="rv_min_box")
    blur = st.toggle("Blur people", value=True, key="rv_blur") if auth.is_ranger() else True
start, end = (dates[0], dates[-1]) if isinstance(dates, tuple) and dates else span
queue = queries.load(
    queries.review_queue,
    wh,
    None if species == "(any)" else str(species),
    float(conf[0]),
    float(conf[1]),
    None if site == "(any)" else str(site),
    start,
    end,
)

linked = st.query_params.get("media_id")
ids = [] if queue.empty else [str(x) for x in queue["media_id"]]
if linked and linked not in ids:
    ids.insert(0, linked)
if not ids:
    st.info("No image matches these filters: widen the confidence range, dates or site.")
    st.stop()

left, right = st.columns([1, 2])
with left:
    st.caption(f"{len(queue)} images match (newest first, at most 200).")
    if not queue.empty:
        st.altair_chart(charts.queue_by_label(queue), width="stretch")
    chosen = st.selectbox(
        "Image", ids, index=ids.index(linked) if linked in ids else 0, key="rv_media",
        format_func=lambda m: m[:12] + "…",
    )  # fmt: skip
media_id = str(chosen)
if media_id != linked:
    st.query_params["media_id"] = media_id
try:
    meta, found, history = queries.review_image(wh, media_id)
except queries.WarehouseBusy as exc:
    st.warning(str(exc), icon="⏳")
    st.stop()
if meta.empty:
    right.warning(f"Image {media_id[:12]}… is not in the marts (yet): run `trapflow marts`.")
    st.stop()
row = meta.iloc[0]
with right:
    st.markdown(
        f"**{row['site_id']}/{row['camera_id']}** · {row['captured_at']} · `{row['file_path']}`"
    )
    try:
        raw = queries.image_bytes(str(row["source_uri"]), str(row["file_path"]))
        if str(row["file_path"]).lower().endswith(VIDEO) and not auth.is_ranger():
            st.info("Clips are not blurred, so only rangers can play them; the boxes are below.")
        elif str(row["file_path"]).lower().endswith(VIDEO):
            st.video(raw)
            st.caption("A video: its boxes are listed below (frames are not drawn).")
        else:
            drawn = tuple(
                images.Box(
                    b.bbox_x,
                    b.bbox_y,
                    b.bbox_w,
                    b.bbox_h,
                    str(b.category),
                    f"{b.label} {b.confidence:.2f}",
                    bool(b.is_false_positive),
                    bool(b.confidence >= min_box or b.is_counted),
                )
                for b in found.itertuples()
            )
            view = queries.image_view(str(row["source_uri"]), str(row["file_path"]), drawn, blur)
            st.image(view, width="stretch")
    except (OSError, ValueError) as exc:
        st.warning(
            f"Cannot show {row['file_path']} from {row['source_uri']}: {exc}. "
            "Is the source folder (or bucket) still reachable from here?"
        )
    st.dataframe(
        found[["detection_id", "category", "label", "confidence", "label_source", "is_counted",
               "is_false_positive", "model_name", "model_version"]] if not found.empty else found,
        hide_index=True, width="stretch",
    )  # fmt: skip

st.subheader("Your label")
if saved := st.session_state.pop("rv_saved", None):
    st.success(saved)
targets = {"(whole image)": None} | {
    f"{b.label} {b.confidence:.2f} ({b.detection_id[:8]})": str(b.detection_id)
    for b in found.itertuples()
}
with st.form("review_form", clear_on_submit=True):
    target = st.selectbox("Box", list(targets), key="rv_target")
    action = st.radio(
        "Verdict", ["Confirm", "Correct the label", "False positive", "Blank image"],
        horizontal=True, key="rv_action",
    )  # fmt: skip
    new_label = st.text_input("Correct label (species)", key="rv_new_label")
    count = st.number_input("Individuals (optional)", min_value=0, value=0, key="rv_count")
    reviewer = st.text_input("Reviewer", value="biologist", key="rv_reviewer")
    submitted = st.form_submit_button("Save")
if submitted:
    detection_id = targets[target]
    box = found[found["detection_id"] == detection_id].iloc[0] if detection_id else None
    category = str(box["category"]) if box is not None else "animal"
    label: str | None = str(box["label"]) if box is not None else None
    fp = action == "False positive"
    if action == "Correct the label":
        label = new_label.strip().lower() or None
        if not label:
            st.error("Type the correct species in 'Correct label' and save again.")
            st.stop()
    elif action == "Blank image":
        detection_id, category, label = None, "blank", None
    elif fp:
        label = None
    try:
        reviews.write_review(
            wh, media_id=media_id, detection_id=detection_id, category=category, label=label,
            is_false_positive=fp, reviewer=reviewer, count=int(count) or None,
        )  # fmt: skip
        # show the page again, read anew: the boxes and history (views) carry the review now
        st.session_state["rv_saved"] = (
            "Saved: the label shows here now; the population counts include it from the next "
            "`trapflow marts` or run."
        )
        st.rerun()
    except queries.WarehouseBusy as exc:
        st.error(str(exc))

if not history.empty:
    st.subheader("Reviews of this image")
    st.dataframe(history, hide_index=True, width="stretch")
