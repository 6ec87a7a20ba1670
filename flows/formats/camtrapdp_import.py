"""Camtrap DP 1.0 in: :func:`import_camtrapdp` loads a package (datapackage.json with
deployments.csv, media.csv and observations.csv) as deployments, media and human labels.

The package is validated first, offline: frictionless against the Camtrap DP 1.0 table schemas
in ``standards_dir`` (the schema URLs the package names are never fetched), plus the profile's
rules that matter here (the three resources, CSV files inside the package, deploymentID and
mediaID resolving). A package with any error loads nothing.

Mapping (docs/formats.md, "Camtrap DP in"):

- deployments.csv -> raw.deployments through :func:`flows.store.deployments.load_deployments_csv`
  (the station-table loader: locationID is the site, cameraID the camera);
- media.csv -> raw.media without the files (``filePath`` may be a URL): the id is
  :func:`flows.store.ids.camtrap_media_id` of the package and its mediaID, the time is the
  ``timestamp`` as camera-local wall time with its offset, site and camera are the
  deployment's;
- observations.csv -> raw.media_labels (source ``camtrapdp``, human labels with ``count``):
  observationType animal (the scientificName), human, vehicle and blank through
  :func:`flows.pipeline.labels.category_of`; unknown and unclassified are skipped. A
  media-level observation labels its media; an event-level one (no mediaID) labels each media
  of its deployment within [eventStart, eventEnd] that has no media-level observation of its
  own (the media's own classification wins; both at once would contradict each other: a
  blank frame inside an animal's event). Observations of one label on one media add their
  counts.

Everything goes in one transaction with stable ids, so re-importing the package adds nothing.
Plain functions, no Prefect.
"""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from flows.errors import UserError
from flows.formats.common import now_utc
from flows.pipeline.discovery import canonical_uri
from flows.pipeline.labels import category_of
from flows.store import ids, rows
from flows.store import warehouse as _warehouse
from flows.store.deployments import load_deployments_csv

#: The folder of the Camtrap DP 1.0 schemas under ``Settings.standards_dir``.
STANDARD = "camtrap-dp-1.0"
TABLES = ("deployments", "media", "observations")
SOURCE = "camtrapdp"
#: Errors named in the one line (the rest are counted).
SHOWN_ERRORS = 3


class CamtrapDPImportError(UserError, ValueError):
    """The package cannot be loaded (missing, not JSON, not valid Camtrap DP 1.0); the message
    names the file, row and field of the first errors and how many there are. Nothing was
    loaded."""


@dataclass
class CamtrapImport:
    package: Path
    run_id: str
    deployments: int = 0
    media: int = 0  # rows of media.csv
    media_added: int = 0
    observations: int = 0  # rows of observations.csv
    observations_used: int = 0
    labels_added: int = 0
    media_labelled: int = 0
    #: observations not loaded, by reason (unknown, unclassified, event-level whose media
    #: all have media-level observations)
    skipped: Counter[str] = field(default_factory=Counter)
    changed: bool = False


@dataclass(frozen=True)
class Package:
    directory: Path
    key: str  # the package's id, else its name: part of every media id
    files: dict[str, Path]  # resource name -> its CSV


def _fail(message: str) -> CamtrapDPImportError:
    return CamtrapDPImportError(f"{message}; nothing was loaded")


# ------------------------------------------------------------------------------- validation


def _descriptor(directory: Path) -> dict[str, Any]:
    path = directory / "datapackage.json"
    if not directory.is_dir():
        raise _fail(f"{directory} is not a folder: give the folder of a Camtrap DP package")
    if not path.is_file():
        raise _fail(f"{directory} has no datapackage.json: give the folder of a Camtrap DP package")
    try:
        descriptor = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(f"{path} is not JSON ({exc})") from None
    if not isinstance(descriptor, dict) or not isinstance(descriptor.get("resources"), list):
        raise _fail(f"{path} has no 'resources' list: it is not a data package")
    return descriptor


