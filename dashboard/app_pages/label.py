"""Label: the labelling loop. One box per burst, least certain first; the crops most like it
beside it, so one click labels the group (one review per box); keyboard shortcuts and undo;
"Train now" fits a head on the labels, re-labels the warehouse and shows its report beside
the last one's. Queries: dashboard/labelling.py (marts only)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import auth, images, labelling, queries, reviews

wh = str(queries.warehouse_path())
SHORTCUT_KEYS = "123456789"
st.title("Label")
if not queries.has_marts(wh):
    st.info(f"No marts yet. Run `trapflow run --source DIR --once` to fill {wh}.")
    st.stop()

with st.sidebar:
    st.header("Labelling")
    site = st.selectbox("Site", ["(any)", *queries.sites(wh)], key="lb_site")
    min_sim = st.slider("Group crops at least this alike", 0.5, 0.99, 0.75, 0.01, key="lb_sim")
    group_max = st.slider("Largest group", 0, 48, 16, 4, key="lb_group_max")
    reviewer = st.text_input("Reviewer", value="biologist", key="lb_reviewer")
    blur = st.toggle("Blur people", value=True, key="lb_blur") if auth.is_ranger() else True
    st.caption(
        "Keys: 1-9 a species, X not an animal, S skip, Z undo, T train now. "
        "Labels count in the marts at once; the head learns them at 'Train now'."
    )


# ---------------------------------------------------------------- train now


def _training() -> None:
    """The last train now: progress while it runs; at its end the page reads anew."""
    state = labelling.training_state(wh)
    status = state.get("status")
    if status in ("starting", "running"):
        st.progress(
            float(state.get("percent", 0.0)) / 100.0,
            text=f"Training: {state.get('step', 'start')} "
            f"{state.get('done', 0)}/{state.get('total', 0) or '…'}",
        )
        st.session_state["lb_training"] = True
        return
    if st.session_state.pop("lb_training", False):  # it just ended: every page reads anew
        st.cache_data.clear()
        st.rerun(scope="app")
    if status == "finished":
        done = state.get("result", {})
        if done.get("trained"):
            st.success(
                f"Trained {done['model_id']}: held-out accuracy {done['accuracy']:.2f} "
                f"(baseline {done['baseline_accuracy']:.2f}) on {done['n_validation']} crops; "
                f"{done['relabelled_photos']} photos re-labelled, marts rebuilt.",
                icon=":material/check_circle:",
            )
        else:
            st.info(
                f"{done.get('model_id')} already knows exactly these labels.",
                icon=":material/info:",
            )
    elif status == "failed":
        st.error(f"Train now failed: {state.get('error', '')}", icon=":material/warning:")


# ---------------------------------------------------------------- actions


def _save(rows: list[reviews.Review], what: str) -> None:
    try:
        label_ids = reviews.write_reviews(wh, rows, reviewer=reviewer)
    except queries.WarehouseBusy as exc:
        st.error(str(exc))
        return
    st.session_state.setdefault("lb_undo", []).append((label_ids, what))
    st.session_state["lb_said"] = f"{what} ({len(label_ids)} review{'s' * (len(label_ids) > 1)})"
    labelling.clear()


def _undo() -> None:
    stack = st.session_state.get("lb_undo", [])
    if not stack:
        st.session_state["lb_said"] = "Nothing to undo."
        return
    label_ids, what = stack.pop()
    try:
        reviews.undo_reviews(wh, label_ids)
    except queries.WarehouseBusy as exc:
        st.error(str(exc))
        stack.append((label_ids, what))
        return
    st.session_state["lb_said"] = f"Undone: {what}"
    labelling.clear()


def _label(boxes: pd.DataFrame, label: str | None) -> None:
    """One review per box: the species, or (None) not an animal."""
    name = (label or "").strip()
    if label is not None and not name:
        st.session_state["lb_said"] = "Type a species name first."
        return
    rows = [
        reviews.Review(str(b.media_id), str(b.detection_id), "animal" if name else None,
                       name or None, is_false_positive=not name)
        for b in boxes.itertuples()
    ]  # fmt: skip
    _save(rows, f"{len(rows)} box{'es' * (len(rows) > 1)} → {name or 'not an animal'}")


def _label_new(boxes: pd.DataFrame) -> None:
    """The typed name, read when the button is pressed (not when the page was drawn)."""
    _label(boxes, str(st.session_state.get("lb_new", "")))
    if "lb_said" in st.session_state and "→" in st.session_state["lb_said"]:
        st.session_state["lb_new"] = ""


def _skip(detection_id: str) -> None:
    st.session_state.setdefault("lb_skipped", set()).add(detection_id)


def _train() -> None:
    if labelling.training_state(wh).get("status") in ("starting", "running"):
        return
    labelling.start_training(wh)
    st.session_state["lb_training"] = True  # the page reruns now, and polls while it runs


# ---------------------------------------------------------------- the page


def _box(row: Any, caption: str) -> images.Box:
    return images.Box(row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h, "animal", caption)


def _people(media_ids: tuple[str, ...]) -> dict[str, list[images.Box]]:
    found = queries.load(labelling.people, wh, media_ids) if media_ids else pd.DataFrame()
    out: dict[str, list[images.Box]] = {}
    for p in found.itertuples():
        out.setdefault(str(p.media_id), []).append(
            images.Box(p.bbox_x, p.bbox_y, p.bbox_w, p.bbox_h, "person", "", is_drawn=False)
        )
    return out


def _report(col: Any, report: pd.Series, title: str) -> None:
    col.markdown(
        f"**{title}: {report['model_id']}** · {report['trained_at']:%Y-%m-%d %H:%M} · "
        f"accuracy {report['accuracy']:.2f} (baseline {report['baseline_accuracy']:.2f}), "
        f"macro F1 {report['macro_f1']:.2f} · {report['n_train']} train / "
        f"{report['n_validation']} held out ({report['split']} split)"
    )
    col.dataframe(labelling.per_class(report), hide_index=True, width="stretch")
    col.caption("Confusion matrix: rows true species, columns predicted.")
    col.dataframe(labelling.confusion(report), width="stretch")


# polls every second while a training runs (a fragment: only this part reruns), else not at all
_running = labelling.training_state(wh).get("status") in ("starting", "running")
st.fragment(run_every=1.0 if _running else None)(_training)()
if said := st.session_state.pop("lb_said", None):
    st.toast(said)

todo, open_bursts, group, stats = labelling.screen(
    wh, None if site == "(any)" else str(site),
    tuple(sorted(st.session_state.get("lb_skipped", set()))), float(min_sim), group_max,
)  # fmt: skip
names = [n for n in queries.labels(wh, "animal") if n.lower() not in ("animal", "unidentified")]

top = st.columns([3, 1, 1])
top[0].caption(
    f"{open_bursts} bursts to label; "
    + (
        f"{int(stats['labelled'].iloc[0])} of {int(stats['boxes'].iloc[0])} animal boxes "
        f"labelled, {int(stats['searchable'].iloc[0])} can be grouped."
        if not stats.empty
        else ""
    )
    + " Boxes without a cached embedding are grouped after `trapflow embed` or Train now."
)
top[1].button("Undo", key="lb_undo_btn", shortcut="Z", on_click=_undo, width="stretch")
top[2].button(
    "Train now", key="lb_train", shortcut="T", on_click=_train, type="primary", width="stretch",
    disabled=_running,
)  # fmt: skip

if todo.empty:
    st.success("Nothing left to label here: every burst has a label. Train now to use them.")
else:
    item = todo.iloc[0]
    crowd = _people(tuple({str(item["media_id"]), *map(str, group.get("media_id", []))}))
    left, right = st.columns([3, 2])
    with left:
        now = str(item["label"])
        sure = item["classifier_probability"]
        st.markdown(
            f"**{item['site_id']}/{item['camera_id']}** · {item['captured_at']} · now "
            f"**{now}**" + (f" ({sure:.2f} sure)" if pd.notna(sure) else " (no head yet)")
        )
        try:
            view = queries.image_view(
                str(item["source_uri"]), str(item["file_path"]),
                (*crowd.get(str(item["media_id"]), []), _box(item, now)), blur,
            )  # fmt: skip
            st.image(view, width="stretch")
        except (OSError, ValueError) as exc:
            st.warning(f"Cannot show {item['file_path']}: {exc}")
    chosen = group
    with right:
        if group.empty:
            st.caption("No unlabelled crop this alike (or this box has no cached embedding).")
        else:
            st.caption(f"{len(group)} similar crops: untick those that are not the same species.")
            keep = []
            cells = st.columns(4)
            for i, g in enumerate(group.itertuples()):
                cell = cells[i % 4]
                try:
                    data = queries.image_bytes(str(g.source_uri), str(g.file_path))
                    thumb = images.crop(
                        data, _box(g, ""), crowd.get(str(g.media_id), []), blur_people=blur
                    )
                    cell.image(thumb, caption=f"{g.similarity:.2f}", width="stretch")
                except (OSError, ValueError):
                    cell.caption("(unreadable)")
                if cell.checkbox("same", value=True, key=f"lb_g_{item['detection_id']}_{i}"):
                    keep.append(i)
            chosen = group.iloc[keep]
    boxes = pd.concat([todo.iloc[[0]], chosen], ignore_index=True)[["media_id", "detection_id"]]

    st.subheader(f"Label {len(boxes)} box{'es' * (len(boxes) > 1)} as")
    buttons = st.columns(min(max(len(names[:9]), 1), 9))
    for i, name in enumerate(names[:9]):
        buttons[i].button(
            f"{name}", key=f"lb_sp_{i}", shortcut=SHORTCUT_KEYS[i], on_click=_label,
            args=(boxes, name), width="stretch",
        )  # fmt: skip
    new_col, other, skip_col = st.columns([3, 1, 1])
    new_col.text_input("Another species", key="lb_new", placeholder="e.g. Sun Bear")
    new_col.button("Label as this species", key="lb_new_btn", on_click=_label_new, args=(boxes,))
    other.button("Not an animal", key="lb_fp", shortcut="X", on_click=_label, args=(boxes, None))
    skip_col.button(
        "Skip", key="lb_skip", shortcut="S", on_click=_skip, args=(str(item["detection_id"]),)
    )

reports = queries.load(labelling.head_reports, wh)
if not reports.empty:
    st.subheader("The head's report")
    cols = st.columns(2)
    _report(cols[0], reports.iloc[0], "Newest")
    if len(reports) > 1:
        _report(cols[1], reports.iloc[1], "Before it")
    else:
        cols[1].caption("The first head trained here: nothing to compare with yet.")
