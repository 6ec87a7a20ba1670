"""trapflow's dashboard: page setup and navigation only; pages render, queries.py reads."""

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `dashboard` importable by path

st.set_page_config(page_title="trapflow", layout="wide")
page = st.navigation([st.Page("app_pages/population.py", title="Population", default=True)])
page.run()
