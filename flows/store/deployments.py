"""Station tables -> raw.deployments and raw.deployment_problems, whole or not at all.

Two forms are read. A camtrapR ``CTtable`` (a ``Station`` and a setup column: see
``flows/store/station_tables.py``) and a Camtrap DP-like ``deployments.csv``, whose column names
are matched case-insensitively, with or without underscores, Camtrap DP's names accepted too:

========================  ======================================  ==========================
column                    also accepted                           value
========================  ======================================  ==========================
deployment_id (required)  deploymentID                            any text, unique
site_id (required)        locationID, locationName, site          matches the layout's {site}
camera_id (required)      cameraID, camera                        matches the layout's {camera}
deployment_start (req.)   deploymentStart, start                  ISO 8601 date or date-time
deployment_end (req.)     deploymentEnd, end                      ISO 8601, not before start
latitude, longitude       lat, lon, lng                           decimal degrees
utc_offset                timezone_offset                         '+02:00', '-0700', 'Z'
timezone                  tz                                      IANA name ('Asia/Kuching'),
                                                                  or an offset as utc_offset
session_id                session                                 any text
clock_offset_s            clock_offset, clockOffset               seconds to add to the camera
========================  ======================================  ==========================

Times are camera-local wall times; an ISO offset on start/end is moved to ``utc_offset``. A date
without a time places the photos of the whole day (start 00:00, end 23:59:59.999999) and is
marked ``*_is_date``: the marts then count camtrapR's half day of effort on it. The file is the
complete list: rows from it that are no longer there are removed, so re-loading it never
duplicates anything. A table with a bad row loads nothing (the previous load stays in force):
``StationTableError`` names every bad line and what to fix.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import duckdb

from flows.errors import UserError
from flows.store.station_tables import (
    CTOptions,
    ParsedTable,
    check_zone,
    is_ct_table,
    parse_ct_table,
)

COLUMNS: dict[str, tuple[str, ...]] = {
    "deployment_id": ("deploymentid",),
    "site_id": ("locationid", "locationname", "site", "station"),
    "camera_id": ("cameraid", "camera"),
    "deployment_start": ("deploymentstart", "start", "setupdate"),
    "deployment_end": ("deploymentend", "end", "retrievaldate"),
    "latitude": ("lat",),
    "longitude": ("lon", "lng", "long"),
    "utc_offset": ("timezoneoffset", "utcoffset"),
    "timezone": ("tz", "timezonename"),
    "session_id": ("session", "sessionid"),
    "clock_offset_s": ("clockoffset", "clockoffsets"),
}
REQUIRED = ("deployment_id", "site_id", "camera_id", "deployment_start", "deployment_end")
_OFFSET = re.compile(r"^(?:Z|UTC|[+-](?:[01]\d|2[0-3]):?[0-5]\d)$")


class DeploymentsFileError(UserError, ValueError):
    """The table cannot be used: missing, unreadable, required columns absent, or bad rows
    (``errors``: one line each). Nothing of it was loaded."""

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


#: The name the issue and camtrapR use; the same error.
StationTableError = DeploymentsFileError


@dataclass
class DeploymentsLoad:
    path: str
    rows: int = 0
    loaded: int = 0
    problems: int = 0
    removed: int = 0
    changed: bool = False
    form: str = "deployments.csv"
    errors: list[str] = field(default_factory=list)


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _header_map(header: list[str], path: Path) -> dict[str, str]:
    """Our column name -> the file's column name."""
    by_key = {_key(h): h for h in header}
    found: dict[str, str] = {}
    for column, aliases in COLUMNS.items():
        for key in (_key(column), *aliases):
            if key in by_key:
                found[column] = by_key[key]
                break
    missing = [c for c in REQUIRED if c not in found]
    if missing:
        raise DeploymentsFileError(
            f"{path}: required column(s) {', '.join(missing)} not found in the header "
            f"({', '.join(header) or 'empty'}). Add them (Camtrap DP names such as deploymentID, "
            "locationID, cameraID, deploymentStart, deploymentEnd also work), or, for a camtrapR "
            "CTtable, name its station and setup columns in the settings (station_column, "
            "station_setup_column)."
        )
    return found


def _normal_offset(text: str) -> str:
    if text in ("Z", "UTC"):
        return "+00:00"
    return text if ":" in text else f"{text[:3]}:{text[3:]}"


