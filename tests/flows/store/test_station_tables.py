"""Station tables, problem periods and time shifts on camtrapR's own sample.

Inputs no one here wrote: camtrapR's ``camtraps`` station table and ``timeShiftTable``
(../shared/data/camtrapr/, from the camtrapR package) and its tagged sample photos. camtrapR's
documentation (cameraOperation, since 2.1): with dates only, setup and retrieval are at 12:00
(0.5 of a day), a problem runs from 00:00 of its first day to the end of its last day, capped
at retrieval. So StationA (02/04 -> 14/05/2009) has 42 trap-nights, StationB (03/04 -> 16/05)
43, StationC (04/04 -> 17/05, problem 12/05 -> 17/05) 37.5; camtrapR's camop_problem has 0 on
StationC's 12..17 May. timeShiftImages: StationA "1:0:0 0:0:0" with "-" is a calendar year
back, StationB "0:0:0 12:0:0" with "+" twelve hours on.
"""

from __future__ import annotations

import csv
import shutil
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.store.warehouse import open_file

pytestmark = pytest.mark.timeout(600)
STATIONS = ["--date-format", "dmy", "--x-column", "utm_x", "--y-column", "utm_y",
            "--crs", "EPSG:32650", "--timezone", "Asia/Kuching"]  # fmt: skip


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.cli import _app as cli_app

    monkeypatch.setattr(cli_app.console, "_width", 200)
    monkeypatch.setattr(cli_app.err, "_width", 200)


@pytest.fixture(scope="module")
def camtrapr(shared_dir: Path) -> Path:
    return shared_dir / "data" / "camtrapr"


@pytest.fixture
def warehouse(camtrapr_run: Path, tmp_path: Path) -> Path:
    own = tmp_path / "w.duckdb"
    shutil.copy(camtrapr_run, own)
    return own


def rows(warehouse: Path, sql: str) -> list[tuple[Any, ...]]:
    with open_file(warehouse, read_only=True) as con:
        return con.execute(sql).fetchall()


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_camtrapr_station_table_gives_camtrapr_trap_nights(
    warehouse: Path, camtrapr: Path, tmp_path: Path
) -> None:
    res = cli("import", "stations", str(camtrapr / "camtraps.csv"), *STATIONS,
              "--warehouse", str(warehouse))  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "(CTtable): 3 deployments, 1 problem periods" in res.output
    assert "rebuilt" in res.output and "warning" not in res.output
    got = rows(warehouse, "select deployment_id, camera_id, effort_start, effort_end, trap_nights, "
               "problem_periods, timezone from marts.dim_deployments order by 1")  # fmt: skip
    assert got == [
        ("StationA", "*", datetime(2009, 4, 2, 12), datetime(2009, 5, 14, 12), 42.0, 0,
         "Asia/Kuching"),
        ("StationB", "*", datetime(2009, 4, 3, 12), datetime(2009, 5, 16, 12), 43.0, 0,
         "Asia/Kuching"),
        ("StationC", "*", datetime(2009, 4, 4, 12), datetime(2009, 5, 17, 12), 37.5, 1,
         "Asia/Kuching"),
    ]  # fmt: skip
    # the operation matrix: half days at setup/retrieval, StationC's problem days 0, no
    # downtime inferred (the table has problem columns: it says when cameras were down)
    op = dict(
        ((site, day), (effort, reason))
        for site, day, effort, reason in rows(
            warehouse, "select site_id, day, effort, down_reason from marts.fct_camera_operation"
        )
    )
    assert op[("StationA", date(2009, 4, 2))] == (0.5, None)
    assert op[("StationA", date(2009, 4, 3))] == (1.0, None)
    assert op[("StationA", date(2009, 5, 14))] == (0.5, None)
    assert [op[("StationC", date(2009, 5, d))] for d in range(11, 18)] == [
        (1.0, None),
        *[(0.0, "problem")] * 6,
    ]
    assert not rows(warehouse, "select 1 from marts.fct_camera_operation "
                    "where is_downtime_inferred")  # fmt: skip
    # UTM zone 50N -> WGS84: Sabah, Borneo
    lat, lon = rows(warehouse, "select latitude, longitude from marts.dim_deployments "
                    "where deployment_id = 'StationA'")[0]  # fmt: skip
    assert lat == pytest.approx(5.4644, abs=1e-3) and lon == pytest.approx(117.2347, abs=1e-3)
    # the daily marts carry the same effort: site trap-nights = the station's effort
    assert rows(warehouse, "select sum(trap_nights) from (select distinct captured_on, "
                "site_id, trap_nights from marts.fct_daily_population) where site_id = "
                "'StationC'") == [(37.5,)]  # fmt: skip
    # RAI intervals on a station-wide table (effort rows are camera '*', photos' cameras are
    # real): each station's events sit in its own effort, so the between-deployment variance
    # is that of the stations' RAIs as the daily mart gives them
    per_station = rows(warehouse, "select 100.0 * sum(events) / sum(trap_nights) from "
                       "marts.fct_daily_population where label = 'Leopard Cat' and captured_on "
                       "between '2009-04-01' and '2009-04-30' group by site_id")  # fmt: skip
    assert len(per_station) == 3
    (variance,) = rows(warehouse, "select between_deployment_variance from "
                       "marts.fct_rai_intervals where site_id = '(all sites)' and label = "
                       "'Leopard Cat' and period_start = '2009-04-01'")  # fmt: skip
    values = [v for (v,) in per_station]
    mean = sum(values) / 3
    assert variance[0] == pytest.approx(sum((v - mean) ** 2 for v in values) / 2)
    # the station table's IANA zone gives the export its offsets (Asia/Kuching: +08:00)
    package = tmp_path / "package"
    res = cli("export", "camtrapdp", "--out", str(package), "--warehouse", str(warehouse))
    assert res.exit_code == 0, res.output
    with (package / "media.csv").open(newline="") as fh:
        stamps = [r["timestamp"] for r in csv.DictReader(fh)]
    assert stamps and all(s.endswith("+08:00") for s in stamps), stamps[:3]
    with (package / "deployments.csv").open(newline="") as fh:
        starts = {r["deploymentID"]: r["deploymentStart"] for r in csv.DictReader(fh)}
    assert starts["StationA"] == "2009-04-02T12:00:00+08:00"
    # re-loading adds nothing and rebuilds nothing
    again = cli("import", "stations", str(camtrapr / "camtraps.csv"), *STATIONS,
                "--warehouse", str(warehouse))  # fmt: skip
    assert again.exit_code == 0 and "nothing changed" in again.output
    assert "rebuilt" not in again.output
    assert rows(warehouse, "select count(*) from raw.deployments") == [(3,)]
    assert rows(warehouse, "select count(*) from raw.deployment_problems") == [(1,)]


