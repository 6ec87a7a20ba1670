"""``trapflow export detection-history`` on camtrapR's own sample: its species-tagged photos
(XMP ``Species|<name>``: human labels) and its station table ``camtraps.csv`` (three stations,
StationC down from 12/05/2009 to its retrieval), loaded with ``trapflow import stations``.

The expected matrices follow camtrapR's detectionHistory(occasionLength = 7, includeEffort =
TRUE, scaleEffort = FALSE) by hand: setup and retrieval days count 0.5 (camtrapR >= 2.1 with
dates only), an occasion with no working day is NA in both matrices, and a record counts in
the occasion of its day. Leopard Cat records (independent events):
A 04-21, 04-23, 05-07; B 04-05 (x2), 04-10, 04-14, 04-25, 05-14; C 04-06, 04-18, 04-23, 05-07.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flows.cli import app

STEM = "Leopard_Cat__{what}__7_days_per_occasion__first_day_{first}"

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines are asserted whole: the CLI's consoles must not wrap them."""
    from flows.cli import _app as cli_app

    monkeypatch.setattr(cli_app.console, "_width", 200)
    monkeypatch.setattr(cli_app.err, "_width", 200)


@pytest.fixture(scope="module")
def warehouse(
    camtrapr_run: Path,
    trapflow_env: dict[str, str],
    shared_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The tagged photos ingested (sites StationA-C from their folders), then camtraps.csv."""
    wh = tmp_path_factory.mktemp("dethist") / "w.duckdb"
    shutil.copy(camtrapr_run, wh)
    table = shared_dir / "data" / "camtrapr" / "camtraps.csv"
    res = CliRunner().invoke(
        app,
        ["import", "stations", str(table), "--date-format", "%d/%m/%Y", "--warehouse", str(wh)],
        env=trapflow_env,
    )
    assert res.exit_code == 0, res.output
    assert "3 deployments, 1 problem periods" in res.output
    return wh


def _export(wh: Path, out: Path, *args: str) -> Any:
    return CliRunner().invoke(
        app,
        ["export", "detection-history", "--warehouse", str(wh), "--output-dir", str(out), *args],
    )


def _read(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return rows[0], {r[0]: r[1:] for r in rows[1:]}


def _matrices(out: Path, first: str) -> tuple[list[str], dict[str, str], dict[str, str]]:
    header, det = _read(out / (STEM.format(what="detection_history", first=first) + ".csv"))
    header_e, eff = _read(out / (STEM.format(what="effort", first=first) + ".csv"))
    assert header == header_e
    return (
        header,
        {k: " ".join(v) for k, v in det.items()},
        {k: " ".join(v) for k, v in eff.items()},
    )


def test_day1_station_is_camtrapr_s_detection_history(warehouse: Path, tmp_path: Path) -> None:
    res = _export(warehouse, tmp_path, "--species", "Leopard Cat", "--occasion-days", "7",
                  "--day1", "station")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "3 stations x 7 occasions of 7 days (day1=station)" in res.output
    header, det, eff = _matrices(tmp_path, "by_station")
    assert header == ["station", "o1", "o2", "o3", "o4", "o5", "o6", "o7"]
    # each station from its own setup day; C down from 12/05 (o6 = 05-09..05-15: 3 days), its
    # o7 (05-16, 05-17) wholly in the problem: NA
    assert det == {
        "StationA": "0 0 1 1 0 1 0",
        "StationB": "1 1 0 1 0 1 0",
        "StationC": "1 0 1 0 1 0 NA",
    }
    assert eff == {
        "StationA": "6.5 7 7 7 7 7 0.5",
        "StationB": "6.5 7 7 7 7 7 1.5",
        "StationC": "6.5 7 7 7 7 3 NA",
    }


def test_day1_survey_is_the_default_and_starts_at_the_first_setup(
    warehouse: Path, tmp_path: Path
) -> None:
    """camtrapR's default day1 = "survey": every row from 02/04 (StationA's setup); 46 days."""
    res = _export(warehouse, tmp_path, "--species", "Leopard Cat")
    assert res.exit_code == 0, res.output
    header, det, eff = _matrices(tmp_path, "from_survey")
    assert len(header) == 1 + 7
    # B set up 03/04 (o1 = 0.5 + 5 days), retrieved 16/05 (o7 = 05-14, 05-15, 0.5)
    # C set up 04/04 (o1 = 0.5 + 4), o6 = 05-07..05-13 with 05-12 and 05-13 down: 5
    assert det == {
        "StationA": "0 0 1 1 0 1 0",
        "StationB": "1 1 0 1 0 0 1",
        "StationC": "1 0 1 1 0 1 NA",
    }
    assert eff == {
        "StationA": "6.5 7 7 7 7 7 0.5",
        "StationB": "5.5 7 7 7 7 7 2.5",
        "StationC": "4.5 7 7 7 7 5 NA",
    }


def test_day1_a_date_leaves_out_earlier_records(warehouse: Path, tmp_path: Path) -> None:
    res = _export(warehouse, tmp_path, "--species", "Leopard Cat", "--day1", "2009-04-09")
    assert res.exit_code == 0, res.output
    assert "3 of 13 records fall in no occasion" in res.output
    header, det, eff = _matrices(tmp_path, "2009-04-09")
    assert len(header) == 1 + 6  # 09/04 .. 17/05: 39 days
    assert det["StationB"] == "1 0 1 0 0 1"
    assert eff["StationC"] == "7 7 7 7 5 NA"


def test_by_camera_has_one_row_per_camera(warehouse: Path, tmp_path: Path) -> None:
    """camtrapR's by-camera row names: station__CAM_camera (no Camera column: camera '*')."""
    res = _export(warehouse, tmp_path, "--species", "Leopard Cat", "--day1", "station",
                  "--by", "camera")  # fmt: skip
    assert res.exit_code == 0, res.output
    path = tmp_path / (
        STEM.format(what="detection_history", first="by_station") + "__by_camera.csv"
    )
    header, det = _read(path)
    assert len(header) == 1 + 7
    assert sorted(det) == ["StationA__CAM_*", "StationB__CAM_*", "StationC__CAM_*"]
    assert " ".join(det["StationC__CAM_*"]) == "1 0 1 0 1 0 NA"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--species", "LeopardCat"], "unknown species 'LeopardCat'; known: "),
        (["--species", "Leopard Cat", "--occasion-days", "0"], "--occasion-days 0: an occasion"),
        (["--species", "Leopard Cat", "--day1", "monday"], "--day1 'monday': give 'station'"),
        (["--species", "Leopard Cat", "--day1", "2010-01-01"], "is outside the survey"),
        (["--species", "Leopard Cat", "--by", "site"], "--by 'site': give 'station' or 'camera'"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(
    warehouse: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    res = _export(warehouse, tmp_path, *args)
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1, res.output
    assert lines[0].startswith("error: ") and message in lines[0]
    if "unknown species" in message:
        assert "Leopard Cat, Malay Civet, Moonrat, Mouse Deer" in lines[0]
    assert not list(tmp_path.iterdir())
