"""Polling at scale: how long finding the new files takes when the source is large.

    .venv/bin/python bench/polling.py --existing 100000 --new 1000

Builds a source folder laid out '{site}/{camera}/{yyyy-mm}/' with EXISTING small files that a
previous run has already recorded (rows in raw.media_files, as the flow writes them) spread
over 12 months, plus NEW files in the newest month and the next one, then times what a poll
does before any image is read, three ways on the same folder and warehouse:

- old: fsspec ``find`` of everything, a Python dict of every known file, a loop comparing
  (the listing before issue 19, kept here as the baseline);
- full: the new full listing (iterative ``os.scandir``) and the Arrow/DuckDB comparison;
- pruned: the same with the date layout, listing each camera's newest known month and newer.

Prints one JSON line with the figures and the ratios old/full and old/pruned. Goal: pruned
<= 2 s for 1,000 new among 100,000 known.
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem

from flows.pipeline.discovery import canonical_uri, list_source, poll_source
from flows.settings import MEDIA_EXTENSIONS
from flows.store import warehouse as _warehouse

LAYOUT = "{site}/{camera}/{yyyy-mm}/..."
MONTHS = [f"2024-{m:02d}" for m in range(1, 13)]


def build(root: Path, existing: int, new: int) -> None:
    """EXISTING files over 2024's months (the last month's are the newest known), NEW ones
    half in 2024-12 and half in 2025-01."""
    per_camera = max(existing // 350, 1)
    for i in range(existing + new):
        camera = i % 350
        if i < existing:
            month = MONTHS[min((i // 350) * len(MONTHS) // per_camera, len(MONTHS) - 1)]
        else:
            month = "2024-12" if i % 2 else "2025-01"
        folder = root / f"site-{camera // 7:02d}" / f"cam-{camera % 7}" / month
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"IMG_{i:07d}.JPG").write_bytes(b"\xff\xd8" + i.to_bytes(4, "big"))


def record_known(warehouse: Path, root: Path, existing: int) -> int:
    listing = list_source(str(root), MEDIA_EXTENSIONS)
    known = [f for f in listing.media if int(f.path[-11:-4]) < existing]
    now = datetime.now(UTC).replace(tzinfo=None)
    table = pa.table({
        "source_uri": [listing.source_uri] * len(known),
        "file_path": [f.path for f in known],
        "file_size": [f.size for f in known],
        "file_modified_at": pa.array([f.modified_at for f in known], pa.timestamp("us")),
        "media_id": [f"{i:064x}" for i in range(len(known))],
        "status": ["ingested"] * len(known),
        "run_id": ["bench"] * len(known),
        "seen_at": pa.array([now] * len(known), pa.timestamp("us")),
    })  # fmt: skip
    with _warehouse.connect(warehouse) as con:
        _warehouse.ensure_schema(con)
        con.register("_known", table)
        con.execute("insert or replace into raw.media_files by name select * from _known")
    return len(known)


def _old_listing(root: str) -> list[tuple[str, int, Any]]:
    """The listing as it was: fsspec's find with details, one relpath per file."""
    fs = LocalFileSystem()
    wanted = {e.lower() for e in MEDIA_EXTENSIONS}
    out = []
    for full, info in sorted(fs.find(root, withdirs=False, detail=True).items()):
        rel = os.path.relpath(full, root).replace(os.sep, "/")
        if posixpath.splitext(rel)[1].lower().lstrip(".") in wanted:
            mtime = datetime.fromtimestamp(float(info["mtime"]), tz=UTC).replace(tzinfo=None)
            out.append((rel, int(info["size"]), mtime))
    return out


def poll_old(warehouse: Path, root: Path) -> dict[str, float | int]:
    t0 = time.perf_counter()
    listed = _old_listing(str(root))
    t1 = time.perf_counter()
    with _warehouse.connect(warehouse) as con:
        known = _warehouse.known_files(con, canonical_uri(str(root)))
    new = [p for p, size, mtime in listed if known.get(p) != (size, mtime)]
    t2 = time.perf_counter()
    return {"listed": len(listed), "new": len(new), "list_s": round(t1 - t0, 3),
            "compare_s": round(t2 - t1, 3), "poll_s": round(t2 - t0, 3)}  # fmt: skip


def poll_new(warehouse: Path, root: Path, *, full: bool) -> dict[str, float | int]:
    t0 = time.perf_counter()
    with _warehouse.connect(warehouse) as con:
        known = _warehouse.known_file_table(con, canonical_uri(str(root)))
    t1 = time.perf_counter()
    listing, new = poll_source(str(root), MEDIA_EXTENSIONS, known, layout=LAYOUT, full=full)
    t2 = time.perf_counter()
    return {"listed": len(listing.media), "new": len(new), "pruned_folders":
            listing.pruned_folders, "manifest_s": round(t1 - t0, 3),
            "list_and_compare_s": round(t2 - t1, 3), "poll_s": round(t2 - t0, 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--existing", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=1_000)
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: tmp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root, warehouse = Path(tmp) / "source", Path(tmp) / "w.duckdb"
        t0 = time.perf_counter()
        build(root, args.existing, args.new)
        built = time.perf_counter() - t0
        recorded = record_known(warehouse, root, args.existing)
        poll_new(warehouse, root, full=True)  # warm the page cache alike for all three
        old = poll_old(warehouse, root)
        full = poll_new(warehouse, root, full=True)
        pruned = poll_new(warehouse, root, full=False)
        if not old["new"] == full["new"] == pruned["new"] == args.new:
            raise SystemExit(f"the three polls disagree: {old} {full} {pruned}")
        print(json.dumps({
            "existing_recorded": recorded, "new": args.new, "old": old, "full": full,
            "pruned": pruned,
            "ratio_old_over_full": round(float(old["poll_s"]) / float(full["poll_s"]), 1),
            "ratio_old_over_pruned": round(float(old["poll_s"]) / float(pruned["poll_s"]), 1),
            "goal_pruned_le_2s": float(pruned["poll_s"]) <= 2.0,
            "build_s": round(built, 1), "cpus": os.cpu_count() or 0,
        }))  # fmt: skip


if __name__ == "__main__":
    main()
