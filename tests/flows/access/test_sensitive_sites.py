"""Which sites are sensitive is dbt's (marts.live_sites); the dashboard's Sites table follows it."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.store.warehouse import open_file

EXACT = (-1.234567, 36.765432)


def _marts(path: Path, with_live_sites: bool) -> None:
    with open_file(path) as con:
        con.execute("create schema marts")
        con.execute(
            "create table marts.fct_daily_population as select * from (values "
            "(date '2024-05-01', 'S1', 'animal', 'impala', 2), "
            "(date '2024-05-02', 'S2', 'animal', 'black rhinoceros', 3)) "
            "as t(captured_on, site_id, category, label, events)"
        )
        con.execute(
            "create table marts.dim_deployments as select * from (values "
            "('S1-c1', 'S1', 'c1', date '2024-05-01', date '2024-05-09', ?, ?, 10, 8., 8., true), "
            "('S2-c1', 'S2', 'c1', date '2024-05-01', date '2024-05-09', ?, ?, 10, 8., 8., true)"
            ") as t(deployment_id, site_id, camera_id, deployment_start, deployment_end, "
            "latitude, longitude, images, deployed_days, trap_nights, is_inferred)",
            [*EXACT, *EXACT],
        )
        if with_live_sites:  # a reviewer's rhino at S1, seen live, before the next build
            con.execute(
                "create view marts.live_sites as select * from (values ('S1', true), "
                "('S2', false)) as t(site_id, is_sensitive)"
            )


@pytest.mark.parametrize("with_live_sites", [True, False])
def test_the_sites_table_generalises_the_sites_dbt_marks_sensitive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_live_sites: bool
) -> None:
    import streamlit as st

    from dashboard import queries

    warehouse = tmp_path / "w.duckdb"
    _marts(warehouse, with_live_sites)
    monkeypatch.setenv("TRAPFLOW_SENSITIVE_GRID_KM", "10")
    st.cache_data.clear()
    table = queries.deployments(str(warehouse)).set_index("site_id")
    # S2's mart shows a rhino: sensitive either way; S1 only by dbt's live verdict
    assert bool(table.loc["S2", "is_sensitive"]) and bool(table.loc["S2", "is_generalised"])
    assert bool(table.loc["S1", "is_sensitive"]) is with_live_sites
    assert (table.loc["S1", "latitude"] == EXACT[0]) is not with_live_sites
    exact = queries.deployments(str(warehouse), exact=True).set_index("site_id")
    assert exact.loc["S1", "latitude"] == EXACT[0] and not exact["is_generalised"].any()
