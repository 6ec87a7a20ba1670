"""marts.fct_rai_intervals on real warehouses and real `dbt build`s: the interval holds the
point RAI (which is the population marts' own), the seed makes it reproducible and a new seed
moves it, one deployment has no between-deployment variance (null, not 0), and a case small
enough to work out by hand agrees with an exact numpy enumeration written here, apart from
the model."""

from __future__ import annotations

import importlib.util
import itertools
import json
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flows.store.warehouse import open_file
from tests.dbt.test_build import (
    assert_built,
    create_warehouse,
    dbt_build,
    detection_rows,
    fixture_built,
    full_fixture,
    media_rows,
    sha,
    ts,
)

COLUMNS = (
    "site_id, period_start, category, label, events, trap_nights, rai, rai_lower, rai_upper,"
    " rai_se, n_units, between_deployment_variance, n_deployments, confidence_level,"
    " replicates, seed, unit"
)
JUNE = date(2024, 6, 1)


# Builds after the first rebuild only the bootstrap path (the rest is unchanged by these vars);
# a fresh warehouse builds the interval mart and what it reads, not the other marts.
AGAIN = ("--select", "int_rai_units+")
FRESH = ("--select", "+fct_rai_intervals", "--indirect-selection", "cautious")


def intervals(warehouse: Path, where: str = "true") -> dict[tuple[str, str], dict[str, Any]]:
    """(site, label) -> the fct_rai_intervals row (June 2024 is the fixtures' only month)."""
    with open_file(warehouse, read_only=True) as con:
        cur = con.execute(f"select {COLUMNS} from marts.fct_rai_intervals where {where}")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    return {(r["site_id"], r["label"]): r for r in rows}


def _vars(**values: Any) -> tuple[str, str]:
    return ("--vars", json.dumps(values))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    warehouse = fixture_built(tmp_path_factory)
    return warehouse


def test_the_interval_holds_the_population_marts_rai(built: Path) -> None:
    got = intervals(built)
    assert got, "no intervals"
    with open_file(built, read_only=True) as con:
        expected = con.execute(
            "select site_id, label, 100.0 * sum(events) / sum(trap_nights)"
            " from marts.fct_daily_population group by 1, 2"
        ).fetchall()
    assert {(s, label): pytest.approx(rai) for s, label, rai in expected} == {
        k: r["rai"] for k, r in got.items() if k[0] != "(all sites)"
    }
    # all sites: S1 and S2 had 3 trap-nights each; animal events 2 + 3
    assert got[("(all sites)", "animal")]["rai"] == pytest.approx(100 * 5 / 6)
    for row in got.values():
        assert 0 <= row["rai_lower"] <= row["rai"] <= row["rai_upper"], row
        assert row["period_start"] == JUNE
        assert (row["confidence_level"], row["replicates"], row["seed"], row["unit"]) == (
            0.95, 1000, 42, "camera_day"
        )  # fmt: skip
    # S1 animal: camera-days C1 06-01 (1 event: m1+m2), C1 06-02 (0), C2 06-01 (1: m3)
    s1 = got[("S1", "animal")]
    assert (s1["events"], s1["trap_nights"], s1["n_units"]) == (2, 3.0, 3)
    assert s1["rai"] == pytest.approx(200 / 3)
    assert s1["rai_lower"] < s1["rai"] < s1["rai_upper"]


def test_between_deployment_variance_of_per_deployment_rai(built: Path) -> None:
    got = intervals(built)
    # S1: deployment S1/C1 1 event / 2 trap-nights = 50, S1/C2 1 / 1 = 100: var (ddof 1) 1250
    s1 = got[("S1", "animal")]
    assert s1["n_deployments"] == 2
    assert s1["between_deployment_variance"] == pytest.approx(np.var([50.0, 100.0], ddof=1))
    # S2: S2/C3 2 events / 2 = 100, S2/C4 1 / 1 = 100: a real 0 (two deployments agree)
    s2 = got[("S2", "animal")]
    assert (s2["n_deployments"], s2["between_deployment_variance"]) == (2, 0.0)