def _resource_files(directory: Path, descriptor: dict[str, Any]) -> dict[str, Path]:
    """The three Camtrap DP resources: each present, one CSV file inside the package."""
    by_name = {r.get("name"): r for r in descriptor["resources"] if isinstance(r, dict)}
    missing = [name for name in TABLES if name not in by_name]
    if missing:
        raise _fail(
            f"{directory / 'datapackage.json'}: resource {', '.join(missing)} missing (a Camtrap "
            "DP package has the resources deployments, media and observations)"
        )
    files = {}
    for name in TABLES:
        resource = by_name[name]
        path = resource.get("path")
        fmt = str(resource.get("format") or "csv").lower()
        if (
            not isinstance(path, str)
            or fmt != "csv"
            or not path.lower().endswith(".csv")
            or "://" in path
            or Path(path).is_absolute()
            or ".." in Path(path).parts
        ):
            raise _fail(
                f"{directory / 'datapackage.json'}: resource {name} is {path!r} (format {fmt}); "
                "Camtrap DP tables are CSV files inside the package folder"
            )
        file = directory / path
        if not file.is_file():
            raise _fail(f"{file} not found (resource {name} of datapackage.json)")
        files[name] = file
    return files


def _schemas(standards_dir: Path) -> dict[str, dict[str, Any]]:
    folder = standards_dir.expanduser() / STANDARD
    out = {}
    for name in TABLES:
        path = folder / f"{name}-table-schema.json"
        if not path.is_file():
            raise _fail(
                f"the Camtrap DP 1.0 schema {path} is missing: set TRAPFLOW_STANDARDS_DIR to the "
                f"folder that holds {STANDARD}/ (the package's schema URLs are never fetched)"
            )
        out[name] = json.loads(path.read_text(encoding="utf-8"))
    return out


def _frictionless_errors(files: dict[str, Path], schemas: dict[str, dict[str, Any]]) -> list[str]:
    """frictionless over the three tables with the local schemas (types, enums, keys)."""
    import frictionless

    directory = files["deployments"].parent
    local = {
        "name": "camtrapdp-import",
        "resources": [
            {
                "name": name,
                "path": str(files[name].relative_to(directory)),
                "profile": "tabular-data-resource",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "schema": schemas[name],
            }
            for name in TABLES
        ],
    }
    try:
        report = frictionless.Package.from_descriptor(local, basepath=str(directory)).validate()
    except frictionless.FrictionlessException as exc:
        return [str(exc.error.note if exc.error else exc)]
    problems = [f"{e.type}: {e.note}" for e in report.errors]
    for task in report.tasks:
        where = files[task.name].name if task.name in files else task.name
        for error in task.errors:
            row = getattr(error, "row_number", None)
            column = getattr(error, "field_name", None)
            place = where + (f" row {row}" if row else "") + (f" field {column}" if column else "")
            problems.append(f"{place}: {error.type} ({error.note})")
    return problems


def _read(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) of a CSV that validated, empty cells as ''."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        for record in reader:
            yield reader.line_num, {k: (v or "").strip() for k, v in record.items() if k}


def _key_errors(files: dict[str, Path]) -> list[str]:
    """The profile's keys: deploymentID and mediaID resolve (frictionless checks them too;
    this keeps the rule when a schema leaves them out)."""
    deployments = {r["deploymentID"] for _, r in _read(files["deployments"])}
    media = {}
    problems = []
    for line, rec in _read(files["media"]):
        media[rec["mediaID"]] = rec["deploymentID"]
        if rec["deploymentID"] not in deployments:
            problems.append(
                f"media.csv row {line} field deploymentID: {rec['deploymentID']!r} is not in "
                "deployments.csv"
            )
    for line, rec in _read(files["observations"]):
        if rec["deploymentID"] not in deployments:
            problems.append(
                f"observations.csv row {line} field deploymentID: {rec['deploymentID']!r} is not "
                "in deployments.csv"
            )
        if rec.get("mediaID") and rec["mediaID"] not in media:
            problems.append(
                f"observations.csv row {line} field mediaID: {rec['mediaID']!r} is not in media.csv"
            )
    return problems


