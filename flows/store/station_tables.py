"""camtrapR station tables (``CTtable``) as ecologists keep them -> deployments and problem periods.

A CTtable CSV has one row per station (or station x camera, station x session): ``Station``,
optionally ``Camera`` and ``Session``, setup and retrieval dates (or date-times), coordinates,
and ``Problem1_from``/``Problem1_to``, ``Problem2_from``/... for periods the camera did not work.
Column names and the date format are options (:class:`CTOptions`, from the settings), as in
camtrapR's ``cameraOperation(stationCol=, cameraCol=, sessionCol=, setupCol=, retrievalCol=,
dateFormat=)``. ``dateFormat`` is a strptime format (``%d/%m/%Y``) or lubridate orders
(``dmy``, ``ymd HMS``); with an hour in it (camtrapR: an ``H``), the times are exact.

What camtrapR refuses is refused here, naming the line: setup identical to or after retrieval,
a problem beginning before setup or ending after retrieval, a problem that ends before it
starts, a ProblemX_from without its _to, two rows for one station without a camera or
session column. The table is loaded whole or not at all.

Raw keeps what the table says (a date alone is 00:00 with ``*_is_date``); the effort rule
(setup and retrieval at 12:00, problems from 00:00 of their first day to the end of their last)
is dbt's: ``int_deployments_unioned`` and ``int_deployment_problems``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ALL_CAMERAS = "*"
_PROBLEM = re.compile(r"^Problem(\d+)[_\W]?(from|to)$", re.IGNORECASE)
_ORDER = re.compile(r"^[dmyHMSbBIp ]+$")
_LETTER = {"d": "%d", "m": "%m", "y": "%Y", "H": "%H", "M": "%M", "S": "%S"}


@dataclass(frozen=True)
class CTOptions:
    """How to read one CTtable: camtrapR's cameraOperation arguments, from the settings."""

    date_format: str = "ymd"
    station_column: str = "Station"
    camera_column: str | None = None
    session_column: str | None = None
    setup_column: str = "Setup_date"
    retrieval_column: str = "Retrieval_date"
    x_column: str | None = None
    y_column: str | None = None
    crs: str = "EPSG:4326"
    timezone: str | None = None
    timezone_column: str | None = None

    @property
    def has_time(self) -> bool:
        """camtrapR's effortAsFraction: the format names an hour."""
        return "H" in self.date_format


def is_ct_table(header: list[str], options: CTOptions) -> bool:
    """A CTtable names the station and setup columns (a deployments.csv names neither)."""
    return options.station_column in header and options.setup_column in header


def parse_when(text: str, options: CTOptions) -> datetime:
    """A setup, retrieval or problem value in the table's date format (ValueError if not)."""
    fmt = options.date_format
    value = text.strip()
    if "%" in fmt:
        return datetime.strptime(value, fmt)
    if not _ORDER.match(fmt):
        raise ValueError(f"date format {fmt!r} is neither strptime ('%d/%m/%Y') nor orders ('dmy')")
    letters = [c for c in fmt if c in _LETTER]
    numbers = re.findall(r"\d+", value)
    if len(numbers) != len(letters):
        raise ValueError(f"{value!r} does not match the date format {fmt!r}")
    parts = dict(zip(letters, (int(n) for n in numbers), strict=True))
    year = parts["y"] + (2000 if parts["y"] < 100 else 0)
    return datetime(year, parts["m"], parts["d"], parts.get("H", 0), parts.get("M", 0),
                    parts.get("S", 0))  # fmt: skip


@dataclass
class ParsedTable:
    deployments: list[dict[str, Any]]
    problems: list[dict[str, Any]]
    errors: list[str]


def deployment_name(station: str, camera: str | None, session: str | None) -> str:
    """camtrapR's row names: Station, Station__SESS_s, Station__CAM_c, Station__SESS_s__CAM_c."""
    name = station
    if session:
        name += f"__SESS_{session}"
    if camera and camera != ALL_CAMERAS:
        name += f"__CAM_{camera}"
    return name


def _coordinates(raw: dict[str, str], options: CTOptions) -> dict[str, Any]:
    out: dict[str, Any] = {"latitude": None, "longitude": None, "station_x": None,
                           "station_y": None, "station_crs": None}  # fmt: skip
    if not (options.x_column and options.y_column):
        return out
    x_text, y_text = raw.get(options.x_column, "").strip(), raw.get(options.y_column, "").strip()
    if not x_text and not y_text:
        return out
    try:
        x, y = float(x_text), float(y_text)
    except ValueError:
        raise ValueError(
            f"coordinates {options.x_column}={x_text!r}, {options.y_column}={y_text!r} "
            "are not numbers"
        ) from None
    lon, lat = to_wgs84(x, y, options.crs)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"coordinates ({x}, {y}) are not valid in {options.crs}; check the CRS")
    return {"latitude": lat, "longitude": lon, "station_x": x, "station_y": y,
            "station_crs": options.crs}  # fmt: skip


def to_wgs84(x: float, y: float, crs: str) -> tuple[float, float]:
    """(lon, lat) of a point given as x, y in ``crs`` (x = longitude in EPSG:4326)."""
    if crs.upper() in ("EPSG:4326", "WGS84"):
        return x, y
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    return float(lon), float(lat)


def _zone(raw: dict[str, str], options: CTOptions) -> str | None:
    name = (raw.get(options.timezone_column, "") if options.timezone_column else "").strip()
    name = name or (options.timezone or "")
    if not name:
        return None
    check_zone(name)
    return name


