"""bench/synthetic_warehouse.py at 10k detections: the rows are valid raw rows, the same seed
gives the same rows, and an append adds about the asked fraction after the last image."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from flows.store.warehouse import open_file

BENCH = Path(__file__).resolve().parents[2] / "bench" / "synthetic_warehouse.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("synthetic_warehouse", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generator_makes_valid_reproducible_rows(tmp_path: Path) -> None:
    synthetic = _module()
    first = synthetic.generate(tmp_path / "a.duckdb", 10_000)
    second = synthetic.generate(tmp_path / "b.duckdb", 10_000)
    assert 9_000 <= first["detections"] <= 11_500
    # same seed, same shape (DuckDB's random() is not reproducible across threads row by row,
    # so the derived tables are compared within 2 %)
    assert (first["media"], first["detections"]) == (second["media"], second["detections"])
    for table in ("classifications", "detection_flags"):
        assert abs(first[table] - second[table]) <= 0.02 * max(first[table], 50), table
    with open_file(tmp_path / "a.duckdb") as con:
        bad = con.execute(
            "select count(*) from raw.detections d left join raw.media m using (media_id)"
            " where m.media_id is null or d.confidence not between 0.05 and 1"
            " or (d.category, d.category_id) not in (('animal', 1), ('person', 2), ('vehicle', 3))"
        ).fetchone()
        last = con.execute("select max(captured_at) from raw.media").fetchone()
    assert bad == (0,)
    added = synthetic.append_new(tmp_path / "a.duckdb", 0.01)
    assert added["media"] == first["media"] + added["added_images"] > first["media"]
    with open_file(tmp_path / "a.duckdb") as con:
        new_min = con.execute(
            "select min(captured_at) from raw.media where run_id != 'synthetic-0'"
        ).fetchone()
    assert last and new_min and new_min[0] >= last[0]
