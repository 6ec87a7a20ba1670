"""A lake setting's forms (``ducklake:postgres:...``, ``ducklake:sqlite:...``,
``ducklake:<file>``), checked when the settings load (its password is redacted in messages by
``flows.alerts.redaction``).

No DuckDB here: :mod:`flows.settings` imports this on every load.
"""

from __future__ import annotations

import re
from pathlib import Path

from flows.alerts.redaction import redact
from flows.errors import UserError


class LakeError(UserError, RuntimeError):
    """The lake cannot be used (bad URL, catalog unreachable, extension missing)."""

    #: Lost a race with another process creating the same new lake, or found a SQLite catalog
    #: busy with another process: try again.
    racing: bool = False


def is_ducklake(lake: str | None) -> bool:
    return bool(lake) and str(lake).startswith("ducklake:")


def catalog_kind(lake: str) -> str:
    """postgres, sqlite or duckdb; raises LakeError on a URL of no known form."""
    rest = lake.removeprefix("ducklake:")
    if rest.startswith("postgres:"):
        return "postgres"
    if rest.startswith("sqlite:"):
        return "sqlite"
    if re.match(r"^[a-z]+:(?!//)", rest) and not re.match(r"^[A-Za-z]:[\\/]", rest):
        raise LakeError(
            f"lake {redact(lake)!r}: unknown DuckLake catalog {rest.split(':')[0]!r}; use "
            "ducklake:postgres:dbname=... host=..., ducklake:sqlite:/path/lake.sqlite or "
            "ducklake:/path/lake.ducklake (docs/scaling.md)"
        )
    if not rest.strip():
        raise LakeError("lake 'ducklake:' names no catalog; see docs/scaling.md")
    return "duckdb"


def check_lake_setting(lake: str | None, data_path: str | None) -> None:
    """A DuckLake URL of a known form, and a data path where the catalog keeps none."""
    if lake is None or not is_ducklake(lake):
        return
    if catalog_kind(lake) == "postgres" and not data_path:
        raise LakeError(
            f"lake {redact(lake)!r} has its catalog in PostgreSQL but no lake_data_path: pass "
            "--lake-data-path or set TRAPFLOW_LAKE_DATA_PATH (or lake_data_path in trapflow.toml) "
            "to a folder every worker reaches or an s3:// prefix (docs/scaling.md)"
        )


def catalog_file(lake: str) -> Path | None:
    """A SQLite or DuckDB catalog's file, absolute; PostgreSQL's catalog is no file (None)."""
    if catalog_kind(lake) == "postgres":
        return None
    path = lake.removeprefix("ducklake:").removeprefix("sqlite:")
    return Path(path).expanduser().absolute()


def default_data_path(lake: str) -> str | None:
    """A file catalog keeps its data beside it (``<catalog>.files/``); PostgreSQL has none."""
    path = catalog_file(lake)
    return None if path is None else f"{path}.files/"