def test_a_changed_problem_period_is_stale_until_rebuilt(
    warehouse: Path, camtrapr: Path, tmp_path: Path
) -> None:
    table = tmp_path / "camtraps.csv"
    shutil.copy(camtrapr / "camtraps.csv", table)
    assert cli("import", "stations", str(table), *STATIONS,
               "--warehouse", str(warehouse)).exit_code == 0  # fmt: skip
    assert rows(warehouse, "select is_stale from marts.marts_freshness") == [(False,)]
    text = table.read_text(encoding="utf-8")
    text = text.replace("12/05/2009,17/05/2009", "14/05/2009,17/05/2009")
    table.write_text(text, encoding="utf-8")
    res = cli("import", "stations", str(table), *STATIONS, "--no-build",
              "--warehouse", str(warehouse))  # fmt: skip
    assert res.exit_code == 0 and "nothing changed" not in res.output
    assert rows(warehouse, "select is_stale, station_tables_changed from marts.marts_freshness") \
        == [(True, True)]  # fmt: skip
    res = cli("import", "stations", str(table), *STATIONS, "--warehouse", str(warehouse))
    assert "nothing changed" in res.output  # already loaded: build it
    from flows.cli.stations import rebuild_station_marts
    from flows.settings import load_settings

    rebuild_station_marts(load_settings(warehouse=warehouse))
    assert rows(warehouse, "select is_stale from marts.marts_freshness") == [(False,)]
    # StationC: 2 more working days (12, 13 May)
    assert rows(warehouse, "select trap_nights from marts.dim_deployments "
                "where deployment_id = 'StationC'") == [(39.5,)]  # fmt: skip


