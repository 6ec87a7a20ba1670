"""``trapflow export detection-history``: camtrapR ``detectionHistory()`` for occupancy models.

Two matrices of one shape, one row per station (``site_id``; per camera with ``by="camera"``,
named ``<site>__CAM_<camera>`` as camtrapR's ``cameraOperation(byCamera = TRUE)`` names its
rows) and columns ``o1..oN`` of ``occasion_days`` days each:

- detection: 1 the species was recorded in the occasion, 0 the camera worked but did not
  record it, NA no camera worked at all during the occasion (or the occasion lies beyond the
  station's retrieval, ``day1="station"``); camtrapR ``output = "binary"``.
- effort: the sum of the daily effort of the occasion's days (fractional, camtrapR >= 2.1: 0.5
  on a setup or retrieval day given as a date, problem periods taken off), NA where the
  detection matrix is NA; camtrapR ``includeEffort = TRUE, scaleEffort = FALSE``.

``day1``: ``"survey"`` (camtrapR's default, ours too) starts every station's occasions on the
first setup day of all stations; ``"station"`` on each station's own setup day; a date
(``YYYY-MM-DD``) on that date (records before it are left out).

Read from the marts only (docs/architecture.md): the daily effort is
``marts.fct_camera_operation`` (per camera and day; null = not deployed, 0 = down), summed over
a station's cameras as the marts' ``trap_nights`` are (cameras independent); the records are the
independent events of ``marts.fct_events`` (the same that give RAI: camtrapR's ``recordTable``
with ``minDeltaTime`` = the marts' ``independence_minutes``), each at the day it started, and
with ``by="camera"`` at the camera of its first image. An occasion is counted in whole days, so
a record at midnight opens the occasion that starts that day.

Plain functions, no Prefect.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

from flows.errors import UserError
from flows.formats.common import fetch, require_marts
from flows.store import warehouse as _warehouse

__all__ = [
    "DAY1_DEFAULT",
    "DetectionHistory",
    "DetectionHistoryError",
    "detection_history",
    "parse_day1",
    "write_detection_history",
]

#: camtrapR's own default of ``detectionHistory(day1 = )``, and ours.
DAY1_DEFAULT = "survey"
#: camtrapR's separator of station and camera in a by-camera row name.
CAMERA_SEPARATOR = "__CAM_"

By = Literal["station", "camera"]


class DetectionHistoryError(UserError):
    """What was asked cannot be a detection history (unknown species, a bad day1 ...)."""


@dataclass(frozen=True)
class DetectionHistory:
    """The two matrices, row by row (``None`` = NA)."""

    species: str
    occasion_days: int
    day1: str  # "station", "survey" or the ISO date the occasions start on
    by: By
    stations: list[str]
    detection: list[list[int | None]]
    effort: list[list[float | None]]
    starts: list[date]  # each row's first day of o1
    left_out: int = 0  # records outside every occasion (before day1, or no working camera)
    records: int = 0  # records of the species read

    @property
    def occasions(self) -> int:
        return len(self.detection[0]) if self.detection else 0

    @property
    def detections(self) -> int:
        return sum(1 for row in self.detection for v in row if v == 1)


def parse_day1(value: str) -> str | date:
    """``"station"``, ``"survey"`` (any case) or a ``YYYY-MM-DD`` date."""
    low = value.strip().lower()
    if low in ("station", "survey"):
        return low
    try:
        return date.fromisoformat(low)
    except ValueError:
        raise DetectionHistoryError(
            f"--day1 {value!r}: give 'station', 'survey' or a date as YYYY-MM-DD (camtrapR day1)"
        ) from None


_OPERATION = """
    select {unit} as unit, day, sum(effort) as effort
    from marts.fct_camera_operation
    group by all
    having count(effort) > 0
    order by unit, day"""

#: A record's camera is the camera of the deployment its first image was in, that day (the
#: station table's Camera, else the image's camera).
_RECORDS = """
    select {unit} as unit, cast(events.event_started_at as date) as day
    from marts.fct_events as events
    left join marts.fct_camera_operation as operation
        on events.deployment_id = operation.deployment_id
        and cast(events.event_started_at as date) = operation.day
    where events.species = ?"""


def _unit_sql(by: By, *, records: bool = False) -> str:
    if by == "station":
        return "events.site_id" if records else "site_id"
    if records:
        return (
            f"events.site_id || '{CAMERA_SEPARATOR}' || "
            "coalesce(operation.camera_id, events.camera_id)"
        )
    return f"site_id || '{CAMERA_SEPARATOR}' || camera_id"


def detection_history(
    warehouse: Path,
    species: str,
    occasion_days: int,
    *,
    day1: str | date = DAY1_DEFAULT,
    by: str = "station",
) -> DetectionHistory:
    """The detection and effort matrices of ``species`` (camtrapR ``detectionHistory``)."""
    if occasion_days < 1:
        raise DetectionHistoryError(
            f"--occasion-days {occasion_days}: an occasion is at least 1 day (camtrapR "
            "occasionLength must be a positive integer)"
        )
    if by not in ("station", "camera"):
        raise DetectionHistoryError(f"--by {by!r}: give 'station' or 'camera'")
    rows: By = "camera" if by == "camera" else "station"
    start_rule = parse_day1(day1) if isinstance(day1, str) else day1
    require_marts(warehouse)
    unit = _unit_sql(rows)
    with _warehouse.connect(warehouse, read_only=True) as con:
        known = [
            r["species"]
            for r in fetch(
                con,
                "select distinct species from marts.fct_events where species is not null "
                "order by species",
            )
        ]
        if species not in known:
            raise DetectionHistoryError(
                f"unknown species {species!r}; known: {', '.join(known) or 'none (no events)'}"
            )
        days = fetch(con, _OPERATION.format(unit=unit))
        records = fetch(con, _RECORDS.format(unit=_unit_sql(rows, records=True)), [species])
    if not days:
        raise DetectionHistoryError(
            "no camera operation in the marts: load a station table ('trapflow import stations')"
            " or run 'trapflow marts'"
        )
    daily: dict[str, dict[date, float | None]] = {}
    for row in days:
        daily.setdefault(row["unit"], {})[row["day"]] = row["effort"]
    stations = sorted(daily)
    first = {u: min(daily[u]) for u in stations}
    last = {u: max(daily[u]) for u in stations}
    survey_start, survey_end = min(first.values()), max(last.values())
    if start_rule == "station":
        starts = [first[u] for u in stations]
        n_days = max((last[u] - first[u]).days + 1 for u in stations)
        day1_name = "station"
    else:
        begin = start_rule if isinstance(start_rule, date) else survey_start
        if not survey_start <= begin <= survey_end:
            raise DetectionHistoryError(
                f"--day1 {begin.isoformat()} is outside the survey ({survey_start.isoformat()} "
                f"to {survey_end.isoformat()})"
            )
        starts = [begin] * len(stations)
        n_days = (survey_end - begin).days + 1
        day1_name = "survey" if start_rule == "survey" else begin.isoformat()
    if occasion_days > n_days:
        raise DetectionHistoryError(
            f"--occasion-days {occasion_days} is longer than the survey's {n_days} days"
        )
    n_occ = math.ceil(n_days / occasion_days)
    effort: list[list[float | None]] = []
    detection: list[list[int | None]] = []
    for unit_name, start in zip(stations, starts, strict=True):
        row_effort: list[float | None] = []
        for k in range(n_occ):
            values = [
                daily[unit_name].get(start + timedelta(days=k * occasion_days + d))
                for d in range(occasion_days)
            ]
            worked = [v for v in values if v is not None]
            # camtrapR: NA when every day of the occasion is NA or 0
            row_effort.append(round(sum(worked), 6) if any(v > 0 for v in worked) else None)
        effort.append(row_effort)
        detection.append([None if e is None else 0 for e in row_effort])
    index = {u: i for i, u in enumerate(stations)}
    left_out = 0
    for rec in records:
        i = index.get(rec["unit"])
        k = -1 if i is None else (rec["day"] - starts[i]).days // occasion_days
        if i is None or not 0 <= k < n_occ or detection[i][k] is None:
            left_out += 1
            continue
        detection[i][k] = 1
    return DetectionHistory(
        species=species, occasion_days=occasion_days, day1=day1_name, by=rows, stations=stations,
        detection=detection, effort=effort, starts=starts, left_out=left_out,
        records=len(records),
    )  # fmt: skip


def _cell(value: float | None) -> str:
    """As R's write.csv writes a number: NA, 7, 6.5."""
    if value is None:
        return "NA"
    if float(value).is_integer():
        return str(int(value))
    return repr(round(float(value), 6))


