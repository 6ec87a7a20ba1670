"""Polling that stays cheap: os.scandir listing, date-layout pruning, the Arrow comparison, and
the periodic full listing that catches a late file in an old month (real folders, a real
warehouse file, fsspec's memory filesystem for a remote source)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import fsspec
import pyarrow as pa
import pytest

from flows.pipeline import discovery
from flows.pipeline.discovery import (
    list_source,
    newest_months,
    poll_source,
    site_and_camera,
    wants_full_listing,
)
from flows.settings import Settings
from flows.store import open_store
from flows.store import warehouse as _warehouse

LAYOUT = "{site}/{camera}/{yyyy-mm}/..."
EXT = ("jpg",)


def _write(root: Path, rel: str, data: bytes = b"\xff\xd8x") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _known(root: Path, paths: list[str]) -> pa.Table:
    """What a store returns for files it has seen (their size and mtime as listed)."""
    listed = {f.path: f for f in list_source(str(root), EXT).media}
    files = [listed[p] for p in paths]
    return pa.table({
        "file_path": pa.array([f.path for f in files], pa.string()),
        "file_size": pa.array([f.size for f in files], pa.int64()),
        "file_modified_at": pa.array([f.modified_at for f in files], pa.timestamp("us")),
    })  # fmt: skip


def _card(root: Path) -> tuple[list[str], list[str]]:
    """Two cameras with months 2024-01..03 known, and new files in the newest known month,
    in new months, at a camera nothing is known of, and in an odd (non-date) folder."""
    known = [f"S1/C1/2024-{m:02d}/IMG_{m}{i}.JPG" for m in (1, 2, 3) for i in range(3)]
    known += [f"S1/C2/2023-{m:02d}/IMG_{m}{i}.jpg" for m in (11, 12) for i in range(2)]
    new = [
        "S1/C1/2024-03/IMG_late_in_newest.jpg",  # the newest known month is listed again
        "S1/C1/2024-04/IMG_1.jpg",
        "S1/C1/2025-01/sub/IMG_2.jpg",
        "S1/C2/2024-01/IMG_3.jpg",
        "S1/C1/misc/IMG_odd.jpg",  # not a date: always listed
        "S2/C9/2020-01/IMG_4.jpg",  # a camera with nothing known: all of it
    ]
    for rel in known + new:
        _write(root, rel)
    return known, new


def test_date_layout_lists_only_new_months_and_finds_every_new_file(tmp_path: Path) -> None:
    root = tmp_path / "card"
    known, new = _card(root)
    table = _known(root, known)
    assert newest_months(discovery.known_folders(table), LAYOUT) == {
        "S1/C1": (2024, 3), "S1/C2": (2023, 12)
    }  # fmt: skip
    listing, found = poll_source(str(root), EXT, table, layout=LAYOUT, full=False)
    assert sorted(f.path for f in found) == sorted(new)
    listed = {f.path for f in listing.media}
    # 2024-01, 2024-02 at C1 and 2023-11 at C2 were not listed at all
    assert listing.pruned_folders == 3
    skipped = ("S1/C1/2024-01", "S1/C1/2024-02", "S1/C2/2023-11")
    assert not any(p.startswith(skipped) for p in listed)
    assert {p for p in known if p.startswith(("S1/C1/2024-03", "S1/C2/2023-12"))} <= listed
    assert "S1/C1/misc/IMG_odd.jpg" in listed
    # the full listing sees the same new files, and every known one
    full, found_full = poll_source(str(root), EXT, table, layout=LAYOUT, full=True)
    assert sorted(f.path for f in found_full) == sorted(new)
    assert full.pruned_folders == 0 and len(full.media) == len(known) + len(new)
    # the file names still give site and camera; an odd folder falls back to its parent
    assert site_and_camera("S1/C1/2024-04/IMG_1.jpg", LAYOUT) == ("S1", "C1")
    assert site_and_camera("S1/C1/misc/IMG_odd.jpg", LAYOUT) == ("misc", "misc")


def test_a_changed_file_is_new_and_an_unchanged_one_is_not(tmp_path: Path) -> None:
    root = tmp_path / "card"
    known, _new = _card(root)
    table = _known(root, known)
    changed = root / known[0]
    changed.write_bytes(b"\xff\xd8 longer now")
    stamp = datetime(2024, 5, 1, tzinfo=UTC).timestamp()
    touched = root / known[1]
    os.utime(touched, (stamp, stamp))
    _listing, found = poll_source(str(root), EXT, table, layout=None, full=True)
    paths = {f.path for f in found}
    assert known[0] in paths and known[1] in paths
    assert not paths & set(known[2:])


def test_year_and_month_folders_prune_by_year_then_month(tmp_path: Path) -> None:
    root = tmp_path / "card"
    layout = "{site}/{camera}/{yyyy}/{mm}"
    known = ["A/B/2023/12/x.jpg", "A/B/2024/02/x.jpg"]
    new = ["A/B/2024/02/y.jpg", "A/B/2024/03/x.jpg", "A/B/2025/01/x.jpg"]
    for rel in [*known, "A/B/2024/01/old.jpg", *new]:
        _write(root, rel)
    table = _known(root, known)
    listing, found = poll_source(str(root), EXT, table, layout=layout, full=False)
    assert sorted(f.path for f in found) == sorted(new)
    assert listing.pruned_folders == 2  # 2023, then 2024/01


def test_layouts_that_cannot_be_pruned_list_everything(tmp_path: Path) -> None:
    root = tmp_path / "card"
    known, new = _card(root)
    table = _known(root, known)
    for layout in (None, "{site}/{camera}/...", "{site}/{camera}_{yyyy-mm}/..."):
        listing, found = poll_source(str(root), EXT, table, layout=layout, full=False)
        assert listing.pruned_folders == 0 and sorted(f.path for f in found) == sorted(new)
    assert discovery._date_plan("{site}/{camera}_{yyyy-mm}/...") is None
    assert discovery._date_plan("{yyyy-mm}/{site}/{camera}") is not None


def test_links_are_reported_or_skipped_never_followed_out(tmp_path: Path) -> None:
    root, outside = tmp_path / "card", tmp_path / "elsewhere"
    _write(root, "S1/C1/a.jpg")
    _write(outside, "secret.jpg")
    (root / "S1" / "C1" / "escape.jpg").symlink_to(outside / "secret.jpg")
    (root / "S1" / "out").symlink_to(outside, target_is_directory=True)
    (root / "S1" / "again").symlink_to(root / "S1" / "C1", target_is_directory=True)
    (root / "S1" / "C1" / "inside.jpg").symlink_to(root / "S1" / "C1" / "a.jpg")
    _write(root, "S1/C1/notes.txt")
    listing = list_source(str(root), EXT)
    assert [f.path for f in listing.media] == ["S1/C1/a.jpg", "S1/C1/inside.jpg"]
    assert listing.outside_root == ("S1/C1/escape.jpg", "S1/out")
    assert listing.other_files == 1


def test_a_remote_source_is_pruned_too() -> None:
    fs = fsspec.filesystem("memory")
    base = "/pollcard"
    known = ["S1/C1/2024-01/a.jpg", "S1/C1/2024-02/a.jpg"]
    new = ["S1/C1/2024-02/b.jpg", "S1/C1/2024-03/a.jpg", "S1/C1/odd/a.JPG"]
    try:
        for rel in [*known, *new]:
            fs.pipe(f"{base}/{rel}", b"\xff\xd8x")
        fs.pipe(f"{base}/S1/C1/2024-02/meta.xml", b"<x/>")
        listed = {f.path: f for f in list_source(f"memory://{base}", EXT).media}
        assert set(listed) == {*known, *new}
        table = pa.table({
            "file_path": known, "file_size": [listed[p].size for p in known],
            "file_modified_at": pa.array([listed[p].modified_at for p in known],
                                         pa.timestamp("us")),
        })  # fmt: skip
        listing, found = poll_source(f"memory://{base}", EXT, table, layout=LAYOUT, full=False)
        assert sorted(f.path for f in found) == sorted(new)
        assert listing.pruned_folders == 1 and listing.other_files == 1
    finally:
        fs.rm(base, recursive=True)


def test_full_listing_every_n_runs_catches_a_late_file(tmp_path: Path) -> None:
    """Through the task and a real warehouse: the late file in an old month waits for the
    periodic full listing (or --full-listing)."""
    from flows.tasks.storage import list_new_media

    assert [wants_full_listing(False, 3, n) for n in range(7)] == [
        True, False, False, True, False, False, True
    ]  # fmt: skip
    assert wants_full_listing(True, 0, 5) and not wants_full_listing(False, 0, 5)
    root = tmp_path / "card"
    known, new = _card(root)
    settings = Settings(
        source=str(root), warehouse=tmp_path / "w.duckdb", layout=LAYOUT, full_listing_every_n=3
    )
    store = open_store(settings)
    listing, found = list_new_media.fn(settings, store)  # run 0: full
    assert len(found) == len(known) + len(new)
    now = datetime.now(UTC).replace(tzinfo=None)
    with store.writing() as con:
        con.executemany(
            "insert into raw.media_files values (?, ?, ?, ?, null, 'ingested', 'r0', ?)",
            [[listing.source_uri, f.path, f.size, f.modified_at, now] for f in found],
        )
    store.start_run("r0", listing.source_uri, None, now)
    _write(root, "S1/C1/2024-01/IMG_late.jpg")  # a card read late, into an old month
    _write(root, "S1/C1/2025-02/IMG_new.jpg")
    for run in ("r1", "r2"):  # runs 1 and 2: pruned, the late file is not seen
        listing, found = list_new_media.fn(settings, store)
        assert [f.path for f in found] == ["S1/C1/2025-02/IMG_new.jpg"]
        assert listing.pruned_folders > 0
        store.start_run(run, listing.source_uri, None, now)
    listing, found = list_new_media.fn(settings, store)  # run 3: full
    assert [f.path for f in found] == ["S1/C1/2024-01/IMG_late.jpg", "S1/C1/2025-02/IMG_new.jpg"]
    forced = settings.model_copy(update={"full_listing": True, "full_listing_every_n": 0})
    store.start_run("r3", listing.source_uri, None, now)
    assert len(list_new_media.fn(forced, store)[1]) == 2
    with _warehouse.connect(settings.warehouse_path, read_only=True) as con:
        assert _warehouse.run_count(con, listing.source_uri) == 4


@pytest.mark.parametrize("name", ["2024-13", "24-01", "2024-1", "2024-00", "notes"])
def test_date_tokens_match_only_dates(name: str) -> None:
    plan = discovery._date_plan(LAYOUT)
    assert plan is not None and plan.month(["2024-07"]) == (2024, 7)
    assert plan.month([name]) is None
