"""trapflow's dashboard: page setup and navigation only; pages render, queries.py reads."""

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `dashboard` importable by path

from dashboard import auth, queries  # after the path insert above

st.set_page_config(page_title="trapflow", layout="wide")
auth.require_sign_in()  # stops here until signed in; roles: docs/security.md
# Alert links are <dashboard_url>/?media_id=<sha256>: open Review on that image.
linked = "media_id" in st.query_params
page = st.navigation(
    [
        st.Page(
            "app_pages/population.py", title="Population", url_path="population", default=not linked
        ),
        st.Page("app_pages/sites.py", title="Sites", url_path="sites"),
        st.Page("app_pages/human_activity.py", title="Human activity", url_path="human_activity"),
        st.Page("app_pages/review.py", title="Review", url_path="review", default=linked),
        st.Page("app_pages/label.py", title="Label", url_path="label"),
        st.Page("app_pages/time_problems.py", title="Time problems", url_path="time_problems"),
        st.Page("app_pages/health.py", title="Pipeline health", url_path="health"),
    ]
)
try:
    queries.stale_marts_notice(str(queries.warehouse_path()))  # marts older than the last ingest
    page.run()
except queries.WarehouseBusy as exc:  # a writer held the file longer than a read waits
    st.warning(str(exc), icon="⏳")