def test_two_builds_and_another_row_order_give_identical_intervals(
    built: Path, tmp_path: Path
) -> None:
    first = intervals(built)
    assert_built(dbt_build(built, built.parent, *AGAIN))
    assert intervals(built) == first
    tables = full_fixture()
    reversed_tables = {name: rows[::-1] for name, rows in tables.items()}
    fresh = create_warehouse(tmp_path / "reversed.duckdb", reversed_tables)
    assert_built(dbt_build(fresh, tmp_path, *FRESH))
    assert intervals(fresh) == first


def test_another_seed_moves_the_bounds_not_the_point(built: Path, tmp_path: Path) -> None:
    """20 replicates, so the percentile bounds interpolate between drawn values."""
    assert_built(dbt_build(built, built.parent, *AGAIN, *_vars(bootstrap_replicates=20)))
    seed_42 = intervals(built)
    seven = _vars(bootstrap_replicates=20, bootstrap_seed=7)
    assert_built(dbt_build(built, built.parent, *AGAIN, *seven))
    seed_7 = intervals(built)
    assert_built(dbt_build(built, built.parent, *AGAIN))  # back to the defaults for the others
    assert seed_42.keys() == seed_7.keys()
    assert all(seed_42[k]["rai"] == seed_7[k]["rai"] for k in seed_42)
    assert {r["seed"] for r in seed_7.values()} == {7}
    moved = [
        k for k in seed_42
        if (seed_42[k]["rai_lower"], seed_42[k]["rai_upper"], seed_42[k]["rai_se"])
        != (seed_7[k]["rai_lower"], seed_7[k]["rai_upper"], seed_7[k]["rai_se"])
    ]  # fmt: skip
    bounds_moved = [
        k for k in seed_42
        if (seed_42[k]["rai_lower"], seed_42[k]["rai_upper"])
        != (seed_7[k]["rai_lower"], seed_7[k]["rai_upper"])
    ]  # fmt: skip
    assert bounds_moved, "a new seed moved no bound"
    assert len(moved) >= len(bounds_moved)


def test_a_bad_bootstrap_var_fails_the_build(built: Path) -> None:
    result = dbt_build(built, built.parent, *_vars(bootstrap_unit="site"))
    assert result.returncode != 0
    assert "var bootstrap_unit must be 'camera_day' or 'deployment'" in result.stdout


# ---- a case worked out by hand ---------------------------------------------------------------


def _hand_tables() -> dict[str, list[dict[str, Any]]]:
    """One site, one camera, three days: an empty image on 06-01 (the camera works from then),
    nothing on 06-02 (1 day: not down), three animals an hour apart on 06-03 (3 events)."""
    media_template, box_template = media_rows()[0], detection_rows()[0]
    shots = [("h0", "2024-06-01 10:00:00")] + [
        (f"h{i}", f"2024-06-03 0{5 + i}:00:00") for i in (1, 2, 3)
    ]
    media = [
        {
            **media_template,
            "media_id": sha(name),
            "file_path": f"S3/C9/{name}.JPG",
            "file_name": f"{name}.JPG",
            "site_id": "S3",
            "camera_id": "C9",
            "captured_at": ts(at),
        }
        for name, at in shots
    ]
    boxes = [
        {**box_template, "detection_id": sha(f"box-{name}"), "media_id": sha(name)}
        for name, _ in shots[1:]
    ]
    assert box_template["category"] == "animal" and box_template["confidence"] >= 0.25
    return {"media": media, "detections": boxes}


