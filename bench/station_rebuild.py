"""Camera operation at 500 stations x 3 years, and what a station-table change costs.

    .venv/bin/python bench/station_rebuild.py [--stations 500] [--days 1095] [--detections 600000]

1. bench/synthetic_warehouse.py makes the photos (one camera per station, three years); a
   camtrapR CTtable of the stations (dates only; every 10th station with a problem period) is
   loaded as `trapflow import stations` loads it.
2. A full `dbt build` (models and data tests): seconds, and fct_camera_operation's share.
3. One problem period changed and reloaded: the marts say stale; the station rebuild
   (`flows/cli/stations.py: rebuild_station_marts`) against the full build; re-loading an
   unchanged table (nothing to rebuild).
4. Baseline on the same input: camtrapR's effort rule in a plain Python loop over every
   station-day; its trap-nights must equal dim_deployments' and its time is the ratio's base.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.synthetic_warehouse import generate
from flows.cli.stations import rebuild_station_marts
from flows.settings import Settings
from flows.store.dbt import run_dbt
from flows.store.deployments import load_deployments_csv
from flows.store.station_tables import CTOptions
from flows.store.warehouse import open_file

START = date(2024, 1, 1)


def _table(stations: int, days: int, problem_start: int) -> list[dict[str, str]]:
    width = max(2, len(str(stations - 1)))
    last = START + timedelta(days=days - 1)
    rows = []
    for i in range(stations):
        row = {
            "Station": f"site-{i:0{width}d}",
            "Setup_date": START.isoformat(),
            "Retrieval_date": last.isoformat(),
            "Problem1_from": "",
            "Problem1_to": "",
        }
        if i % 10 == 0:
            row["Problem1_from"] = (START + timedelta(days=problem_start + i % 50)).isoformat()
            row["Problem1_to"] = (START + timedelta(days=problem_start + i % 50 + 20)).isoformat()
        rows.append(row)
    return rows


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    header = list(rows[0])
    lines = [",".join(header)] + [",".join(r[h] for h in header) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _load(warehouse: Path, table: Path) -> bool:
    with open_file(warehouse) as con:
        return load_deployments_csv(con, table, CTOptions(date_format="ymd")).changed


def _python_trap_nights(rows: list[dict[str, str]]) -> tuple[dict[str, float], float]:
    """camtrapR >= 2.1 with dates only, one day at a time: 0.5 at setup and retrieval, 0 on
    every day of a problem (00:00 of its first day to the end of its last), else 1."""
    t0 = time.perf_counter()
    out: dict[str, float] = {}
    for r in rows:
        setup, end = date.fromisoformat(r["Setup_date"]), date.fromisoformat(r["Retrieval_date"])
        p_from = date.fromisoformat(r["Problem1_from"]) if r["Problem1_from"] else None
        p_to = date.fromisoformat(r["Problem1_to"]) if r["Problem1_to"] else None
        total, day = 0.0, setup
        while day <= end:
            effort = 0.5 if day in (setup, end) else 1.0
            if p_from and p_to and p_from <= day <= p_to:
                effort = 0.0
            total += effort
            day += timedelta(days=1)
        out[r["Station"]] = total
    return out, time.perf_counter() - t0


def _camop_seconds(settings: Settings) -> float:
    results = json.loads((settings.scratch_path / "target" / "run_results.json").read_text())
    return sum(
        r["execution_time"] for r in results["results"]
        if r["unique_id"].split(".")[-1] in ("fct_camera_operation", "dim_deployments")
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=500)
    parser.add_argument("--days", type=int, default=1095)
    parser.add_argument("--detections", type=int, default=600_000)
    parser.add_argument("--work", type=Path, default=None, help="folder for the warehouse")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="trapflow-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    warehouse, table = work / "synthetic.duckdb", work / "camtraps.csv"
    settings = Settings(warehouse=warehouse, home=work)
    made = generate(warehouse, args.detections, sites=args.stations, cameras=1, days=args.days)
    out: dict[str, Any] = {"generate": made}
    rows = _table(args.stations, args.days, problem_start=200)
    _write(table, rows)
    _load(warehouse, table)

    t0 = time.perf_counter()
    run_dbt(settings, "build")
    full = time.perf_counter() - t0
    out["full_build_s"] = round(full, 2)
    out["camera_operation_models_s"] = round(_camop_seconds(settings), 2)

    with open_file(warehouse, read_only=True) as con:
        dbt_nights = dict(con.execute(
            "select deployment_id, trap_nights from marts.dim_deployments"
        ).fetchall())  # fmt: skip
        out["station_days"] = con.execute(
            "select count(*) from marts.fct_camera_operation"
        ).fetchone()[0]  # type: ignore[index]
    py_nights, py_seconds = _python_trap_nights(rows)
    out["trap_nights_equal_python_reference"] = all(
        abs(dbt_nights.get(k, -1) - v) < 1e-9 for k, v in py_nights.items()
    )
    out["trap_nights_total"] = round(sum(dbt_nights[k] for k in py_nights), 1)
    out["python_loop_s"] = round(py_seconds, 3)

    # one problem period moved by a day: stale until the station rebuild
    rows[0]["Problem1_to"] = (date.fromisoformat(rows[0]["Problem1_to"]) + timedelta(1)).isoformat()
    _write(table, rows)
    t0 = time.perf_counter()
    out["reload_changed"] = _load(warehouse, table)
    out["reload_s"] = round(time.perf_counter() - t0, 3)
    with open_file(warehouse, read_only=True) as con:
        out["stale_after_change"] = con.execute(
            "select is_stale from marts.marts_freshness"
        ).fetchone()[0]  # type: ignore[index]
    t0 = time.perf_counter()
    rebuild_station_marts(settings)
    rebuild = time.perf_counter() - t0
    with open_file(warehouse, read_only=True) as con:
        out["stale_after_rebuild"] = con.execute(
            "select is_stale from marts.marts_freshness"
        ).fetchone()[0]  # type: ignore[index]
    out["station_rebuild_s"] = round(rebuild, 2)
    out["rebuild_over_full"] = round(rebuild / full, 3)
    out["unchanged_reload_changed"] = _load(warehouse, table)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
