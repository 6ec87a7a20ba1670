"""Did pinning duckdb 1.5.5 (for the ducklake/postgres/httpfs extension wheels) cost anything
against duckdb 2.0.0, the release trapflow used before, on the same work?

    .venv/bin/python bench/duckdb_pin.py --detections 300000 [--rounds 2] [--baseline-venv DIR]

1. A second environment, the lock's exact packages but ``duckdb==2.0.0`` (and no extension
   wheels, which do not load into 2.0), is made with uv in ``--baseline-venv`` once (PyPI).
2. In each environment, in turns (A B A B, so a machine that gets busier hurts both alike):
   - **write**: bench/synthetic_warehouse.py's ``generate`` makes the raw tables (the
     warehouse's DDL and bulk inserts, ~0.7 images per box) in a new file;
   - **marts**: ``dbt run --full-refresh`` on that file (every model, the Python bootstrap
     model included), through ``flows.store.dbt.run_dbt`` as ``trapflow marts`` runs it;
   - **read**: the dashboard's heaviest kind of query, a scan of ``marts.fct_events`` and
     ``fct_population_variance`` grouped by site and month, 20 times.
3. The marts of both must be identical (row counts and a hash of every row, four marts).

Prints each round, then per step the median seconds of 1.5.5 and 2.0.0 and their ratio
(1.5.5 / 2.0.0: below 1.0 the pin is faster; the goal is "nothing regressed": <= 1.10, the
noise of this 2-core machine), and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BASELINE = "duckdb==2.0.0"

#: Runs inside either environment (its own ``duckdb``): one round of the three steps.
ROUND = r"""
import hashlib, json, shutil, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import duckdb
from bench.synthetic_warehouse import generate
from flows.settings import Settings
from flows.store.dbt import run_dbt
from flows.store.warehouse import open_file

work, detections, same_rows = Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
wh = work / "w.duckdb"
out = {"duckdb": duckdb.__version__}
t0 = time.perf_counter(); generate(wh, detections); out["write"] = time.perf_counter() - t0
# the marts are built from one warehouse made once by the pinned duckdb: random() and hash()
# give other rows in another version (and random() across threads), so each round's own
# rows would differ before any model ran
shutil.copyfile(same_rows, wh)
settings = Settings(warehouse=wh, home=work / "home")
t0 = time.perf_counter(); run_dbt(settings, "run", "--full-refresh")
out["marts"] = time.perf_counter() - t0
with open_file(wh, read_only=True) as con:
    t0 = time.perf_counter()
    for _ in range(20):
        con.execute("select site_id, date_trunc('month', started_on) m, count(*) "
                    "from marts.fct_events group by all").fetchall()
        con.execute("select site_id, date_trunc('month', captured_on) m, avg(rai) "
                    "from marts.fct_population_variance group by all").fetchall()
    out["read"] = time.perf_counter() - t0
    def tidy(v):  # floats to 9 significant digits: variances differ ~1e-14 relative (sum order)
        return float(f"{v:.9g}") if isinstance(v, float) else v
    marts = {}
    for mart in ("fct_events", "fct_daily_population", "fct_population_variance", "dim_media"):
        rows = [tuple(tidy(v) for v in row) for row in
                con.execute(f"select * from marts.{mart} order by all").fetchall()]
        marts[mart] = f"{len(rows)} " + hashlib.sha256(repr(rows).encode()).hexdigest()[:12]
    out["marts_hash"] = marts
print("ROUND " + json.dumps(out))
"""


def _uv() -> str:
    beside = REPO / ".uv-bootstrap" / "bin" / "uv"
    return str(beside) if beside.exists() else "uv"


def make_baseline(venv: Path) -> Path:
    """The lock's packages with duckdb 2.0.0 instead of 1.5.5 and its extension wheels."""
    python = venv / "bin" / "python"
    if python.exists():
        return python
    exported = subprocess.run(
        [_uv(), "export", "--frozen", "--no-hashes", "--extra", "cpu", "--no-emit-project"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    wanted = [  # markers kept: the lock pins some packages per Python version (scipy)
        line.strip()
        for line in exported.splitlines()
        if line and not line.startswith(("#", " ", "duckdb"))
    ]
    requirements = venv.parent / f"{venv.name}-requirements.txt"
    requirements.write_text("\n".join([*wanted, BASELINE]) + "\n")
    subprocess.run([_uv(), "venv", "--python", sys.executable, str(venv)], check=True)
    subprocess.run(
        [_uv(), "pip", "install", "--python", str(python), "-r", str(requirements)], check=True
    )
    return python


def one_round(python: Path, work: Path, detections: int, same_rows: Path) -> dict[str, Any]:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}
    proc = subprocess.run(
        [str(python), "-c", ROUND, str(REPO), str(work), str(detections), str(same_rows)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    line = next((x for x in proc.stdout.splitlines() if x.startswith("ROUND ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(
            f"a round under {python} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    return dict(json.loads(line[6:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detections", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline-venv", type=Path,
                        default=Path(tempfile.gettempdir()) / "trapflow-duckdb-2.0.0")  # fmt: skip
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "duckdb-pin")
    args = parser.parse_args()

    envs = {"pinned": Path(sys.executable), "baseline": make_baseline(args.baseline_venv)}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in envs}
    same_rows = args.work / "rows.duckdb"
    args.work.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); from pathlib import"
         " Path; from bench.synthetic_warehouse import generate; generate(Path(sys.argv[2]),"
         " int(sys.argv[3]))", str(REPO), str(same_rows), str(args.detections)], check=True,
    )  # fmt: skip
    for i in range(args.rounds):
        for name, python in envs.items():
            result = one_round(python, args.work / name, args.detections, same_rows)
            runs[name].append(result)
            print(
                f"round {i + 1} {name} duckdb {result['duckdb']}: write {result['write']:.2f} s,"
                f" marts {result['marts']:.2f} s, read {result['read']:.2f} s",
                flush=True,
            )

    summary: dict[str, Any] = {"detections": args.detections, "rounds": args.rounds}
    for step in ("write", "marts", "read"):
        pinned = statistics.median(r[step] for r in runs["pinned"])
        base = statistics.median(r[step] for r in runs["baseline"])
        summary[step] = {"pinned_s": round(pinned, 2), "baseline_s": round(base, 2),
                         "ratio": round(pinned / base, 3)}  # fmt: skip
        print(f"{step}: duckdb {runs['pinned'][0]['duckdb']} {pinned:.2f} s, "
              f"{runs['baseline'][0]['duckdb']} {base:.2f} s, ratio {pinned / base:.2f} "
              "(goal <= 1.10)")  # fmt: skip
    same = runs["pinned"][0]["marts_hash"] == runs["baseline"][0]["marts_hash"]
    summary["marts_identical"] = same
    summary["marts_hash"] = {name: r[0]["marts_hash"] for name, r in runs.items()}
    print(f"marts identical: {same}")
    for mart, digest in runs["pinned"][0]["marts_hash"].items():
        other = runs["baseline"][0]["marts_hash"][mart]
        print(f"  {mart}: {digest} | {other}{'' if digest == other else '  DIFFERS'}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