def _parse_time(text: str, *, is_end: bool) -> tuple[datetime, str | None]:
    """Camera-local wall time and the ISO offset it carried (if any)."""
    value = text.strip().replace(" ", "T", 1) if "T" not in text else text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if len(text.strip()) == 10:  # a date alone: the whole day
        parsed = datetime.combine(parsed.date(), time.max if is_end else time.min)
    offset = None
    if parsed.tzinfo is not None:
        delta = parsed.utcoffset() or timedelta(0)
        minutes = int(delta.total_seconds() // 60)
        sign = "-" if minutes < 0 else "+"
        offset = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
        parsed = parsed.replace(tzinfo=None)
    return parsed, offset


def _float(text: str, name: str, low: float | None = None, high: float | None = None) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a number") from None
    if value != value or (low is not None and high is not None and not low <= value <= high):
        raise ValueError(f"{name} {text!r} must be between {low} and {high}")
    return value


def _zone_or_offset(
    raw: dict[str, str], offsets: list[str | None]
) -> tuple[str | None, str | None]:
    """(utc_offset, IANA zone): a zone name in `timezone`, an offset in either column."""
    zone = raw.get("timezone", "").strip()
    utc_offset = raw.get("utc_offset", "").strip()
    if zone and _OFFSET.match(zone):
        zone, utc_offset = "", utc_offset or zone
    if zone:
        check_zone(zone)
    utc_offset = utc_offset or next((o for o in offsets if o), "")
    if utc_offset and not _OFFSET.match(utc_offset):
        raise ValueError(
            f"utc_offset {utc_offset!r} is not an offset like +02:00, -0700 or Z "
            "(put zone names such as Africa/Nairobi in a timezone column)"
        )
    return (_normal_offset(utc_offset) if utc_offset else None), zone or None


def _row(raw: dict[str, str]) -> dict[str, Any]:
    """One validated row, or ValueError saying what to fix."""
    row: dict[str, Any] = {}
    for column in ("deployment_id", "site_id", "camera_id"):
        value = raw.get(column, "").strip()
        if not value:
            raise ValueError(f"{column} is empty")
        row[column] = value
    offsets = []
    for column, is_end in (("deployment_start", False), ("deployment_end", True)):
        text = raw.get(column, "").strip()
        if not text:
            raise ValueError(f"{column} is empty")
        try:
            row[column], offset = _parse_time(text, is_end=is_end)
        except ValueError:
            raise ValueError(
                f"{column} {text!r} is not an ISO 8601 date or date-time "
                "(e.g. 2024-06-01 or 2024-06-01T09:30:00+02:00)"
            ) from None
        row["end_is_date" if is_end else "start_is_date"] = len(text) == 10
        offsets.append(offset)
    if row["deployment_end"] < row["deployment_start"]:
        raise ValueError(
            f"deployment_end {row['deployment_end']} is before deployment_start "
            f"{row['deployment_start']}"
        )
    lat, lon = raw.get("latitude", "").strip(), raw.get("longitude", "").strip()
    row["latitude"] = _float(lat, "latitude", -90.0, 90.0) if lat else None
    row["longitude"] = _float(lon, "longitude", -180.0, 180.0) if lon else None
    if (row["latitude"] is None) != (row["longitude"] is None):
        raise ValueError("give both latitude and longitude, or neither")
    row["utc_offset"], row["timezone"] = _zone_or_offset(raw, offsets)
    clock = raw.get("clock_offset_s", "").strip()
    row["clock_offset_s"] = _float(clock, "clock_offset_s") if clock else 0.0
    row["session_id"] = raw.get("session_id", "").strip() or None
    return row


def _check_deployments(records: list[tuple[int, dict[str, str]]],
                       columns: dict[str, str]) -> ParsedTable:  # fmt: skip
    table = ParsedTable([], [], [])
    seen: dict[str, int] = {}
    for line, record in records:
        raw = {ours: (record.get(theirs) or "") for ours, theirs in columns.items()}
        try:
            row = _row(raw)
            if row["deployment_id"] in seen:
                raise ValueError(
                    f"deployment_id {row['deployment_id']!r} already used on line "
                    f"{seen[row['deployment_id']]}; ids must be unique"
                )
            for other in table.deployments:
                if (
                    (other["site_id"], other["camera_id"]) == (row["site_id"], row["camera_id"])
                    and row["deployment_start"] <= other["deployment_end"]
                    and other["deployment_start"] <= row["deployment_end"]
                ):
                    raise ValueError(
                        f"overlaps deployment {other['deployment_id']!r} (line "
                        f"{other['source_line']}) of the same camera; fix the dates"
                    )
        except ValueError as exc:
            table.errors.append(f"line {line}: {exc}")
            continue
        seen[row["deployment_id"]] = line
        table.deployments.append({**row, "source_line": line})
    return table


def read_station_table(
    path: Path, options: CTOptions | None = None
) -> tuple[ParsedTable, int, str]:
    """Every row of a CTtable or deployments.csv checked; (table, data rows, form)."""
    options = options or CTOptions()
    if not path.is_file():
        raise DeploymentsFileError(
            f"station table {path} does not exist; fix TRAPFLOW_DEPLOYMENTS_CSV "
            "(or remove it to infer deployments from the images)."
        )
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in reader.fieldnames or []]
            reader.fieldnames = header
            records = [
                (reader.line_num, {k: v for k, v in r.items() if isinstance(k, str)})
                for r in reader
                if any(isinstance(v, str) and v.strip() for v in r.values())
            ]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DeploymentsFileError(
            f"{path} is not a readable UTF-8 CSV ({exc}); save it as CSV (UTF-8) and retry."
        ) from exc
    if is_ct_table(header, options):
        try:
            return parse_ct_table(records, header, options), len(records), "CTtable"
        except ValueError as exc:
            raise DeploymentsFileError(
                f"{path.name}: {exc}; fix the table or the settings."
            ) from None
    columns = _header_map(header, path)
    return _check_deployments(records, columns), len(records), "deployments.csv"