def check_zone(name: str) -> None:
    """ValueError unless ``name`` is an IANA time zone (Africa/Nairobi, Asia/Kuching)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"time zone {name!r} is not an IANA name such as Africa/Nairobi or Asia/Kuching"
        ) from None


def _row(raw: dict[str, str], pairs: dict[int, tuple[str, str]],
         options: CTOptions) -> tuple[dict[str, Any], list[dict[str, Any]]]:  # fmt: skip
    station = raw.get(options.station_column, "").strip()
    if not station:
        raise ValueError(f"{options.station_column} is empty")
    camera = raw.get(options.camera_column, "").strip() if options.camera_column else ""
    session = raw.get(options.session_column, "").strip() if options.session_column else ""
    if options.camera_column and not camera:
        raise ValueError(f"{options.camera_column} is empty")
    when: dict[str, datetime] = {}
    for key, column in (("setup", options.setup_column), ("retrieval", options.retrieval_column)):
        text = raw.get(column, "").strip()
        if not text:
            raise ValueError(f"{column} is empty")
        try:
            when[key] = parse_when(text, options)
        except ValueError:
            raise ValueError(
                f"{column} {text!r} does not match the date format {options.date_format!r}; "
                "set the station table's date format (e.g. dmy, ymd HM, %d/%m/%Y)"
            ) from None
    setup, retrieval = when["setup"], when["retrieval"]
    exact = options.has_time
    if (setup if exact else setup.date()) == (retrieval if exact else retrieval.date()):
        raise ValueError("setup is identical to retrieval")
    if setup > retrieval:
        raise ValueError(f"setup {setup} is after retrieval {retrieval}")
    problems = []
    for number, (from_column, to_column) in sorted(pairs.items()):
        texts = raw.get(from_column, "").strip(), raw.get(to_column, "").strip()
        if not any(texts):
            continue
        if not all(texts):
            given, missing = (from_column, to_column) if texts[0] else (to_column, from_column)
            raise ValueError(f"{given} is set but {missing} is empty")
        try:
            start, end = (parse_when(t, options) for t in texts)
        except ValueError:
            raise ValueError(
                f"{from_column}/{to_column} {texts[0]!r}/{texts[1]!r} do not match the date "
                f"format {options.date_format!r}"
            ) from None
        if (start if exact else start.date()) < (setup if exact else setup.date()):
            raise ValueError(f"Problem{number} begins ({start}) before setup ({setup})")
        if (end if exact else end.date()) > (retrieval if exact else retrieval.date()):
            raise ValueError(f"Problem{number} ends ({end}) after retrieval ({retrieval})")
        if end < start:
            raise ValueError(f"Problem{number} ends ({end}) before it starts ({start})")
        problems.append({"problem_number": number, "problem_from": start, "problem_to": end,
                         "from_is_date": not exact, "to_is_date": not exact})  # fmt: skip
    row = {
        "deployment_id": deployment_name(station, camera or None, session or None),
        "site_id": station,
        "camera_id": camera or ALL_CAMERAS,
        "session_id": session or None,
        "deployment_start": setup,
        "deployment_end": retrieval if exact else datetime.combine(retrieval.date(), time.max),
        "start_is_date": not exact,
        "end_is_date": not exact,
        "utc_offset": None,
        "timezone": _zone(raw, options),
        "clock_offset_s": 0.0,
        "problems_listed": bool(pairs),
        **_coordinates(raw, options),
    }
    return row, problems


def problem_columns(header: list[str]) -> dict[int, tuple[str, str]]:
    """ProblemX_from / ProblemX_to pairs by X (ValueError for a half pair)."""
    found: dict[int, dict[str, str]] = {}
    for name in header:
        match = _PROBLEM.match(name.strip())
        if match:
            found.setdefault(int(match.group(1)), {})[match.group(2).lower()] = name
    pairs = {}
    for number, sides in found.items():
        if set(sides) != {"from", "to"}:
            raise ValueError(
                f"Problem{number}_from and Problem{number}_to must both be columns "
                f"(found only {next(iter(sides.values()))})"
            )
        pairs[number] = (sides["from"], sides["to"])
    return pairs


def parse_ct_table(records: list[tuple[int, dict[str, str]]], header: list[str],
                   options: CTOptions) -> ParsedTable:  # fmt: skip
    """Every row of a CTtable checked as camtrapR checks it; errors name the line."""
    for column in (options.camera_column, options.session_column, options.x_column,
                   options.y_column, options.timezone_column):  # fmt: skip
        if column and column not in header:
            raise ValueError(f"column {column!r} (named in the settings) is not in the header")
    pairs = problem_columns(header)
    table = ParsedTable([], [], [])
    seen: dict[tuple[str, str, str], int] = {}
    for line, raw in records:
        try:
            row, problems = _row(raw, pairs, options)
        except ValueError as exc:
            station = raw.get(options.station_column, "").strip() or "?"
            table.errors.append(f"line {line} (station {station}): {exc}")
            continue
        key = (row["site_id"], row["camera_id"], row["session_id"] or "")
        if key in seen:
            hint = (
                "give a camera or session column in the settings (camtrapR cameraCol/sessionCol)"
                if not (options.camera_column or options.session_column)
                else "each station x camera x session must be one row"
            )
            table.errors.append(
                f"line {line} (station {row['site_id']}): station already on line {seen[key]}; "
                f"{hint}"
            )
            continue
        seen[key] = line
        table.deployments.append({**row, "source_line": line})
        table.problems.extend(
            {**p, "deployment_id": row["deployment_id"], "source_line": line} for p in problems
        )
    return table