def _write_matrix(
    path: Path, stations: Sequence[str], rows: Sequence[Sequence[float | None]]
) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    n = len(rows[0]) if rows else 0
    writer.writerow(["station", *(f"o{k + 1}" for k in range(n))])
    for name, row in zip(stations, rows, strict=True):
        writer.writerow([name, *(_cell(v) for v in row)])
    path.write_text(buf.getvalue(), encoding="utf-8")


def file_stem(result: DetectionHistory) -> str:
    """camtrapR's file name parts: species, occasion length, day1."""
    species = re.sub(r"[^A-Za-z0-9_.-]+", "_", result.species).strip("_") or "species"
    first = {"station": "by_station", "survey": "from_survey"}.get(result.day1, result.day1)
    cams = "__by_camera" if result.by == "camera" else ""
    return f"{species}__{{what}}__{result.occasion_days}_days_per_occasion__first_day_{first}{cams}"


def write_detection_history(result: DetectionHistory, out_dir: Path) -> list[Path]:
    """Write ``<stem>`` detection_history and effort CSVs into ``out_dir``; their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = file_stem(result)
    det = out_dir / (stem.format(what="detection_history") + ".csv")
    eff = out_dir / (stem.format(what="effort") + ".csv")
    _write_matrix(det, result.stations, result.detection)
    _write_matrix(eff, result.stations, result.effort)
    return [det, eff]
