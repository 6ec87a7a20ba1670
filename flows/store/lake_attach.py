"""Attach a DuckLake to a DuckDB connection: its extensions from their wheels, its S3 secret.

The extensions come from the PyPI wheels pinned with duckdb (``duckdb-extension-ducklake``,
``-postgres-scanner``, ``-sqlite-scanner``, ``-httpfs``), loaded from their files: nothing is
ever installed from the network. Bucket credentials come from the ``AWS_*`` environment into
a temporary secret and are never logged; a failure names the lake with its password redacted.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import duckdb

from flows.alerts.redaction import redact
from flows.store.lake_url import LakeError, catalog_file, catalog_kind, default_data_path
from flows.store.warehouse import sql_literal

__all__ = ["LAKE", "attach_lake"]

#: The name every connection gives the lake's catalog.
LAKE = "trapflow_lake"


def _extension_file(name: str) -> Path:
    package = f"duckdb_extension_{name}"
    spec = importlib.util.find_spec(package)
    folders = list(spec.submodule_search_locations or []) if spec else []
    version = f"v{duckdb.__version__}"
    file = (
        Path(folders[0]) / "extensions" / version / f"{name}.duckdb_extension" if folders else None
    )
    if file is None or not file.is_file():
        raise LakeError(
            f"the DuckDB extension {name} for duckdb {duckdb.__version__} is not installed "
            f"(package {package.replace('_', '-')}); run 'make install'"
        )
    return file


def _extensions(kind: str, data_path: str | None) -> list[str]:
    names = ["ducklake"]
    if kind == "postgres":
        names.append("postgres_scanner")
    elif kind == "sqlite":
        names.append("sqlite_scanner")
    if data_path and not data_path.startswith(("/", "file:")) and "://" in data_path:
        names.append("httpfs")
    return names


def _s3_secret(con: duckdb.DuckDBPyConnection) -> None:
    """An in-memory S3 secret from the AWS_* environment (nothing of it is logged)."""
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return
    options = {"KEY_ID": key, "SECRET": secret,
               "REGION": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
               or "us-east-1"}  # fmt: skip
    if token := os.environ.get("AWS_SESSION_TOKEN"):
        options["SESSION_TOKEN"] = token
    if endpoint := os.environ.get("AWS_ENDPOINT_URL"):
        scheme, _, host = endpoint.partition("://")
        options["ENDPOINT"] = host.rstrip("/") or scheme
        options["URL_STYLE"] = "path"
        options["USE_SSL"] = "true" if scheme == "https" else "false"
    body = ", ".join(
        f"{k} {v}" if k == "USE_SSL" else f"{k} {sql_literal(v)}" for k, v in options.items()
    )
    con.execute(f"create or replace temporary secret trapflow_s3 (type s3, {body})")


def attach_lake(
    con: duckdb.DuckDBPyConnection, lake: str, data_path: str | None, *, read_only: bool = False
) -> None:
    """Load the extensions from their wheels and attach the lake as :data:`LAKE` (once)."""
    if con.execute(
        "select count(*) from duckdb_databases() where database_name = ?", [LAKE]
    ).fetchone() != (0,):
        return
    kind, data_path = catalog_kind(lake), data_path or default_data_path(lake)
    try:
        for name in _extensions(kind, data_path):
            con.execute(f"load {sql_literal(_extension_file(name))}")
        if data_path and data_path.startswith("s3://"):
            _s3_secret(con)
        options = [f"data_path {sql_literal(data_path)}"] if data_path else []
        if read_only:
            options.append("read_only")
        if data_path and "://" not in data_path:
            Path(data_path).mkdir(parents=True, exist_ok=True)
        target = _target(lake, kind)
        suffix = f" ({', '.join(options)})" if options else ""
        con.execute(f"attach {sql_literal(target)} as {LAKE}{suffix}")
    except (duckdb.Error, OSError) as exc:
        hint = (
            "Is the catalog's database running and reachable ('make lake-up' starts a local "
            "PostgreSQL)?"
            if kind == "postgres"
            else "Can this user create and write the catalog's file and the data folder?"
        )
        error = LakeError(
            f"cannot open the DuckLake {redact(lake)!r} (data {data_path or 'in the catalog'}): "
            f"{redact(str(exc)).splitlines()[0]}. {hint} See docs/scaling.md"
        )
        text = str(exc).lower()
        # another process creating the same new lake, or a SQLite catalog busy with another
        # process's commit (or its creation): the caller tries again
        error.racing = any(word in text for word in ("database is locked", "busy")) or (
            "initialize" in text
            and any(word in text for word in ("duplicate key", "already exists", "conflict"))
        )
        raise error from None


def _target(lake: str, kind: str) -> str:
    """What ATTACH opens: PostgreSQL's URL as given; a file catalog by its absolute path, its
    folder made if missing."""
    path = catalog_file(lake)
    if path is None:
        return lake
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"ducklake:{'sqlite:' if kind == 'sqlite' else ''}{path}"
