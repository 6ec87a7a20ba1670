"""flows/store/deployments.py: deployments.csv -> raw.deployments, on a real DuckDB file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from flows.store.deployments import DeploymentsFileError, load_deployments_csv
from flows.store.warehouse import ensure_schema, open_file

GOOD = """\
deploymentID,locationID,cameraID,deploymentStart,deploymentEnd,latitude,longitude,clockOffset
dep1,S1,C1,2024-06-01T09:30:00+03:00,2024-06-20,-1.5,36.8,-120
dep2,S1,C2,2024-06-01 10:00,2024-06-21 16:00,,,
"""


def _con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    con = open_file(tmp_path / "w.duckdb")
    ensure_schema(con)
    return con


def test_good_rows_load_with_offsets_and_whole_days(tmp_path: Path) -> None:
    csv = tmp_path / "deployments.csv"
    csv.write_text(GOOD, encoding="utf-8")
    con = _con(tmp_path)
    result = load_deployments_csv(con, csv)
    assert (result.loaded, result.errors, result.changed) == (2, [], True)
    rows = con.execute(
        "select deployment_id, deployment_start, deployment_end, utc_offset, clock_offset_s,"
        " latitude from raw.deployments order by 1"
    ).fetchall()
    assert rows == [
        ("dep1", datetime(2024, 6, 1, 9, 30), datetime(2024, 6, 20, 23, 59, 59, 999999),
         "+03:00", -120.0, -1.5),
        ("dep2", datetime(2024, 6, 1, 10), datetime(2024, 6, 21, 16), None, 0.0, None),
    ]  # fmt: skip
    again = load_deployments_csv(con, csv)  # re-loading never duplicates
    assert (again.loaded, again.changed) == (2, False)
    assert con.execute("select count(*) from raw.deployments").fetchone() == (2,)
    csv.write_text(GOOD.splitlines()[0] + "\n" + GOOD.splitlines()[1] + "\n", encoding="utf-8")
    shrunk = load_deployments_csv(con, csv)  # the file is the complete list
    assert (shrunk.loaded, shrunk.removed, shrunk.changed) == (1, 1, True)


def test_bad_rows_are_skipped_with_what_to_fix(tmp_path: Path) -> None:
    csv = tmp_path / "deployments.csv"
    csv.write_text(
        "deployment_id,site_id,camera_id,deployment_start,deployment_end,latitude,longitude,utc_offset\n"
        "ok,S1,C1,2024-06-01,2024-06-10,,,+02:00\n"
        "ok,S1,C2,2024-06-01,2024-06-10,,,\n"
        "late,S1,C3,2024-06-10,2024-06-01,,,\n"
        "badtime,S1,C4,yesterday,2024-06-01,,,\n"
        "overlap,S1,C1,2024-06-05,2024-06-12,,,\n"
        "lat,S2,C1,2024-06-01,2024-06-02,91,10,\n"
        "zone,S2,C2,2024-06-01,2024-06-02,,,Africa/Nairobi\n"
        ",S2,C3,2024-06-01,2024-06-02,,,\n",
        encoding="utf-8",
    )
    con = _con(tmp_path)
    with pytest.raises(DeploymentsFileError) as caught:
        load_deployments_csv(con, csv)  # a bad row loads nothing
    assert con.execute("select count(*) from raw.deployments").fetchone() == (0,)
    assert "7 bad row(s), nothing was loaded" in str(caught.value)
    assert "\n" not in str(caught.value)  # one line
    messages = "\n".join(caught.value.errors)
    for expected in (
        "line 3: deployment_id 'ok' already used on line 2",
        "line 4: deployment_end 2024-06-01 23:59:59.999999 is before deployment_start",
        "line 5: deployment_start 'yesterday' is not an ISO 8601",
        "line 6: overlaps deployment 'ok' (line 2)",
        "line 7: latitude '91' must be between -90.0 and 90.0",
        "line 8: utc_offset 'Africa/Nairobi' is not an offset",
        "line 9: deployment_id is empty",
    ):
        assert expected in messages


def test_unusable_files_say_what_to_do(tmp_path: Path) -> None:
    con = _con(tmp_path)
    with pytest.raises(DeploymentsFileError, match="does not exist"):
        load_deployments_csv(con, tmp_path / "missing.csv")
    csv = tmp_path / "d.csv"
    csv.write_text("site,camera\nS1,C1\n", encoding="utf-8")
    with pytest.raises(DeploymentsFileError, match="deployment_id, deployment_start"):
        load_deployments_csv(con, csv)
