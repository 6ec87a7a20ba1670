"""camtrapR ``timeShiftTable`` CSVs (or seconds) -> raw.clock_shifts, whole or not at all.

camtrapR's form (``timeShiftImages``): columns ``Station``, ``camera`` (may be empty: every
camera of the station), ``timeshift`` as ``"years:months:days hours:minutes:seconds"``
(``"1:0:0 0:0:0"``, ``"0:0:0 12:0:0"``) and ``sign`` (``+`` or ``-``). trapflow's own form:
``site_id``, ``camera_id``, ``shift_s`` (signed seconds). Station and camera column names are
matched case-insensitively. A shift is a calendar interval added to the camera's time of every
photo of that station (and camera): one year back is a calendar year, as exiftool's
``-AllDates-=1:0:0 0:0:0`` that camtrapR runs. The photos are never rewritten; the marts read
the shifted time (``int_clock_shifts``, ``int_media_deployed``).

The file is the complete list: re-loading it replaces its rows and adds nothing.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from flows.store.deployments import DeploymentsFileError
from flows.store.station_tables import ALL_CAMERAS

_SHIFT = re.compile(r"^(\d+):(\d+):(\d+) (\d+):(\d+):(\d+(?:\.\d+)?)$")


class TimeShiftError(DeploymentsFileError):
    """The time-shift table cannot be used; nothing of it was loaded."""


@dataclass(frozen=True)
class Shift:
    site_id: str
    camera_id: str
    months: int
    days: int
    micros: int
    text: str
    line: int


@dataclass
class ShiftsLoad:
    path: str
    loaded: int = 0
    changed: bool = False


def parse_shift(text: str, sign: str) -> tuple[int, int, int]:
    """(months, days, microseconds) of camtrapR's 'Y:m:d H:M:S' with sign '+' or '-'."""
    match = _SHIFT.match(text.strip())
    if not match:
        raise ValueError(
            f"timeshift {text!r} is not camtrapR's 'years:months:days hours:minutes:seconds' "
            "(e.g. '0:0:0 12:0:0')"
        )
    if sign.strip() not in ("+", "-"):
        raise ValueError(f"sign {sign!r} must be + or -")
    factor = -1 if sign.strip() == "-" else 1
    y, mo, d, h, mi = (int(g) for g in match.groups()[:5])
    micros = round((h * 3600 + mi * 60 + float(match.group(6))) * 1_000_000)
    return factor * (12 * y + mo), factor * d, factor * micros


def _column(header: list[str], *names: str) -> str | None:
    by_key = {re.sub(r"[^a-z0-9]", "", h.lower()): h for h in header}
    return next((by_key[n] for n in names if n in by_key), None)


def read_time_shifts(path: Path) -> list[Shift]:
    """Every row checked; TimeShiftError naming each bad line when any is bad."""
    if not path.is_file():
        raise TimeShiftError(f"time-shift table {path} does not exist; fix the path.")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        records = [(reader.line_num, r) for r in reader]
    station = _column(header, "station", "siteid", "site")
    camera = _column(header, "camera", "cameraid")
    shift, sign, seconds = (_column(header, n) for n in ("timeshift", "sign", "shifts"))
    if station is None or not ((shift and sign) or seconds):
        raise TimeShiftError(
            f"{path.name}: needs Station, timeshift and sign columns (camtrapR timeShiftTable) "
            f"or site_id and shift_s; the header is {', '.join(header) or 'empty'}."
        )
    shifts, errors, seen = [], [], set()
    for line, row in records:
        try:
            site = (row.get(station) or "").strip()
            if not site:
                raise ValueError(f"{station} is empty")
            cam = ((row.get(camera) or "") if camera else "").strip() or ALL_CAMERAS
            if seconds:
                value = (row.get(seconds) or "").strip()
                try:
                    months, days, micros = 0, 0, round(float(value) * 1_000_000)
                except ValueError:
                    raise ValueError(f"shift_s {value!r} is not a number of seconds") from None
                text = f"{value} s"
            else:
                text_in, sign_in = row.get(shift) or "", row.get(sign or "") or ""
                months, days, micros = parse_shift(text_in, sign_in)
                text = f"{sign_in.strip()}{text_in.strip()}"
            if (site, cam) in seen:
                raise ValueError(f"station {site} camera {cam} has a shift on an earlier line")
            seen.add((site, cam))
            shifts.append(Shift(site, cam, months, days, micros, text, line))
        except ValueError as exc:
            errors.append(f"line {line}: {exc}")
    if errors:
        raise TimeShiftError(
            f"{path.name}: {len(errors)} bad row(s), nothing was loaded: "
            f"{'; '.join(errors[:3])}. Fix them and load it again.",
            [f"{path.name} {e}" for e in errors],
        )
    return shifts


def load_time_shifts(con: duckdb.DuckDBPyConnection, path: Path) -> ShiftsLoad:
    """Replace this file's rows in raw.clock_shifts (one transaction)."""
    path = path.expanduser().absolute()
    shifts = read_time_shifts(path)
    now = datetime.now(UTC).replace(tzinfo=None)
    snapshot = (
        "select site_id, camera_id, shift, shift_text from raw.clock_shifts where source_file = ?"
    )
    con.execute("begin transaction")
    try:
        before = set(con.execute(snapshot, [str(path)]).fetchall())
        con.execute("delete from raw.clock_shifts where source_file = ?", [str(path)])
        if shifts:
            con.executemany(
                "insert into raw.clock_shifts (site_id, camera_id, shift, shift_months, "
                "shift_days, shift_micros, shift_text, source_file, source_line, loaded_at) "
                "values (?, ?, to_months(?) + to_days(?) + to_microseconds(?), "
                "?, ?, ?, ?, ?, ?, ?)",
                [
                    [s.site_id, s.camera_id, s.months, s.days, s.micros, s.months, s.days,
                     s.micros, s.text, str(path), s.line, now]
                    for s in shifts
                ],
            )  # fmt: skip
        after = set(con.execute(snapshot, [str(path)]).fetchall())
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return ShiftsLoad(str(path), loaded=len(shifts), changed=before != after)