def test_camtrapr_time_shift_table(warehouse: Path, camtrapr: Path) -> None:
    cli("import", "stations", str(camtrapr / "camtraps.csv"), *STATIONS, "--no-build",
        "--warehouse", str(warehouse))  # fmt: skip
    res = cli("import", "timeshifts", str(camtrapr / "timeShiftTable.csv"),
              "--warehouse", str(warehouse))  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "2 clock shifts" in res.output
    shifted = dict(
        (name, (camera, true))
        for name, camera, true in rows(
            warehouse,
            "select m.file_name, l.camera_captured_at, l.captured_at "
            "from intermediate.int_media_located l join raw.media m using (media_id)",
        )
    )
    assert shifted["StationA__2009-04-10__05-07-00(1).JPG"] == (
        datetime(2009, 4, 10, 5, 7),
        datetime(2008, 4, 10, 5, 7),
    )  # a calendar year back
    assert shifted["StationB__2009-04-05__23-13-00(1).JPG"] == (
        datetime(2009, 4, 5, 23, 13),
        datetime(2009, 4, 6, 11, 13),
    )  # 12 hours on
    assert (
        shifted["StationC__2009-04-06__03-00-00(1).JPG"][0]
        == (shifted["StationC__2009-04-06__03-00-00(1).JPG"][1])
    )  # no shift for StationC
    # a year back puts StationA's 5 photos before its deployment: not placed, not counted
    assert rows(warehouse, "select deployment_id, images from marts.dim_deployments "
                "order by 1") == [("StationA", 0), ("StationB", 12), ("StationC", 24)]  # fmt: skip
    again = cli("import", "timeshifts", str(camtrapr / "timeShiftTable.csv"),
                "--warehouse", str(warehouse))  # fmt: skip
    assert "nothing changed" in again.output
    assert rows(warehouse, "select count(*) from raw.clock_shifts") == [(2,)]


BAD_TABLES = {
    "problem before setup": (
        "Station,Setup_date,Retrieval_date,Problem1_from,Problem1_to\n"
        "S1,02/04/2009,14/05/2009,01/04/2009,03/04/2009\n",
        "line 2 (station S1): Problem1 begins (2009-04-01 00:00:00) before setup",
    ),
    "problem after retrieval": (
        "Station,Setup_date,Retrieval_date,Problem1_from,Problem1_to\n"
        "S1,02/04/2009,14/05/2009,10/05/2009,15/05/2009\n",
        "line 2 (station S1): Problem1 ends (2009-05-15 00:00:00) after retrieval",
    ),
    "duplicate station": (
        "Station,Setup_date,Retrieval_date\nS1,02/04/2009,14/05/2009\nS1,02/04/2009,14/05/2009\n",
        "line 3 (station S1): station already on line 2; give a camera or session column",
    ),
    "half a problem": (
        "Station,Setup_date,Retrieval_date,Problem1_from,Problem1_to\n"
        "S1,02/04/2009,14/05/2009,10/05/2009,\n",
        "line 2 (station S1): Problem1_from is set but Problem1_to is empty",
    ),
    "setup is retrieval": (
        "Station,Setup_date,Retrieval_date\nS1,02/04/2009,02/04/2009\n",
        "line 2 (station S1): setup is identical to retrieval",
    ),
    "wrong date format": (
        "Station,Setup_date,Retrieval_date\nS1,2009-04-02,2009-05-14\n",
        "does not match the date format 'dmy'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_bad_station_tables_say_one_line_and_load_nothing(
    case: str, warehouse: Path, camtrapr: Path, tmp_path: Path
) -> None:
    assert cli("import", "stations", str(camtrapr / "camtraps.csv"), *STATIONS, "--no-build",
               "--warehouse", str(warehouse)).exit_code == 0  # fmt: skip
    before = rows(warehouse, "select * exclude (loaded_at) from raw.deployments order by 1")
    text, expected = BAD_TABLES[case]
    bad = tmp_path / "bad.csv"
    bad.write_text(text, encoding="utf-8")
    res = cli("import", "stations", str(bad), "--date-format", "dmy", "--warehouse",
              str(warehouse))  # fmt: skip
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], res.output
    assert "nothing was loaded" in lines[0] and "Traceback" not in res.output
    assert rows(warehouse, "select * exclude (loaded_at) from raw.deployments order by 1") == before


