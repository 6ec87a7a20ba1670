"""Sites: a map of deployments with counts; sensitive species' coordinates generalised."""

import streamlit as st

from dashboard import auth, charts, queries

wh = str(queries.warehouse_path())
st.title("Sites")
# rangers may switch to exact locations (off by default, e.g. for a shared screen)
exact = auth.is_ranger() and st.toggle("Exact locations (ranger)", value=False, key="sites_exact")
dep = queries.load(queries.deployments, wh, exact)
if dep.empty:
    st.info(f"No deployments in the marts yet. Run `trapflow run --source DIR --once` ({wh}).")
    st.stop()

sensitive, grid_km = queries.privacy()
a, b, c = st.columns(3)
a.metric("Deployments", len(dep))
b.metric("With coordinates", int(dep["latitude"].notna().sum()))
c.metric(
    "Sensitive, shown exact" if exact else "Generalised (sensitive species)",
    int(dep["is_sensitive" if exact else "is_generalised"].sum()),
)
deck = charts.deployments_map(dep, queries.map_style())
if deck is None:
    st.info(
        "No deployment has coordinates: add GPS to the images' EXIF or latitude/longitude to "
        "deployments.csv (TRAPFLOW_DEPLOYMENTS_CSV)."
    )
else:
    st.pydeck_chart(deck)
if exact:
    st.warning(
        f"Exact coordinates of sensitive species ({', '.join(sensitive[:4])}, ...) are shown, "
        "in the map and the table: ranger view, do not share this screen or the table's CSV.",
        icon="📍",
    )
else:
    st.caption(
        f"Deployments that recorded a sensitive species ({', '.join(sensitive[:4])}, ...) are "
        f"shown at the centre of their {grid_km:g} km grid cell, here and in every table or "
        "export."
    )
per_site = queries.load(queries.site_events, wh)
if not per_site.empty:
    st.subheader("Independent events per site")
    st.altair_chart(charts.events_per_site(per_site), width="stretch")
st.dataframe(dep, hide_index=True, width="stretch")
