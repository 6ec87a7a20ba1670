"""marts.fct_time_problems on a real warehouse built by dbt: a camera whose clock is 12 hours
behind (an AM/PM swap: its colour day photos are stamped at night, its greyscale IR night photos
by day) gets a +12 h proposal, a camera whose info bar is an hour ahead of its EXIF gets +1 h,
and the cameras whose clocks are right (or whose file times are scattered copy times) get none.
Accepting both proposals (review.clock_shifts rows) shifts the photos' times and empties the
mart, and marts_freshness says stale between the accept and the rebuild."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.settings import Settings
from flows.store.dbt import run_dbt
from flows.store.time_shifts import parse_shift
from flows.store.warehouse import ensure_schema, open_file
from tests.conftest import query

LAT, LON = 5.45, 117.25  # camtrapR's Borneo stations; UTC+8
TRUE_TIMES = [(1, True), (13, False), (14, False), (23, True)]  # (hour, greyscale): IR at night
DAYS = 6  # 4 photos a day: 24 per camera


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def clock_rows() -> list[dict[str, Any]]:
    """Four cameras at one site: C1 right, C2 12 h behind, C3 info bar 1 h ahead of EXIF,
    C4 right but with file times of a card copy (one afternoon)."""
    rows = []
    copied = datetime(2024, 1, 1, 15, 0)
    for camera in ("C1", "C2", "C3", "C4"):
        for day in range(DAYS):
            for i, (hour, grey) in enumerate(TRUE_TIMES):
                true = datetime(2009, 4, 10 + day, hour, 7, 0)
                stamped = true - timedelta(hours=12) if camera == "C2" else true
                n = day * len(TRUE_TIMES) + i
                rows.append({
                    "media_id": _sha(f"{camera}-{n}"), "camera_id": camera,
                    "captured_at": stamped, "is_greyscale": grey,
                    "ocr_captured_at": stamped + timedelta(hours=1) if camera == "C3" else None,
                    "file_local_at": copied + timedelta(minutes=n) if camera == "C4"
                    else stamped + timedelta(seconds=30),
                    "file_path": f"S1/{camera}/IMG{n:04d}.JPG",
                })  # fmt: skip
    return rows


def build_clock_warehouse(path: Path) -> Path:
    """raw.media of clock_rows() in a fresh warehouse (marts not built)."""
    with open_file(path) as con:
        ensure_schema(con)
        con.executemany(
            "insert into raw.media (media_id, source_uri, file_path, file_name, file_extension, "
            "file_size, media_type, image_format, site_id, camera_id, captured_at, utc_offset, "
            "timestamp_source, timestamp_tag, latitude, longitude, run_id, ingested_at, "
            "is_greyscale, ocr_captured_at, file_local_at) values (?, '/cards', ?, ?, 'jpg', "
            "1000, 'image', 'JPEG', 'S1', ?, ?, '+08:00', 'exif', 'DateTimeOriginal', ?, ?, "
            "'run-1', timestamp '2024-01-02 00:00:00', ?, ?, ?)",
            [
                [r["media_id"], r["file_path"], r["file_path"].rsplit("/", 1)[-1],
                 r["camera_id"], r["captured_at"], LAT, LON, r["is_greyscale"],
                 r["ocr_captured_at"], r["file_local_at"]]
                for r in clock_rows()
            ],
        )  # fmt: skip
    return path


def accept(path: Path, site: str, camera: str, shift_s: int, text: str) -> None:
    """What the Time problems page's Accept writes."""
    with open_file(path) as con:
        con.execute(
            "insert into review.clock_shifts values (?, ?, ?, 0, 0, ?, ?, 'test', 'tester', "
            "timestamp '2024-01-03 00:00:00')",
            [f"{camera}-shift", site, camera, shift_s * 1_000_000, text],
        )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Settings]:
    home = tmp_path_factory.mktemp("time-problems")
    warehouse = build_clock_warehouse(home / "warehouse.duckdb")
    settings = Settings(warehouse=warehouse, home=home / "home")
    run_dbt(settings, "build")
    return warehouse, settings


PROBLEM_SQL = (
    "select camera_id, kind, photos_checked, photos_disagreeing, photos_fixed_by_shift, "
    "proposed_shift_s, proposed_timeshift, proposed_sign, proposed_shift_text "
    "from marts.fct_time_problems order by camera_id, kind"
)


def test_a_12_hour_clock_and_an_hour_off_info_bar_are_proposed_and_nothing_else(built):
    warehouse, _ = built
    problems = query(warehouse, PROBLEM_SQL)
    assert problems == [
        ("C2", "day_night_swap", 24, 24, 24, 43200, "0:0:0 12:0:0", "+", "+0:0:0 12:0:0"),
        ("C3", "exif_vs_ocr", 24, 24, 24, 3600, "0:0:0 1:0:0", "+", "+0:0:0 1:0:0"),
    ]
    for *_, shift_s, timeshift, sign, _text in problems:  # camtrapR's form, read back as such
        assert parse_shift(timeshift, sign) == (0, 0, shift_s * 1_000_000)
    # the evidence the right cameras pass: sun at each photo, and file times within 30 s
    day, night = query(
        warehouse,
        "select max(sun_elevation) filter (where not is_greyscale), "
        "max(sun_elevation) filter (where is_greyscale) "
        "from intermediate.int_media_time_evidence where camera_id = 'C1'",
    )[0]
    assert day > 30 and night < -30
    assert query(
        warehouse,
        "select count(*) from intermediate.int_media_time_evidence "
        "where camera_id = 'C1' and file_offset_s = 30",
    ) == [(24,)]


def test_accepted_shifts_move_the_photos_and_the_problems_go(built):
    warehouse, settings = built
    accept(warehouse, "S1", "C2", 43200, "+0:0:0 12:0:0")
    accept(warehouse, "S1", "C3", 3600, "+0:0:0 1:0:0")
    assert query(
        warehouse, "select station_tables_changed, is_stale from marts.marts_freshness"
    ) == [(True, True)]
    run_dbt(settings, "build")
    assert query(warehouse, PROBLEM_SQL) == []
    shifted = query(
        warehouse,
        "select camera_id, min(captured_at - camera_captured_at), max(clock_shift) "
        "from intermediate.int_media_located where camera_id in ('C1', 'C2', 'C3') "
        "group by camera_id order by camera_id",
    )
    assert shifted == [
        ("C1", timedelta(0), None),
        ("C2", timedelta(hours=12), "+0:0:0 12:0:0"),
        ("C3", timedelta(hours=1), "+0:0:0 1:0:0"),
    ]
    assert query(warehouse, "select is_stale from marts.marts_freshness") == [(False,)]
