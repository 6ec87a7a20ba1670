"""Threads of one process opening, writing and closing connections to one DuckDB file.

    .venv/bin/python bench/connection_race.py nolock 400   # DuckDB's own behaviour
    .venv/bin/python bench/connection_race.py lock 400     # through flows.store.warehouse.connect

``process_batches`` checks the next batch against the warehouse on one thread while another
writes the previous batch. Without the process-wide lock of ``flows.store.warehouse.connect``, 2 of
3 runs of 400 iterations failed on the 2-core development machine ("Unique file handle
conflict"; once in CI: "Table Function with name python_arrow_scan does not exist"); with it,
0 of 3. At test sizes (80 iterations) it never failed, so this is a script, not a test.
"""

from __future__ import annotations

import sys
import tempfile
import threading
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.store import warehouse as _warehouse


def main() -> int:
    mode, iterations = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 400
    path = Path(tempfile.mkdtemp(prefix="trapflow-race-")) / "race.duckdb"
    with _warehouse.connect(path) as con:
        _warehouse.ensure_schema(con)
    connect = _warehouse.connect if mode == "lock" else _warehouse._connect
    errors: list[str] = []

    def reader() -> None:
        for i in range(iterations):
            try:
                with connect(path) as con:
                    _warehouse.known_media(con, [f"x{i}", "y"])
            except Exception as exc:  # what the race raises
                errors.append(f"read: {exc!r}"[:140])

    def writer() -> None:
        for i in range(iterations):
            rows = [
                {"source_uri": "s", "file_path": f"p{i}-{j}", "file_size": 1, "media_id": None,
                 "status": "duplicate", "run_id": "r", "seen_at": datetime(2024, 1, 1)}
                for j in range(5)
            ]  # fmt: skip
            try:
                with connect(path) as con:
                    _warehouse.load_batch(con, media=[], detections=[], quarantine=[], files=rows)
            except Exception as exc:
                errors.append(f"write: {exc!r}"[:140])

    threads = [threading.Thread(target=f) for f in (reader, writer, reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"{mode}: {len(errors)} errors in {3 * iterations} connections", errors[:3])
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
