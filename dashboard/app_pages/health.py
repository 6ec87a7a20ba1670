"""Pipeline health: runs, images/s, quarantined files with reasons, model versions."""

import streamlit as st

from dashboard import charts, queries

wh = str(queries.warehouse_path())
st.title("Pipeline health")
runs = queries.load(queries.runs, wh)
if runs.empty:
    st.info(
        f"No runs in the marts of {wh} yet. Run `trapflow run --source DIR --once` (or "
        "`trapflow marts`, if runs were made without building the marts)."
    )
    st.stop()

last = runs.iloc[0]
a, b, c, d = st.columns(4)
a.metric("Last run", str(last["status"]), help=str(last["started_at"]))
b.metric("Runs", len(runs))
c.metric("Images processed", int(runs["images_processed"].fillna(0).sum()))
rate = last["images_per_s"]
d.metric("Images/s (last run)", "-" if rate != rate or rate is None else f"{rate:.2f}")
st.markdown(f"**Model versions (last run):** {last['model_versions'] or '-'}")
st.subheader("Throughput per run")
st.altair_chart(charts.throughput(runs), width="stretch")
st.dataframe(runs, hide_index=True, width="stretch")

st.subheader("Quarantined files")
quarantined = queries.load(queries.quarantine, wh)
if quarantined.empty:
    st.success("No file quarantined.")
else:
    st.altair_chart(charts.quarantine_reasons(quarantined), width="stretch")
    st.dataframe(quarantined, hide_index=True, width="stretch")
