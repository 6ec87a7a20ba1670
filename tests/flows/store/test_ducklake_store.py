"""DuckLakeStore without models or Prefect: the same rows as the warehouse for one run, on a
DuckDB-file and a SQLite catalog; one snapshot per marts build; a user's mistake is one line
without the password."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.settings import SettingsError, load_settings
from flows.store import open_store, store_for
from flows.store.ducklake import DuckLakeStore, LakeError
from tests.conftest import query
from tests.flows.store.test_store import SOURCE, T0, _one_run, _rows


@pytest.mark.parametrize("catalog", ["ducklake:{tmp}/lake.ducklake", "ducklake:sqlite:{tmp}/c.db"])
def test_a_ducklake_gives_the_warehouses_rows(tmp_path: Path, catalog: str) -> None:
    warehouse = store_for(tmp_path / "w.duckdb")
    lake = store_for(tmp_path / "worker.duckdb", catalog.format(tmp=tmp_path))
    assert isinstance(lake, DuckLakeStore) and not lake.holds_history
    for store in (warehouse, lake):
        assert store.known_files(SOURCE) == {}
        assert store.known_media(["m0", "m9"]) == set()
        _one_run(store)
    assert _rows(warehouse) == _rows(lake)
    assert lake.known_media(["m0", "m1", "m9"]) == {"m0", "m1"}
    assert lake.known_files(SOURCE) == {
        "cam07/IMG_0.JPG": (1000, T0),
        "cam07/IMG_1.JPG": (1001, T0),
    }
    assert lake.run_count(SOURCE) == 1

    # the builder copies one snapshot and records it; a later commit is not in that copy
    builder = store_for(tmp_path / "builder.duckdb", catalog.format(tmp=tmp_path))
    seen = lake.snapshot()
    builder.prepare_build()  # copies snapshot `seen`, then flushes inlined rows (a new one)
    lake.write_quarantine([{"quarantine_id": "q9", "source_uri": SOURCE, "file_path": "x.jpg",
                            "reason": "empty_file", "error": "0 bytes", "action": "skipped",
                            "run_id": "run-2", "quarantined_at": T0}], "run-2-q")  # fmt: skip
    assert query(builder.warehouse, "select snapshot_id, media from raw.lake_snapshots") == [
        (seen, 2)
    ]
    assert query(builder.warehouse, "select count(*) from raw.quarantine") == [(2,)]
    builder.prepare_build()
    assert query(builder.warehouse, "select count(*) from raw.quarantine") == [(3,)]
    assert len(query(builder.warehouse, "select * from raw.lake_snapshots")) == 2


def test_a_bad_lake_url_is_one_settings_line(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="unknown DuckLake catalog 'mysql'"):
        load_settings(lake="ducklake:mysql:db=x")
    with pytest.raises(SettingsError, match="no lake_data_path"):
        load_settings(lake="ducklake:postgres:dbname=x host=127.0.0.1")


def test_an_unreachable_catalog_is_one_line_without_the_password(tmp_path: Path) -> None:
    from tests._servers import free_port

    settings = load_settings(
        warehouse=str(tmp_path / "w.duckdb"), lake_data_path=str(tmp_path / "data"),
        lake=f"ducklake:postgres:dbname=x host=127.0.0.1 port={free_port()} password=hunter2",
    )  # fmt: skip
    with pytest.raises(LakeError) as caught:
        open_store(settings).exists()
    message = str(caught.value)
    assert "hunter2" not in message and "\n" not in message
    assert "make lake-up" in message


def test_a_file_catalog_gets_its_folder_and_an_unwritable_one_is_one_line(
    tmp_path: Path,
) -> None:
    """A SQLite catalog in a folder not made yet is made; one under a file cannot be, and the
    line says so (not PostgreSQL's 'make lake-up')."""
    store = store_for(tmp_path / "w.duckdb", f"ducklake:sqlite:{tmp_path}/new/lake.sqlite",
                      str(tmp_path / "data"))  # fmt: skip
    assert store.exists() and (tmp_path / "new" / "lake.sqlite").is_file()
    (tmp_path / "a-file").write_text("")
    blocked = store_for(tmp_path / "w2.duckdb", f"ducklake:sqlite:{tmp_path}/a-file/lake.sqlite",
                        str(tmp_path / "data2"))  # fmt: skip
    with pytest.raises(LakeError) as caught:
        blocked.exists()
    message = str(caught.value)
    assert "\n" not in message and "make lake-up" not in message
    assert "create and write the catalog's file" in message


def test_a_row_the_warehouse_would_refuse_fails_in_the_worker(tmp_path: Path) -> None:
    """NOT NULL as in the warehouse: a media row without its timestamp source fails its
    batch whole (nothing committed), instead of every later marts build's copy."""
    import duckdb

    from tests.flows.store.test_store import _batch

    lake = store_for(tmp_path / "w.duckdb", f"ducklake:{tmp_path}/lake.ducklake")
    batch = _batch()
    batch["media"][1]["timestamp_source"] = None
    with pytest.raises(duckdb.ConstraintException, match="timestamp_source"):
        lake.load_batch("b1", **batch)
    assert lake.known_media(["m0", "m1"]) == set()
    assert lake.known_files(SOURCE) == {}
