"""What the RAI intervals cost: 500 stations x 3 years, the bootstrap against the camera-operation
models and the whole build, and the vectorised bootstrap against a per-replicate Python loop.

    .venv/bin/python bench/uncertainty.py [--detections 500000] [--sites 500] [--days 1095]

1. bench/synthetic_warehouse.py makes the warehouse (one camera per station); `dbt run
   --full-refresh` builds everything; each model's time comes from run_results.json.
2. `dbt run --select int_rai_units+` again (upstream built): the bootstrap path alone, with
   camera-days and then deployments as the unit.
3. The model's own function (dbt/models/intermediate/int_rai_bootstrapped.py, loaded from the
   file) on the same units, timed in this process over every group; then the same groups
   resampled the way a per-replicate Python loop would (rng.choice of unit indices, one
   replicate at a time) on a sample of groups, per group, for the ratio.

Prints the figures and one JSON line. Not a timed test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.synthetic_warehouse import generate
from flows.settings import REPO_ROOT, Settings
from flows.store.dbt import run_dbt
from flows.store.warehouse import open_file

MODEL_FILE = REPO_ROOT / "dbt" / "models" / "intermediate" / "int_rai_bootstrapped.py"
CAMERA_OPERATION = (
    "int_deployments_unioned", "int_deployment_problems", "int_media_deployed",
    "int_camera_operation_daily", "int_effort_aggregated_to_site_day", "fct_camera_operation",
)  # fmt: skip
BOOTSTRAP = ("int_rai_units", "int_rai_bootstrapped", "fct_rai_intervals")


def _model_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("int_rai_bootstrapped", MODEL_FILE)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {MODEL_FILE}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _times(settings: Settings) -> dict[str, float]:
    results = json.loads((settings.scratch_path / "target" / "run_results.json").read_text())
    return {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results["results"]}


def _run(settings: Settings, *extra: str) -> tuple[float, dict[str, float]]:
    t0 = time.perf_counter()
    run_dbt(settings, "run", *extra)
    return time.perf_counter() - t0, _times(settings)


def _loop_bootstrap(
    events: np.ndarray, effort: np.ndarray, replicates: int, rng: np.random.Generator
) -> np.ndarray:
    """The baseline: one replicate at a time, resampling unit indices."""
    out = np.empty(replicates)
    n = len(events)
    for b in range(replicates):
        pick = rng.choice(n, size=n, replace=True)
        total = effort[pick].sum()
        out[b] = 100.0 * events[pick].sum() / total if total > 0 else np.nan
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detections", type=int, default=500_000)
    parser.add_argument("--sites", type=int, default=500)
    parser.add_argument("--cameras", type=int, default=1)
    parser.add_argument("--days", type=int, default=1095)
    parser.add_argument("--sample-groups", type=int, default=200)
    parser.add_argument("--work", type=Path, default=None, help="folder for the warehouse")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="trapflow-bench-uncertainty-"))
    work.mkdir(parents=True, exist_ok=True)
    warehouse = work / "synthetic.duckdb"
    settings = Settings(warehouse=warehouse, home=work)
    out: dict[str, Any] = {
        "generate": generate(
            warehouse, args.detections, sites=args.sites, cameras=args.cameras, days=args.days
        )
    }
    total, times = _run(settings, "--full-refresh")
    out["full_run_s"] = round(total, 2)
    out["models_total_s"] = round(sum(times.values()), 2)
    out["camera_operation_s"] = {m: round(times.get(m, 0.0), 2) for m in CAMERA_OPERATION}
    out["bootstrap_s"] = {m: round(times.get(m, 0.0), 2) for m in BOOTSTRAP}
    out["slowest"] = dict(
        sorted(((m, round(t, 2)) for m, t in times.items()), key=lambda x: -x[1])[:6]
    )
    camera_op = sum(times.get(m, 0.0) for m in CAMERA_OPERATION)
    boot = sum(times.get(m, 0.0) for m in BOOTSTRAP)
    out["bootstrap_share_of_models"] = round(boot / sum(times.values()), 3)
    out["bootstrap_vs_camera_operation"] = round(boot / camera_op, 2) if camera_op else None

    again, times = _run(settings, "--select", "int_rai_units+")
    out["bootstrap_path_only_s"] = {"camera_day": round(again, 2)}
    deployment = Settings(warehouse=warehouse, home=work, bootstrap_unit="deployment")
    again_d, _ = _run(deployment, "--select", "int_rai_units+")
    out["bootstrap_path_only_s"]["deployment"] = round(again_d, 2)
    run_dbt(settings, "run", "--select", "int_rai_units+")  # back to camera-days

    module = _model_module()
    group = "site_id, cast(period_start as varchar) as period_key, category, label"
    by = "site_id, period_key, category, label"
    with open_file(warehouse, read_only=True) as con:
        con.execute("set enable_progress_bar = false")
        distinct = con.sql(
            f"select {group}, events, trap_nights, count(*) as units "
            f"from intermediate.int_rai_units group by {by}, events, trap_nights "
            f"order by {by}, events, trap_nights"
        ).fetchnumpy()
        units = con.sql(
            f"select {group}, events, trap_nights from intermediate.int_rai_units "
            f"order by {by}, unit_id"
        ).fetchnumpy()
        rows = con.execute(
            "select count(*), sum(n_units), count(distinct site_id) from marts.fct_rai_intervals"
        ).fetchone()
    if rows is None:
        raise SystemExit("no marts.fct_rai_intervals")
    out["groups"], out["units"], out["sites_with_intervals"] = (int(v) for v in rows)
    replicates = settings.bootstrap_replicates
    t0 = time.perf_counter()
    module.bootstrap(
        distinct,
        level=settings.confidence_level,
        replicates=replicates,
        seed=settings.bootstrap_seed,
    )
    vectorised_all = time.perf_counter() - t0
    out["vectorised_all_groups_s"] = round(vectorised_all, 2)

    # the same groups, per group: vectorised (the model's function) vs a per-replicate loop
    keys = list(zip(*(units[k] for k in module.KEY), strict=True))
    starts = [i for i in range(len(keys)) if i == 0 or keys[i] != keys[i - 1]]
    spans = list(zip(starts, [*starts[1:], len(keys)], strict=True))
    rng_pick = np.random.default_rng(0)
    sample = [
        spans[i] for i in sorted(rng_pick.choice(len(spans), args.sample_groups, replace=False))
    ]
    d_keys = list(zip(*(distinct[k] for k in module.KEY), strict=True))
    d_starts = {k: i for i, k in reversed(list(enumerate(d_keys)))}
    vec = loop = 0.0
    for lo, hi in sample:
        key = keys[lo]
        e = units["events"][lo:hi].astype(float)
        t = units["trap_nights"][lo:hi].astype(float)
        d_lo = d_starts[key]
        d_hi = d_lo
        while d_hi < len(d_keys) and d_keys[d_hi] == key:
            d_hi += 1
        t0 = time.perf_counter()
        module.bootstrap_group(
            distinct["events"][d_lo:d_hi].astype(float),
            distinct["trap_nights"][d_lo:d_hi].astype(float),
            distinct["units"][d_lo:d_hi].astype(np.int64),
            replicates=replicates,
            rng=module.group_rng(settings.bootstrap_seed, key),
        )
        vec += time.perf_counter() - t0
        t0 = time.perf_counter()
        _loop_bootstrap(e, t, replicates, np.random.default_rng(1))
        loop += time.perf_counter() - t0
    out["sample_groups"] = len(sample)
    out["sample_mean_units"] = round(float(np.mean([hi - lo for lo, hi in sample])), 1)
    out["sample_vectorised_s"] = round(vec, 4)
    out["sample_loop_s"] = round(loop, 3)
    out["loop_over_vectorised"] = round(loop / vec, 1) if vec else None
    out["loop_all_groups_estimate_s"] = round(loop / len(sample) * len(spans), 1)

    print(f"warehouse: {out['generate']['media']} images, {out['generate']['detections']} boxes, "
          f"{args.sites} stations x {args.days} days")  # fmt: skip
    print(f"full dbt run: {out['full_run_s']} s (models {out['models_total_s']} s)")
    print(f"camera-operation models: {round(camera_op, 2)} s  {out['camera_operation_s']}")
    print(f"bootstrap models: {round(boot, 2)} s  {out['bootstrap_s']}")
    print(f"bootstrap share of the models' time: {out['bootstrap_share_of_models']:.1%}; "
          f"bootstrap / camera operation: {out['bootstrap_vs_camera_operation']}")  # fmt: skip
    print(f"bootstrap path alone (dbt run --select int_rai_units+): {out['bootstrap_path_only_s']}")
    print(f"groups {out['groups']}, units {out['units']}; bootstrap() in-process over all "
          f"groups: {out['vectorised_all_groups_s']} s")  # fmt: skip
    print(f"{len(sample)} sampled groups (mean {out['sample_mean_units']} units), {replicates} "
          f"replicates: vectorised {out['sample_vectorised_s']} s, per-replicate loop "
          f"{out['sample_loop_s']} s, ratio {out['loop_over_vectorised']}x; loop over all "
          f"groups ~{out['loop_all_groups_estimate_s']} s")  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    main()
