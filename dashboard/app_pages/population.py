import streamlit as st

from dashboard import charts, queries

st.title("Daily population")
category = st.selectbox("Category", ["animal", "person", "vehicle"], key="population_category")
df = queries.daily_population(str(queries.warehouse_path()), category)
if df.empty:
    st.info(
        f"No {category} detections in the marts yet. Run `trapflow run --source DIR --once` "
        f"(warehouse: {queries.warehouse_path()})."
    )
else:
    left, mid, right = st.columns(3)
    left.metric("Images", int(df["images"].sum()))
    mid.metric("Sites", int(df["site_id"].nunique()))
    right.metric("Days", int(df["captured_on"].nunique()))
    st.altair_chart(charts.images_per_day(df), use_container_width=True)
    st.dataframe(df, hide_index=True)
