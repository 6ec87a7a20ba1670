"""dbt/macros/solar_position.sql: the sun's elevation from dbt (``dbt show`` on a real DuckDB
file) against a numpy reference written from NOAA's published formulas, and against values
known without any formula (solstice and equinox noons)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from flows.settings import Settings
from flows.store.dbt import run_dbt
from flows.store.warehouse import ensure_schema, open_file


def numpy_elevation(when: list[datetime], lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """NOAA's solar position algorithm (General Solar Position Calculations, NOAA GML),
    elevation without refraction, in degrees."""
    epoch = np.array([w.replace(tzinfo=UTC).timestamp() for w in when])
    jc = (epoch / 86400.0 + 2440587.5 - 2451545.0) / 36525.0
    l0 = np.mod(280.46646 + jc * (36000.76983 + jc * 0.0003032), 360.0)
    m = np.radians(357.52911 + jc * (35999.05029 - 0.0001537 * jc))
    e = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)
    c = (
        np.sin(m) * (1.914602 - jc * (0.004817 + 0.000014 * jc))
        + np.sin(2 * m) * (0.019993 - 0.000101 * jc)
        + np.sin(3 * m) * 0.000289
    )
    omega = np.radians(125.04 - 1934.136 * jc)
    app_long = np.radians(l0 + c - 0.00569 - 0.00478 * np.sin(omega))
    seconds = 21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))
    obliq = np.radians(23 + (26 + seconds / 60) / 60 + 0.00256 * np.cos(omega))
    decl = np.arcsin(np.sin(obliq) * np.sin(app_long))
    y = np.tan(obliq / 2) ** 2
    l0r = np.radians(l0)
    eqtime = 4 * np.degrees(
        y * np.sin(2 * l0r) - 2 * e * np.sin(m) + 4 * e * y * np.sin(m) * np.cos(2 * l0r)
        - 0.5 * y * y * np.sin(4 * l0r) - 1.25 * e * e * np.sin(2 * m)
    )  # fmt: skip
    minutes = np.mod(epoch, 86400) / 60.0
    true_solar = np.mod(minutes + eqtime + 4 * lon, 1440)
    hour_angle = np.radians(true_solar / 4 - 180)
    latr = np.radians(lat)
    cos_zenith = np.sin(latr) * np.sin(decl) + np.cos(latr) * np.cos(decl) * np.cos(hour_angle)
    return 90 - np.degrees(np.arccos(np.clip(cos_zenith, -1, 1)))


def dbt_elevation(tmp_path: Path, rows: list[tuple[datetime, float, float]]) -> list[float]:
    warehouse = tmp_path / "warehouse.duckdb"
    with open_file(warehouse) as con:
        ensure_schema(con)
    values = ", ".join(f"(timestamp '{w:%Y-%m-%d %H:%M:%S}', {a!r}, {o!r}, {i})"
                       for i, (w, a, o) in enumerate(rows))  # fmt: skip
    sql = (
        "select i, {{ solar_elevation('t', 'lat', 'lon') }} as elevation "
        f"from (values {values}) as v(t, lat, lon, i) order by i"
    )
    result = run_dbt(
        Settings(warehouse=warehouse, home=tmp_path / "home"),
        "show", "--inline", sql, "--output", "json", "--limit", str(len(rows)), "--quiet",
    )  # fmt: skip
    shown = json.loads(result.output[result.output.index("{") :])
    return [float(r["elevation"]) for r in shown["show"]]


@pytest.fixture(scope="module")
def cases() -> list[tuple[datetime, float, float]]:
    rng = np.random.default_rng(7)
    start = datetime(1995, 1, 1)
    random_cases = [
        (start + timedelta(seconds=int(s)), float(a), float(o))
        for s, a, o in zip(
            rng.integers(0, 40 * 365 * 86400, 40), rng.uniform(-65, 65, 40),
            rng.uniform(-180, 180, 40), strict=True,
        )
    ]  # fmt: skip
    return [
        (datetime(2024, 6, 20, 12, 2), 51.4769, 0.0),  # Greenwich, June solstice, solar noon
        (datetime(2024, 12, 21, 12, 2), 51.4769, 0.0),  # December solstice
        (datetime(2024, 3, 20, 12, 7), 0.0, 0.0),  # equinox noon on the equator: overhead
        (datetime(2009, 4, 15, 4, 15), 5.45, 117.25),  # Borneo (camtrapR), local noon (UTC+8)
        (datetime(2009, 4, 15, 16, 15), 5.45, 117.25),  # and local midnight
        *random_cases,
    ]


def test_solar_elevation_matches_numpy_noaa_and_known_noons(tmp_path, cases):
    got = np.array(dbt_elevation(tmp_path, cases))
    when, lat, lon = zip(*cases, strict=True)
    want = numpy_elevation(list(when), np.array(lat), np.array(lon))
    assert np.max(np.abs(got - want)) < 1e-6
    # without any formula: 90 - latitude +/- 23.44 at the solstices' noons, ~90 at the equinox
    assert got[0] == pytest.approx(90 - 51.4769 + 23.44, abs=0.1)
    assert got[1] == pytest.approx(90 - 51.4769 - 23.44, abs=0.1)
    assert got[2] > 89.3
    assert got[3] > 75 and got[4] < -70
    assert (got > 0).any() and (got < 0).any()