def test_gps_placeholders_are_ignored_and_reported(warehouse: Path) -> None:
    """Moultrie cameras write (0, 0); some write one fake value everywhere (1.0225, 1.0225)."""
    with open_file(warehouse) as con:
        ids = [r[0] for r in con.execute("select media_id from raw.media order by 1").fetchall()]
        site_of = dict(con.execute("select media_id, site_id from raw.media").fetchall())
        zero, fake_a = ids[0], ids[1]
        fake_b = next(m for m in ids[2:] if site_of[m] != site_of[fake_a])
        con.execute("update raw.media set latitude = 0, longitude = 0 where media_id = ?", [zero])
        con.execute("update raw.media set latitude = 1.0225, longitude = 1.0225 "
                    "where media_id in (?, ?)", [fake_a, fake_b])  # fmt: skip
    from flows.cli.stations import rebuild_station_marts
    from flows.settings import load_settings

    rebuild_station_marts(load_settings(warehouse=warehouse))
    got = rows(warehouse, "select reason, count(distinct site_id), sum(photos)::int "
               "from marts.fct_gps_placeholders group by 1 order by 1")  # fmt: skip
    assert got == [("shared", 2, 2), ("zero", 1, 1)]
    placed = "select count(*) from marts.dim_media where latitude is not null"
    assert rows(warehouse, placed) == [(0,)]
    # no inferred deployment is put at Null Island or at the fake value
    assert rows(warehouse, "select count(*) from marts.dim_deployments "
                "where latitude is not null") == [(0,)]  # fmt: skip
    assert rows(warehouse, "select count(*) from marts.live_media "
                "where place_latitude is not null") == [(0,)]  # fmt: skip


def test_an_iana_zone_gives_each_instant_its_own_offset() -> None:
    """Summer time: one Berlin deployment has photos at +01:00 and at +02:00."""
    from zoneinfo import ZoneInfo

    from flows.formats.camtrapdp import _stamp

    berlin = ZoneInfo("Europe/Berlin")
    assert _stamp(datetime(2024, 1, 15, 6, 30), "+00:00", berlin) == "2024-01-15T06:30:00+01:00"
    assert _stamp(datetime(2024, 7, 15, 6, 30), "+00:00", berlin) == "2024-07-15T06:30:00+02:00"
    assert _stamp(datetime(2024, 7, 15, 6, 30), "-03:00") == "2024-07-15T06:30:00-03:00"


def test_cameras_with_exact_times_give_exact_fractions(warehouse: Path, tmp_path: Path) -> None:
    """camtrapR with cameraCol and date-times (dateFormat "ymd HM"): per camera, and the exact
    share of each day: setup at 18:00 is 0.25 of its day, a problem from 06:00 to 18:00 of the
    next day leaves 0.25 + 0.25. A listed camera with no photos still has effort."""
    table = tmp_path / "cameras.csv"
    table.write_text(
        "Station,Camera,Setup_date,Retrieval_date,Problem1_from,Problem1_to\n"
        "StationA,StationA,2009-04-02 18:00,2009-05-14 06:00,,\n"
        "StationA,CamB,2009-04-10 00:00,2009-04-20 12:00,2009-04-12 06:00,2009-04-13 18:00\n",
        encoding="utf-8",
    )
    res = cli("import", "stations", str(table), "--date-format", "ymd HM",
              "--camera-column", "Camera", "--warehouse", str(warehouse))  # fmt: skip
    assert res.exit_code == 0, res.output
    got = dict(rows(warehouse, "select camera_id, trap_nights from marts.dim_deployments "
                    "where site_id = 'StationA'"))  # fmt: skip
    assert got == {"StationA": pytest.approx(41.5), "CamB": pytest.approx(9.0)}
    op = dict(rows(warehouse, "select day, effort from marts.fct_camera_operation "
                   "where site_id = 'StationA' and camera_id = 'CamB'"))  # fmt: skip
    assert [op[date(2009, 4, d)] for d in (10, 11, 12, 13, 14, 20)] == [
        1.0,
        1.0,
        0.25,
        0.25,
        1.0,
        0.5,
    ]
    # the site's daily trap-nights add its cameras' effort
    nights = dict(rows(warehouse, "select distinct captured_on, trap_nights from "
                       "marts.fct_daily_population where site_id = 'StationA'"))  # fmt: skip
    assert nights[date(2009, 4, 12)] == pytest.approx(1.25)
    assert nights[date(2009, 4, 2)] == pytest.approx(0.25)


def test_station_names_that_miss_the_photos_are_warned_about(
    warehouse: Path, tmp_path: Path
) -> None:
    """A table whose stations are not the photos' site names loads (it may be right and the
    folders wrong), but says so: its deployments have no photo, and the photos no table."""
    table = tmp_path / "renamed.csv"
    table.write_text("Station,Setup_date,Retrieval_date\nSt1,02/04/2009,14/05/2009\n", "utf-8")
    res = cli("import", "stations", str(table), "--date-format", "dmy",
              "--warehouse", str(warehouse))  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "warning: 1 listed deployments without a photo" in res.output
    assert "St1" in res.output
    assert "warning: 3 cameras no station table lists" in res.output
