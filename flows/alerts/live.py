"""The live views (``marts.live_detections``, ``marts.live_sites`` ...) on any connection.

Alerts and privacy read the counting rules' verdicts from dbt views (``dbt/models/marts/live``)
that must exist before the first build (``build_marts`` off, a fresh warehouse) and in a lake
worker's own DuckDB file. They are created from their SQL, compiled once by dbt: a
``dbt compile`` of the live views and their upstream views against an empty scratch file, cached
per process for the settings' vars and the project's text, then ``create or replace view`` on
the connection at hand (so a connection the caller already holds needs no second process, and
the file is never locked by dbt). ``marts.live_rules.vars_json`` tells which vars the views in
a file were made with: they are re-created when the settings differ. A full ``dbt build`` makes
the very same views.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.settings import REPO_ROOT, Settings

if TYPE_CHECKING:
    import duckdb

#: The live models; their upstream (staging views, int_detections_filtered_to_threshold) is
#: created with them.
LIVE_MODELS = (
    "live_detections", "live_media", "live_site_labels", "live_sites", "live_camera_gaps",
    "live_rules",
)  # fmt: skip
#: The dbt vars the live views depend on (marts.live_rules.vars_json).
LIVE_VARS = (
    "detection_thresholds", "animal_detector", "person_vehicle_detector", "person_cue_detector",
    "classification_threshold", "sensitive_species", "sensitive_grid_km",
    "silent_camera_gap_quantile", "silent_camera_gap_factor", "silent_camera_min_hours",
    "silent_camera_min_gaps",
)  # fmt: skip
_DBT_DIR = REPO_ROOT / "dbt"
_CATALOG = re.compile(r'"warehouse"\.(?=")')  # flows.store.warehouse.ALIAS, as dbt quotes it


@dataclass(frozen=True)
class View:
    schema: str
    name: str
    sql: str


_COMPILED: dict[str, list[View]] = {}
_COMPILE_LOCK = threading.Lock()


def live_vars(settings: Settings) -> dict[str, Any]:
    """The vars of :data:`LIVE_VARS` the settings pass to dbt, as JSON values."""
    values = settings.dbt_vars()
    picked = {name: values[name] for name in LIVE_VARS if name in values}
    loaded: dict[str, Any] = json.loads(json.dumps(picked))
    return loaded


def _project_key(settings: Settings) -> str:
    digest = hashlib.sha256(json.dumps(settings.dbt_vars(), sort_keys=True).encode())
    digest.update(b"\0")
    for folder in ("models", "macros"):
        for path in sorted((_DBT_DIR / folder).rglob("*")):
            if path.is_file():
                digest.update(path.as_posix().encode() + path.read_bytes())
    digest.update((_DBT_DIR / "dbt_project.yml").read_bytes())
    return digest.hexdigest()


def compiled_views(settings: Settings) -> list[View]:
    """The live views and their upstream views, in dependency order, as SQL for a connection
    where the warehouse is the current catalog; compiled by dbt once per vars and project."""
    key = _project_key(settings)
    with _COMPILE_LOCK:
        if key not in _COMPILED:
            _COMPILED[key] = _cached(settings, key)
        return _COMPILED[key]


def _cached(settings: Settings, key: str) -> list[View]:
    """From the disk cache under ``<home>/live-views`` (one file per key), else compiled."""
    cache = settings.home.expanduser().absolute() / "live-views" / f"{key[:32]}.json"
    try:
        return [View(**v) for v in json.loads(cache.read_text(encoding="utf-8"))]
    except (OSError, ValueError, TypeError):
        pass
    views = _compile(settings)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        part = cache.with_suffix(f".{os.getpid()}.part")
        part.write_text(json.dumps([v.__dict__ for v in views]), encoding="utf-8")
        part.replace(cache)
    except OSError:  # a read-only home: compiled again by the next process
        pass
    return views


def _compile(settings: Settings) -> list[View]:
    from flows.store.dbt import run_dbt

    with tempfile.TemporaryDirectory(prefix="trapflow-live-") as tmp:
        scratch = settings.model_copy(update={"warehouse": Path(tmp) / "live.duckdb", "lake": None})
        selected = [f"+{name}" for name in LIVE_MODELS]
        run_dbt(scratch, "compile", "--select", *selected)
        manifest = json.loads((scratch.scratch_path / "target" / "manifest.json").read_text())
    nodes: dict[str, Any] = manifest["nodes"]
    wanted = [f"model.trapflow.{name}" for name in LIVE_MODELS]
    ordered: list[str] = []

    def visit(unique_id: str) -> None:
        if unique_id in ordered or not unique_id.startswith("model."):
            return
        for parent in nodes[unique_id]["depends_on"]["nodes"]:
            visit(parent)
        ordered.append(unique_id)

    for unique_id in wanted:
        visit(unique_id)
    views = []
    for unique_id in ordered:
        node = nodes[unique_id]
        if node["config"]["materialized"] != "view":
            raise RuntimeError(f"{unique_id} must be a view to be live; it is not")
        sql = _CATALOG.sub("", node["compiled_code"])
        views.append(View(node["schema"], node.get("alias") or node["name"], sql))
    return views


def built_vars(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """The vars the live views on this connection were made with; None without them."""
    present = {
        row[0]
        for row in con.execute(
            "select table_name from information_schema.tables where table_schema = 'marts' "
            "and table_name in (select unnest(?))",
            [list(LIVE_MODELS)],
        ).fetchall()
    }
    if present != set(LIVE_MODELS):
        return None
    row = con.execute("select any_value(vars_json) from marts.live_rules").fetchone()
    if not row or row[0] is None:
        return None
    loaded: dict[str, Any] = json.loads(row[0])
    return loaded


def is_current(con: duckdb.DuckDBPyConnection, settings: Settings) -> bool:
    """Whether the live views exist here and were made with the settings' vars."""
    built = built_vars(con)
    if built is None:
        return False
    wanted = live_vars(settings)
    return all(built.get(name) == value for name, value in wanted.items())


def ensure_live_views(con: duckdb.DuckDBPyConnection, settings: Settings) -> bool:
    """Create (or re-create) the live views on ``con`` unless they are current; whether it
    did. ``con`` must be writable and have raw.*, review.* readable (a store's ``writing()``)."""
    if is_current(con, settings):
        return False
    views = compiled_views(settings)
    for schema in sorted({v.schema for v in views}):
        con.execute(f'create schema if not exists "{schema}"')
    for view in views:
        con.execute(f'create or replace view "{view.schema}"."{view.name}" as {view.sql}')
    return True