def validate_package(directory: Path, standards_dir: Path) -> Package:
    """The package checked whole, offline; CamtrapDPImportError on the first problems."""
    directory = directory.expanduser().absolute()
    descriptor = _descriptor(directory)
    files = _resource_files(directory, descriptor)
    problems = _frictionless_errors(files, _schemas(standards_dir))
    if not problems:
        problems = _key_errors(files)
    if problems:
        shown = "; ".join(problems[:SHOWN_ERRORS])
        more = f" (and {len(problems) - SHOWN_ERRORS} more)" if len(problems) > SHOWN_ERRORS else ""
        raise _fail(
            f"{directory} is not a valid Camtrap DP 1.0 package: {len(problems)} error(s): "
            f"{shown}{more}. Fix them and import it again"
        )
    key = str(descriptor.get("id") or descriptor.get("name") or directory.name)
    return Package(directory=directory, key=key, files=files)


# ------------------------------------------------------------------------------- mapping


def _aware(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _label_of(rec: dict[str, str]) -> tuple[str, str | None] | None:
    """(category, label) of an observation, None for unknown and unclassified."""
    kind = rec.get("observationType", "")
    if kind == "animal":
        return category_of(rec.get("scientificName") or "animal")
    if kind in ("human", "vehicle", "blank"):
        return category_of(kind)
    return None


@dataclass
class _Label:
    count: int | None = None
    lines: list[str] = field(default_factory=list)

    def add(self, count: str, line: int, observation_id: str) -> None:
        if count:
            self.count = (self.count or 0) + int(count)
        self.lines.append(f"line {line} ({observation_id})")


def _label_rows(
    package: Package,
    media: dict[str, tuple[str, str, datetime]],  # mediaID -> (media_id, deploymentID, UTC)
    result: CamtrapImport,
    run_id: str,
    now: datetime,
) -> list[dict[str, Any]]:
    media_level: dict[tuple[str, str, str | None], _Label] = defaultdict(_Label)
    events: list[tuple[int, dict[str, str]]] = []
    covered: set[str] = set()  # mediaIDs with an observation of their own
    for line, rec in _read(package.files["observations"]):
        result.observations += 1
        if not rec.get("mediaID"):
            events.append((line, rec))
            continue
        covered.add(rec["mediaID"])
        label = _label_of(rec)
        if label is None:
            result.skipped[rec["observationType"]] += 1
            continue
        result.observations_used += 1
        media_level[(media[rec["mediaID"]][0], *label)].add(
            rec.get("count", ""), line, rec["observationID"]
        )
    by_deployment: dict[str, list[tuple[str, str, datetime]]] = defaultdict(list)
    for camtrap_id, (media_id, deployment, at) in media.items():
        if camtrap_id not in covered:
            by_deployment[deployment].append((camtrap_id, media_id, at))
    event_level: dict[tuple[str, str, str | None], _Label] = defaultdict(_Label)
    for line, rec in events:
        label = _label_of(rec)
        if label is None:
            result.skipped[rec["observationType"]] += 1
            continue
        start, end = _aware(rec["eventStart"]), _aware(rec["eventEnd"])
        inside = [m for _, m, at in by_deployment[rec["deploymentID"]] if start <= at <= end]
        if not inside:
            result.skipped["event-level whose media have their own"] += 1
            continue
        result.observations_used += 1
        for media_id in inside:
            event_level[(media_id, *label)].add(rec.get("count", ""), line, rec["observationID"])
    out = []
    path = package.files["observations"]
    for (media_id, category, name), found in (*media_level.items(), *event_level.items()):
        more = f" and {len(found.lines) - 1} more" if len(found.lines) > 1 else ""
        out.append(
            rows.media_label_row(
                media_id=media_id, category=category, label=name, source=SOURCE,
                source_detail=f"{path} {found.lines[0]}{more}", run_id=run_id,
                imported_at=now, count=found.count,
            ).as_row()
        )  # fmt: skip
    result.media_labelled = len({r["media_id"] for r in out})
    return out


def _media_rows(
    package: Package,
    places: dict[str, tuple[str, str]],  # deploymentID -> (site, camera)
    run_id: str,
    now: datetime,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, tuple[str, str, datetime]]]:
    uri = canonical_uri(str(package.directory))
    media_rows, files = [], []
    found: dict[str, tuple[str, str, datetime]] = {}
    for _, rec in _read(package.files["media"]):
        media_id = ids.camtrap_media_id(package.key, rec["mediaID"])
        at = _aware(rec["timestamp"])
        site, camera = places[rec["deploymentID"]]
        row = rows.imported_media_row(
            media_id=media_id, source_uri=uri, file_path=rec["filePath"],
            file_name=rec.get("fileName") or None, mediatype=rec["fileMediatype"],
            site_id=site, camera_id=camera, captured_at=at, run_id=run_id, ingested_at=now,
        ).as_row()  # fmt: skip
        media_rows.append(row)
        files.append(
            rows.media_file_row(
                source_uri=uri, file_path=rec["filePath"], file_size=0, file_modified_at=None,
                media_id=media_id, status="ingested", run_id=run_id,
            ).as_row()
        )  # fmt: skip
        found[rec["mediaID"]] = (media_id, rec["deploymentID"], at.astimezone(UTC))
    return media_rows, files, found


