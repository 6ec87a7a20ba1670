"""deployments.csv -> raw.deployments: check every row, load the good ones, report the bad ones.

The CSV is Camtrap DP-like. Column names are matched case-insensitively, with or without
underscores, and Camtrap DP's names are accepted too:

========================  ======================================  ==========================
column                    also accepted                           value
========================  ======================================  ==========================
deployment_id (required)  deploymentID                            any text, unique
site_id (required)        locationID, locationName, site          matches the layout's {site}
camera_id (required)      cameraID, camera                        matches the layout's {camera}
deployment_start (req.)   deploymentStart, start                  ISO 8601 date or date-time
deployment_end (req.)     deploymentEnd, end                      ISO 8601, not before start
latitude, longitude       lat, lon, lng                           decimal degrees
utc_offset                timezone, timezone_offset               '+02:00', '-0700', 'Z'
clock_offset_s            clock_offset, clockOffset               seconds to add to the camera
========================  ======================================  ==========================

Times are camera-local wall times; an ISO offset on start/end is moved to ``utc_offset``. A date
without a time means the whole day (start 00:00, end 23:59:59.999999). The file is the
complete list: rows from it that are no longer there are removed, so re-loading it never
duplicates anything. A bad row is skipped with a message naming its line and what to fix; the
other rows still load.
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

COLUMNS: dict[str, tuple[str, ...]] = {
    "deployment_id": ("deploymentid",),
    "site_id": ("locationid", "locationname", "site", "station"),
    "camera_id": ("cameraid", "camera"),
    "deployment_start": ("deploymentstart", "start", "setupdate"),
    "deployment_end": ("deploymentend", "end", "retrievaldate"),
    "latitude": ("lat",),
    "longitude": ("lon", "lng", "long"),
    "utc_offset": ("timezone", "timezoneoffset", "utcoffset"),
    "clock_offset_s": ("clockoffset", "clockoffsets"),
}
REQUIRED = ("deployment_id", "site_id", "camera_id", "deployment_start", "deployment_end")
_OFFSET = re.compile(r"^(?:Z|UTC|[+-](?:[01]\d|2[0-3]):?[0-5]\d)$")


class DeploymentsFileError(UserError, ValueError):
    """The file as a whole cannot be used (missing, unreadable, required columns absent)."""


@dataclass
class DeploymentsLoad:
    path: str
    rows: int = 0
    loaded: int = 0
    removed: int = 0
    changed: bool = False
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
            "locationID, cameraID, deploymentStart, deploymentEnd also work)."
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
    utc_offset = raw.get("utc_offset", "").strip() or next((o for o in offsets if o), "")
    if utc_offset and not _OFFSET.match(utc_offset):
        raise ValueError(
            f"utc_offset {utc_offset!r} is not an offset like +02:00, -0700 or Z "
            "(zone names such as Africa/Nairobi are not supported; give the offset)"
        )
    row["utc_offset"] = _normal_offset(utc_offset) if utc_offset else None
    clock = raw.get("clock_offset_s", "").strip()
    row["clock_offset_s"] = _float(clock, "clock_offset_s") if clock else 0.0
    return row


def read_deployments_csv(path: Path) -> tuple[list[dict[str, Any]], list[str], int]:
    """Valid rows (with source_line), one message per bad row, and the number of data rows."""
    if not path.is_file():
        raise DeploymentsFileError(
            f"deployments file {path} does not exist; fix TRAPFLOW_DEPLOYMENTS_CSV "
            "(or remove it to infer deployments from the images)."
        )
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            columns = _header_map(header, path)
            records = [(reader.line_num, r) for r in reader]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DeploymentsFileError(
            f"{path} is not a readable UTF-8 CSV ({exc}); save it as CSV (UTF-8) and retry."
        ) from exc
    good: list[dict[str, Any]] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for line, record in records:
        if not any((v or "").strip() for v in record.values() if isinstance(v, str)):
            continue  # blank line
        raw = {ours: (record.get(theirs) or "") for ours, theirs in columns.items()}
        try:
            row = _row(raw)
            if row["deployment_id"] in seen:
                raise ValueError(
                    f"deployment_id {row['deployment_id']!r} already used on line "
                    f"{seen[row['deployment_id']]}; ids must be unique"
                )
            for other in good:
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
            errors.append(
                f"{path.name} line {line}: {exc}; the row was skipped, fix it and re-run."
            )
            continue
        seen[row["deployment_id"]] = line
        good.append({**row, "source_line": line})
    return good, errors, len(records)


def load_deployments_csv(con: duckdb.DuckDBPyConnection, path: Path) -> DeploymentsLoad:
    """Validate the CSV and upsert its good rows into raw.deployments (one transaction).

    Raises DeploymentsFileError when the file as a whole is unusable; bad rows are returned
    in ``errors`` and skipped. Rows that came from this file earlier and are gone now (or are
    bad now) are removed, so raw.deployments always mirrors the file.
    """
    path = path.expanduser().absolute()
    rows, errors, total = read_deployments_csv(path)
    result = DeploymentsLoad(str(path), rows=total, errors=errors)
    now = datetime.now(UTC).replace(tzinfo=None)
    con.execute("begin transaction")
    try:
        before = _snapshot(con, path)
        con.execute("delete from raw.deployments where source_file = ?", [str(path)])
        for row in rows:
            con.execute(
                "insert or replace into raw.deployments (deployment_id, site_id, camera_id, "
                "deployment_start, deployment_end, latitude, longitude, utc_offset, "
                "clock_offset_s, source_file, source_line, loaded_at) "
                "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    row["deployment_id"], row["site_id"], row["camera_id"],
                    row["deployment_start"], row["deployment_end"], row["latitude"],
                    row["longitude"], row["utc_offset"], row["clock_offset_s"], str(path),
                    row["source_line"], now,
                ],
            )  # fmt: skip
        after = _snapshot(con, path)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    result.loaded = len(rows)
    result.removed = len({r[0] for r in before} - {r[0] for r in after})
    result.changed = before != after
    return result


def _snapshot(con: duckdb.DuckDBPyConnection, path: Path) -> set[tuple[Any, ...]]:
    """This file's rows without load bookkeeping, to tell whether a re-load changed anything."""
    return set(
        con.execute(
            "select deployment_id, site_id, camera_id, deployment_start, deployment_end, "
            "latitude, longitude, utc_offset, clock_offset_s from raw.deployments "
            "where source_file = ?",
            [str(path)],
        ).fetchall()
    )