def _exact_bootstrap(events: list[int], trap_nights: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Every resample of n units with replacement (n^n index tuples, equally likely): the RAI
    of each, sorted, and its probability."""
    n = len(events)
    e, t = np.asarray(events, dtype=float), np.asarray(trap_nights, dtype=float)
    picks = np.array(list(itertools.product(range(n), repeat=n)))
    rai = 100.0 * e[picks].sum(axis=1) / t[picks].sum(axis=1)
    order = np.argsort(rai, kind="stable")
    return rai[order], np.full(len(rai), 1.0 / len(rai))


def _exact_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The smallest value whose cumulative probability reaches q."""
    cumulative = np.cumsum(weights)
    return float(values[np.searchsorted(cumulative, q - 1e-12)])


def test_three_camera_days_with_0_0_3_events_match_an_exact_enumeration(tmp_path: Path) -> None:
    warehouse = create_warehouse(tmp_path / "hand.duckdb", _hand_tables())
    assert_built(dbt_build(warehouse, tmp_path, *FRESH, *_vars(bootstrap_replicates=20000)))
    with open_file(warehouse, read_only=True) as con:
        units = con.execute(
            "select unit_id, events, trap_nights from intermediate.int_rai_units"
            " where site_id = 'S3' order by unit_id"
        ).fetchall()
    # unit = site / deployment (S3/C9, inferred) / day
    assert units == [
        ("S3/S3/C9/2024-06-01", 0, 1.0),
        ("S3/S3/C9/2024-06-02", 0, 1.0),
        ("S3/S3/C9/2024-06-03", 3, 1.0),
    ]
    row = intervals(warehouse)[("S3", "animal")]
    values, weights = _exact_bootstrap([0, 0, 3], [1.0, 1.0, 1.0])
    mean = float(values @ weights)
    exact_se = float(np.sqrt(((values - mean) ** 2) @ weights))  # 100 sqrt(2/3) = 81.6
    assert row["rai"] == pytest.approx(100.0) and row["n_units"] == 3
    assert row["rai_lower"] == _exact_quantile(values, weights, 0.025) == 0.0
    assert row["rai_upper"] == _exact_quantile(values, weights, 0.975) == 300.0
    assert row["rai_se"] == pytest.approx(exact_se, rel=0.03)
    # one deployment (S3/C9): no between-deployment variance, reported as null (not 0)
    assert (row["n_deployments"], row["between_deployment_variance"]) == (1, None)
    assert intervals(warehouse)[("(all sites)", "animal")]["rai_upper"] == 300.0

    # deployments as the unit: one unit, so every resample is the data (a degenerate interval)
    assert_built(dbt_build(warehouse, tmp_path, *FRESH, *_vars(bootstrap_unit="deployment")))
    row = intervals(warehouse)[("S3", "animal")]
    assert (row["unit"], row["n_units"]) == ("deployment", 1)
    assert row["rai_lower"] == row["rai"] == row["rai_upper"] == pytest.approx(100.0)
    assert row["rai_se"] == 0.0 and row["between_deployment_variance"] is None


def test_between_deployment_variance_does_not_depend_on_row_order() -> None:
    """The spread is summed exactly: any order of the rows gives the same bits (a streaming
    var_samp gave 625.0000000000001 on one build and 625.0 on the next)."""
    spec = importlib.util.spec_from_file_location(
        "int_rai_bootstrapped",
        Path(__file__).parents[2] / "dbt/models/intermediate/int_rai_bootstrapped.py",
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(7)
    rows = [
        ("S1", "2024-06-01", "animal", "animal", f"d{d}", int(e), float(t), int(u))
        for d in range(6)
        for e, t, u in zip(
            rng.integers(0, 4, 5), rng.uniform(0.1, 1.0, 5), rng.integers(1, 9, 5), strict=True
        )
    ]
    first = module.between_deployment(rows)
    for _ in range(20):
        order = rng.permutation(len(rows))
        assert module.between_deployment([rows[i] for i in order]) == first
    variance, n = first[("S1", "2024-06-01", "animal", "animal")]
    assert n == 6 and variance > 0
    assert module.between_deployment(rows[:5]) == {
        ("S1", "2024-06-01", "animal", "animal"): (None, 1)
    }
