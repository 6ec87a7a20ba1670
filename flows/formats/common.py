"""What the field formats share: their errors, MegaDetector's category ids, stable ids,
times, CSV cells, and the one check that the marts the exports read exist.

Exports read only relations dbt builds (the marts, and the views of the marts schema that
are current between builds); the rules of what counts live there (docs/architecture.md).
Raw reads that remain are about files and their metadata (paths, sizes, EXIF), never about
which box counts or which review wins.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flows.settings import Settings
from flows.store import warehouse as _warehouse

DETECTION_CATEGORIES = {"1": "animal", "2": "person", "3": "vehicle"}
CATEGORY_ID = {name: cid for cid, name in DETECTION_CATEGORIES.items()}


class ExportError(RuntimeError):
    """The warehouse cannot give what was asked (no marts yet, unknown site, ...)."""


class MdJsonError(ValueError):
    """The file is not MegaDetector batch output; the message says what is wrong."""


def require_marts(warehouse: Path) -> None:
    """Raise :class:`ExportError` (what to run) when dbt has not built the marts yet."""
    if not _warehouse.has_marts(warehouse):
        raise ExportError(
            f"the warehouse {warehouse} has no marts yet: run 'trapflow marts' (or 'trapflow run') "
            "first"
        )


def default_setting(name: str) -> Any:
    """A setting's default (thresholds: dbt_project.yml's, through :class:`Settings`), for
    callers that pass none; never a second literal here."""
    return Settings.model_fields[name].get_default(call_default_factory=True)


def now_utc() -> datetime:
    """Now, UTC, naive (as the warehouse stores times)."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso_utc(value: datetime) -> str:
    return value.replace(microsecond=0).isoformat() + "Z"


def fmt_cell(value: Any) -> str:
    """A CSV cell: empty for null, true/false, floats to 6 places."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


def write_csv(path: Path, fields: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """Write ``rows`` (only ``fields``, in order) with a header; how many rows."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(fields)
    n = 0
    for row in rows:
        writer.writerow([fmt_cell(row.get(f)) for f in fields])
        n += 1
    path.write_text(buf.getvalue(), encoding="utf-8")
    return n


def fetch(con: Any, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """The rows of ``sql`` as dicts."""
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def has_relation(con: Any, schema: str, name: str) -> bool:
    """Whether the table or view ``schema.name`` exists on ``con``."""
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchone()
    return bool(row and row[0])


__all__ = [
    "CATEGORY_ID",
    "DETECTION_CATEGORIES",
    "ExportError",
    "MdJsonError",
    "default_setting",
    "fetch",
    "fmt_cell",
    "has_relation",
    "iso_utc",
    "now_utc",
    "require_marts",
    "write_csv",
]
