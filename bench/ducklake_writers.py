"""Loading raw rows: N worker processes into one DuckLake vs one process into a DuckDB file.

    .venv/bin/python bench/ducklake_writers.py --batches 40 --workers 2 4

Starts a PostgreSQL on loopback (Debian's package, as the tests do) for the DuckLake's
catalog, its data in a temporary folder. Every worker loads BATCHES batches of 32 media and
128 boxes (rows as the pipeline builds them); a quarter of each worker's media are also in
another worker's batches (overlapping cards), so commits race on the same keys. The baseline
is one process loading all the distinct batches into a DuckDB file (``WarehouseStore``).

Prints one JSON line: images stored per second of wall time for each, the ratio DuckLake /
DuckDB file, the commits retried after a conflict, whether every image is stored exactly once,
and the marts builder's snapshot copy (``prepare_build``) time. Inference is not in it: a
real worker spends ~3 s detecting a batch of 32 photos on 2 cores, so the load's share of a
worker's time is what these figures say about the store.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BATCH = 32
BOXES = 4
T0 = datetime(2024, 5, 1, 6, 30)


def batch(worker: int, number: int, workers: int) -> dict[str, list[dict[str, Any]]]:
    """Batch ``number`` of ``worker``: 24 media of its own and 8 of the next worker's card."""
    own = [f"w{worker}-b{number}-m{i}" for i in range(BATCH * 3 // 4)]
    shared = [f"w{(worker + 1) % workers}-b{number}-m{i}" for i in range(BATCH // 4)]
    media, boxes, files = [], [], []
    for j, media_id in enumerate(own + shared):
        media.append({"media_id": media_id, "source_uri": f"file:///cards/{worker}",
                      "file_path": f"cam/{media_id}.JPG", "file_name": f"{media_id}.JPG",
                      "file_extension": "jpg", "file_size": 1000 + j, "media_type": "image",
                      "site_id": "Ruaha", "camera_id": "cam07", "captured_at": T0,
                      "timestamp_source": "exif",
                      "run_id": f"run-{worker}", "ingested_at": T0})  # fmt: skip
        boxes += [{"detection_id": f"{media_id}-d{k}", "media_id": media_id,
                   "model_name": "mdlite_yolox_tiny", "model_version": "1", "category": "animal",
                   "category_id": 1, "label": "animal", "confidence": 0.8, "bbox_x": 0.1,
                   "bbox_y": 0.2, "bbox_w": 0.3, "bbox_h": 0.4, "run_id": f"run-{worker}",
                   "detected_at": T0} for k in range(BOXES)]  # fmt: skip
        files.append({"source_uri": f"file:///cards/{worker}", "file_path": f"cam/{media_id}.JPG",
                      "file_size": 1000 + j, "file_modified_at": T0, "media_id": media_id,
                      "status": "ingested", "run_id": f"run-{worker}", "seen_at": T0})  # fmt: skip
    return {"media": media, "detections": boxes, "quarantine": [], "files": files}


def _worker(args: tuple[str, str, str, int, int, int], ready: Any, out: Any) -> None:
    """Opens the lake, waits for every worker, loads its batches; puts (media added, commits
    retried, start, end) on ``out``."""
    from flows.store import ducklake
    from flows.store.ducklake import DuckLakeStore

    warehouse, lake, data_path, worker, batches, workers = args
    retries = 0
    original = ducklake.in_transaction

    def counting(con: Any, work: Any, **kw: Any) -> Any:
        calls = 0

        def counted(c: Any) -> Any:
            nonlocal calls, retries
            calls += 1
            retries += calls > 1
            return work(c)

        return original(con, counted, **kw)

    ducklake.in_transaction = counting  # type: ignore[assignment]
    store = DuckLakeStore(Path(warehouse), lake, data_path)
    store.exists()  # attached, before the clock
    rows = [batch(worker, number, workers) for number in range(batches)]
    ready.wait()
    start = time.time()
    added = sum(store.load_batch(f"w{worker}-b{n}", **b)["media"] for n, b in enumerate(rows))
    out.put((added, retries, start, time.time()))


def ducklake_run(tmp: Path, dsn: str, workers: int, batches: int) -> dict[str, Any]:
    from flows.store.ducklake import DuckLakeStore
    from tests._postgres import create_database

    lake = f"ducklake:postgres:{create_database(dsn, f'bench{workers}')}"
    data_path = str(tmp / f"data{workers}")
    DuckLakeStore(tmp / "init.duckdb", lake, data_path).exists()  # the schema, before the clock
    ctx = mp.get_context("spawn")
    ready, out = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=((str(tmp / f"w{i}.duckdb"), lake, data_path, i,
                                                batches, workers), ready, out))
             for i in range(workers)]  # fmt: skip
    for proc in procs:
        proc.start()
    results = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    seconds = max(r[3] for r in results) - min(r[2] for r in results)
    builder = DuckLakeStore(tmp / f"builder{workers}.duckdb", lake, data_path)
    t1 = time.perf_counter()
    builder.prepare_build()
    copy_s = time.perf_counter() - t1
    import duckdb

    with duckdb.connect(str(builder.warehouse), read_only=True) as con:
        row = con.execute("select count(*), count(distinct media_id) from raw.media").fetchone()
    stored, distinct = row if row else (0, 0)
    commits = workers * batches
    return {"workers": workers, "seconds": round(seconds, 2),
            "images_per_s": round(stored / seconds, 1), "images": stored,
            "ms_per_commit": round(1000 * seconds / commits, 1),
            "exactly_once": stored == distinct == workers * batches * BATCH * 3 // 4,
            "retried_commits": sum(r[1] for r in results),
            "snapshot_copy_s": round(copy_s, 2)}  # fmt: skip


def duckdb_file_run(tmp: Path, workers: int, batches: int) -> dict[str, Any]:
    from flows.store.warehouse import WarehouseStore

    store = WarehouseStore(tmp / f"single{workers}.duckdb")
    store.start_run("bench", "file:///cards", None, T0)  # the schema, before the clock
    t0 = time.perf_counter()
    stored = 0
    for worker in range(workers):
        for number in range(batches):
            stored += store.load_batch(f"w{worker}-b{number}", **batch(worker, number, workers))[
                "media"
            ]
    seconds = time.perf_counter() - t0
    return {"seconds": round(seconds, 2), "images_per_s": round(stored / seconds, 1),
            "images": stored}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="batches per worker")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    args = parser.parse_args()
    from tests._postgres import postgres_server

    out: dict[str, Any] = {"batch_images": BATCH, "batches_per_worker": args.batches}
    with tempfile.TemporaryDirectory() as tmp, postgres_server() as dsn:
        for workers in args.workers:
            lake = ducklake_run(Path(tmp), dsn, workers, args.batches)
            single = duckdb_file_run(Path(tmp), workers, args.batches)
            out[f"ducklake_{workers}_workers"] = lake
            out[f"duckdb_file_same_rows_{workers}"] = single
            out[f"ratio_ducklake_{workers}w_vs_duckdb_file"] = round(
                lake["images_per_s"] / single["images_per_s"], 3
            )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
