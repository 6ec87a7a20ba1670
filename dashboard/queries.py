"""Every query the dashboard runs. Marts only; short-lived read-only connections, cached."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd
import streamlit as st


def warehouse_path() -> Path:
    return Path(os.environ.get("TRAPFLOW_WAREHOUSE", ".trapflow/warehouse.duckdb")).absolute()


def _read(warehouse: str, sql: str, params: list[object] | None = None) -> pd.DataFrame:
    path = Path(warehouse)
    if not path.exists():
        return pd.DataFrame()
    with duckdb.connect(str(path), read_only=True) as con:
        exists = con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'marts' and table_name = 'fct_daily_population'"
        ).fetchone()
        if not exists or not exists[0]:
            return pd.DataFrame()
        return con.execute(sql, params or []).df()


@st.cache_data(ttl=60, show_spinner=False)
def daily_population(warehouse: str, category: str | None = None) -> pd.DataFrame:
    """One row per day x site x category x label (marts.fct_daily_population)."""
    if category:
        return _read(
            warehouse,
            "select * from marts.fct_daily_population where category = ? order by captured_on",
            [category],
        )
    return _read(warehouse, "select * from marts.fct_daily_population order by captured_on")