def _snapshot(con: duckdb.DuckDBPyConnection) -> tuple[int, ...]:
    return tuple(
        int(con.execute(f"select count(*) from raw.{t}").fetchall()[0][0])
        for t in ("deployments", "media", "media_labels", "media_files")
    )


def import_camtrapdp(warehouse: Path, directory: Path, *, standards_dir: Path) -> CamtrapImport:
    """Validate the package, then load its deployments, media and observations in one
    transaction (CamtrapDPImportError: nothing loaded). Re-importing adds nothing."""
    package = validate_package(directory, standards_dir)
    run_id = ids.camtrap_import_run_id(package.key)
    result = CamtrapImport(package=package.directory, run_id=run_id)
    now = now_utc()
    with _warehouse.connect(warehouse) as con:
        _warehouse.ensure_schema(con)
        before = _snapshot(con)
        con.execute("begin transaction")
        try:
            uri = canonical_uri(str(package.directory))
            _warehouse.start_run(con, run_id, uri, None, now)
            loaded = load_deployments_csv(con, package.files["deployments"], transaction=False)
            result.deployments = loaded.loaded
            places = {
                d: (s, c)
                for d, s, c in con.execute(
                    "select deployment_id, site_id, camera_id from raw.deployments "
                    "where source_file = ?",
                    [loaded.path],
                ).fetchall()
            }
            media_rows, files, media = _media_rows(package, places, run_id, now)
            result.media = len(media_rows)
            labels = _label_rows(package, media, result, run_id, now)
            counts = _warehouse.load_batch(
                con, media=media_rows, detections=[], quarantine=[], files=files,
                media_labels=labels, transaction=False,
            )  # fmt: skip
            result.media_added, result.labels_added = counts["media"], counts["media_labels"]
            _warehouse.finish_run(
                con, run_id,
                {
                    "finished_at": now_utc(), "status": "completed", "files_listed": result.media,
                    "files_new": counts["media"], "images_processed": 0, "detections": 0,
                    "quarantined": 0, "duration_s": (now_utc() - now).total_seconds(),
                },
            )  # fmt: skip
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        result.changed = loaded.changed or _snapshot(con) != before
    return result
