"""Polling at scale: how long finding the new files takes when the source is large.

    .venv/bin/python bench/polling.py --existing 100000 --new 1000

Builds a source folder with EXISTING small files that a previous run has already recorded
(rows in raw.media_files, as the flow writes them) plus NEW files, then times what a poll does
before any image is read: list the source, load the manifest of known files, compare. Prints
one JSON line. Nothing is hashed: a known path with the same size and mtime is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from flows.pipeline.discovery import list_source
from flows.settings import MEDIA_EXTENSIONS
from flows.store import warehouse as _warehouse


def build(root: Path, existing: int, new: int) -> None:
    for i in range(existing + new):
        folder = root / f"site-{i % 50:02d}" / f"cam-{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"IMG_{i:07d}.JPG").write_bytes(b"\xff\xd8" + i.to_bytes(4, "big"))


def record_known(warehouse: Path, root: Path, new: int) -> int:
    listing = list_source(str(root), MEDIA_EXTENSIONS)
    known = listing.media[: len(listing.media) - new]
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


def poll(warehouse: Path, root: Path) -> dict[str, float | int]:
    t0 = time.perf_counter()
    listing = list_source(str(root), MEDIA_EXTENSIONS)
    t1 = time.perf_counter()
    with _warehouse.connect(warehouse) as con:
        known = _warehouse.known_files(con, listing.source_uri)
    t2 = time.perf_counter()
    new = [f for f in listing.media if known.get(f.path) != (f.size, f.modified_at)]
    t3 = time.perf_counter()
    return {
        "files_listed": len(listing.media),
        "new_found": len(new),
        "list_s": round(t1 - t0, 3),
        "manifest_s": round(t2 - t1, 3),
        "compare_s": round(t3 - t2, 3),
        "poll_s": round(t3 - t0, 3),
    }


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
        recorded = record_known(warehouse, root, args.new)
        result = poll(warehouse, root)
        result.update(existing_recorded=recorded, build_s=round(built, 1), cpus=os.cpu_count() or 0)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
