"""What a marts rebuild costs after 1 % new images, against a full build, at >= 1M detections.

    .venv/bin/python bench/incremental_build.py --detections 1000000 [--fraction 0.01]

1. bench/synthetic_warehouse.py makes the warehouse; `dbt run --full-refresh` builds everything.
2. `dbt run` with nothing new: the floor (dbt's start-up and ~70 nodes that each cost ~40 ms).
3. `append_new` adds FRACTION x the images (new, after the last one); `dbt run` rebuilds
   (the per-media models: only media whose state changed; int_events_grouped: only the series
   they touch are re-folded; int_rai_bootstrapped: only the groups whose units changed;
   docs/marts.md "Incremental builds").
4. `dbt run --full-refresh` on the same data: the full cost, and the marts must be identical.
5. `dbt test` once, for its time (tests scan whole marts), without the YAML unit tests, as a
   flow's build runs them: the last line adds it to both builds, the ratio of a flow's
   `dbt build` (a sum of the measured parts).

Prints one JSON line: seconds per step, the slowest models of each run, row counts, then the
figure: full vs incremental seconds and their ratio (wall clock, and the models' own time
from run_results.json, which leaves out dbt's start-up).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.synthetic_warehouse import append_new, generate
from flows.settings import Settings
from flows.store.dbt import UNIT_TESTS_OFF, run_dbt
from flows.store.warehouse import open_file

MARTS = ("fct_events", "fct_daily_population", "fct_population_variance", "dim_media")


def _models(settings: Settings) -> list[tuple[str, float]]:
    results = json.loads((settings.scratch_path / "target" / "run_results.json").read_text())
    return sorted(
        ((r["unique_id"].split(".")[-1], r["execution_time"]) for r in results["results"]),
        key=lambda x: -x[1],
    )


def _fingerprint(path: Path) -> dict[str, str]:
    with open_file(path, read_only=True) as con:
        out = {}
        for mart in MARTS:
            rows = con.execute(f"select * from marts.{mart} order by all").fetchall()
            out[mart] = f"{len(rows)} rows " + hashlib.sha256(repr(rows).encode()).hexdigest()[:12]
        return out


def _timed(settings: Settings, command: str, *extra: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    run_dbt(settings, command, *extra)
    seconds = round(time.perf_counter() - t0, 2)
    models = _models(settings)
    return {
        "seconds": seconds,
        "model_seconds": round(sum(t for _, t in models), 2),
        "slowest": {name: round(t, 2) for name, t in models[:6]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detections", type=int, default=1_000_000)
    parser.add_argument("--fraction", type=float, default=0.01)
    parser.add_argument("--work", type=Path, default=None, help="folder for the warehouse")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="trapflow-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    warehouse = work / "synthetic.duckdb"
    settings = Settings(warehouse=warehouse, home=work)
    out: dict[str, Any] = {"generate": generate(warehouse, args.detections)}
    out["full_build"] = _timed(settings, "run", "--full-refresh")
    out["nothing_new_build"] = _timed(settings, "run")
    out["append"] = append_new(warehouse, args.fraction)
    out["incremental_build"] = _timed(settings, "run")
    incremental = _fingerprint(warehouse)
    out["full_build_after_append"] = _timed(settings, "run", "--full-refresh")
    full = _fingerprint(warehouse)
    out["marts_identical"] = incremental == full
    out["marts"] = full
    out["test"] = _timed(settings, "test", *UNIT_TESTS_OFF)
    print(json.dumps(out))
    full_s, incr_s = out["full_build_after_append"], out["incremental_build"]
    model_ratio = incr_s["model_seconds"] / full_s["model_seconds"]
    print(
        f"{out['generate']['detections']} boxes, +{args.fraction:.0%} images: "
        f"full {full_s['seconds']} s, incremental {incr_s['seconds']} s, "
        f"ratio {incr_s['seconds'] / full_s['seconds']:.2f} (goal <= 0.10); "
        f"models only: full {full_s['model_seconds']} s, incremental "
        f"{incr_s['model_seconds']} s, ratio {model_ratio:.2f}; "
        f"nothing new: {out['nothing_new_build']['seconds']} s; "
        f"marts identical: {out['marts_identical']}"
    )
    # the flow runs `dbt build`: the same models, then every data test, which scans whole marts
    test_s = out["test"]["seconds"]
    print(
        f"as a flow builds (dbt build = run + data tests, {test_s} s): full "
        f"{full_s['seconds'] + test_s:.2f} s, incremental {incr_s['seconds'] + test_s:.2f} s, "
        f"ratio {(incr_s['seconds'] + test_s) / (full_s['seconds'] + test_s):.2f}"
    )


if __name__ == "__main__":
    main()