def read_deployments_csv(
    path: Path, options: CTOptions | None = None
) -> tuple[list[dict[str, Any]], list[str], int]:
    """Valid rows (with source_line), one message per bad row, and the number of data rows."""
    table, total, _ = read_station_table(path, options)
    errors = [f"{path.name} {e}; fix it and re-run." for e in table.errors]
    return table.deployments, errors, total


_DEPLOYMENT_COLUMNS = (
    "deployment_id", "site_id", "camera_id", "session_id", "deployment_start", "deployment_end",
    "start_is_date", "end_is_date", "latitude", "longitude", "station_x", "station_y",
    "station_crs", "utc_offset", "timezone", "clock_offset_s", "problems_listed",
)  # fmt: skip
_PROBLEM_COLUMNS = (
    "deployment_id", "problem_number", "problem_from", "problem_to", "from_is_date", "to_is_date",
)  # fmt: skip


def load_deployments_csv(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    options: CTOptions | None = None,
    *,
    transaction: bool = True,
) -> DeploymentsLoad:
    """Check the whole table, then replace this file's rows in raw.deployments and
    raw.deployment_problems (one transaction; ``transaction`` False: the caller's, as
    ``trapflow import camtrapdp`` loads a whole package in one).

    Raises DeploymentsFileError when the file is unusable or any row is bad: then nothing is
    written and the previous load stays in force. Rows that came from this file earlier and
    are gone now are removed, so raw mirrors the file.
    """
    path = path.expanduser().absolute()
    table, total, form = read_station_table(path, options)
    if table.errors:
        shown = "; ".join(table.errors[:3])
        more = f" (and {len(table.errors) - 3} more)" if len(table.errors) > 3 else ""
        raise DeploymentsFileError(
            f"{path.name}: {len(table.errors)} bad row(s), nothing was loaded: {shown}{more}. "
            "Fix them and load it again.",
            [f"{path.name} {e}" for e in table.errors],
        )
    result = DeploymentsLoad(str(path), rows=total, form=form)
    now = datetime.now(UTC).replace(tzinfo=None)
    if transaction:
        con.execute("begin transaction")
    try:
        before = _snapshot(con, path)
        con.execute("delete from raw.deployments where source_file = ?", [str(path)])
        con.execute("delete from raw.deployment_problems where source_file = ?", [str(path)])
        _insert(con, "raw.deployments", _DEPLOYMENT_COLUMNS, table.deployments, path, now)
        _insert(con, "raw.deployment_problems", _PROBLEM_COLUMNS, table.problems, path, now)
        after = _snapshot(con, path)
        if transaction:
            con.execute("commit")
    except BaseException:
        if transaction:
            con.execute("rollback")
        raise
    result.loaded, result.problems = len(table.deployments), len(table.problems)
    result.removed = len({r[0] for r in before[0]} - {r[0] for r in after[0]})
    result.changed = before != after
    return result


def _insert(con: duckdb.DuckDBPyConnection, name: str, columns: tuple[str, ...],
            rows: list[dict[str, Any]], path: Path, now: datetime) -> None:  # fmt: skip
    if not rows:
        return
    names = (*columns, "source_file", "source_line", "loaded_at")
    con.executemany(
        f"insert or replace into {name} ({', '.join(names)}) "
        f"values ({', '.join('?' for _ in names)})",
        [[row.get(c) for c in columns] + [str(path), row["source_line"], now] for row in rows],
    )


def _snapshot(
    con: duckdb.DuckDBPyConnection, path: Path
) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    """This file's rows without load bookkeeping, to tell whether a re-load changed anything."""
    deployments = con.execute(
        f"select {', '.join(_DEPLOYMENT_COLUMNS)} from raw.deployments where source_file = ?",
        [str(path)],
    ).fetchall()
    problems = con.execute(
        f"select {', '.join(_PROBLEM_COLUMNS)} from raw.deployment_problems where source_file = ?",
        [str(path)],
    ).fetchall()
    return set(deployments), set(problems)
