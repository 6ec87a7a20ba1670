"""Time problems: cameras whose clocks look wrong (marts.fct_time_problems) and the shift that
would fix each; Accept writes one review.clock_shifts row and rebuilds the marts in a process of
its own (``trapflow marts``), and the marts read stale until it has finished."""

import pandas as pd
import streamlit as st

from dashboard import auth, labelling, queries, reviews

wh = str(queries.warehouse_path())
KINDS = {
    "exif_vs_ocr": "EXIF time vs the info bar's printed time",
    "exif_vs_file_time": "EXIF time vs the file's time",
    "day_night_swap": "colour photos at night, IR photos by day (12 hours off)",
}


def _accept(problem: pd.Series, accepted_by: str) -> None:
    reviews.accept_clock_shift(wh, problem, accepted_by=accepted_by)
    labelling.start_marts_rebuild(wh)
    st.session_state["tp_accepted"] = (
        f"Accepted {problem['proposed_shift_text']} for {problem['site_id']}/"
        f"{problem['camera_id']}. The marts are being rebuilt (`trapflow marts`); until it "
        "has finished they read stale and still show the old times."
    )


st.title("Time problems")
if not queries.has_marts(wh):
    st.info(
        "No marts yet. Run `trapflow run --source DIR --once` (or `trapflow marts`) "
        f"to fill the warehouse {wh}."
    )
    st.stop()
st.caption(
    "Cameras whose clocks disagree with the evidence in their photos (marts.fct_time_problems): "
    "the info bar's printed time, the file's time, or the sun (greyscale IR photos by day and "
    "colour photos at night). Accepting adds the proposed shift to the camera's time of every "
    "photo of that site and camera, as a camtrapR timeShiftTable row would."
)
if notice := st.session_state.pop("tp_accepted", None):
    st.success(notice)
if labelling.training_state(wh, "marts").get("status") in ("starting", "running"):
    st.info("Rebuilding the marts…", icon="🕒")
    st.session_state["tp_rebuilding"] = True
elif st.session_state.pop("tp_rebuilding", False):  # it just ended: every page reads anew
    st.cache_data.clear()
problems = queries.load(queries.time_problems, wh)
if problems.empty:
    st.success("No clock problems found in the photos' times.")
    st.stop()
freshness = queries.load(queries.marts_freshness, wh)
# an accepted shift (or a changed station table) the marts have not applied yet: the proposals
# shown are the old build's, and accepting one again would add its shift twice
pending = not freshness.empty and bool(freshness["station_tables_changed"].iloc[0])
if pending:
    st.warning(
        "A clock shift or station table changed since the marts were built: these proposals do "
        "not include it yet. Accept more once the rebuild has finished (`trapflow marts`).",
        icon="⏳",
    )
ident = auth.identity()
accepted_by = (
    ident.name
    if ident and ident.via != "none"
    else st.text_input("Accepted by", value="biologist", key="tp_accepted_by")
)
for _, problem in problems.iterrows():
    with st.container(border=True):
        left, right = st.columns([4, 1])
        left.markdown(
            f"**{problem['site_id']} / {problem['camera_id']}**: {KINDS[problem['kind']]}. "
            f"{problem['photos_disagreeing']} of {problem['photos_checked']} photos disagree; "
            f"{problem['photos_fixed_by_shift']} agree after shifting by "
            f"`{problem['proposed_shift_text']}` ({problem['proposed_shift_s']} s)."
        )
        right.button(
            "Accept", key=f"tp_accept_{problem['time_problem_id']}", type="primary",
            on_click=_accept, args=(problem, accepted_by), disabled=pending,
        )  # fmt: skip
st.dataframe(problems.drop(columns=["time_problem_id"]), hide_index=True, width="stretch")
