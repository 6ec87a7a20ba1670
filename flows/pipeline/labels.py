"""Labels people already gave, coming in as human labels (``raw.media_labels``).

Ecologists keep species where their tools put them: a species folder (camtrapR's
``IDfrom = "directory"``: ``Station/Species/photo.jpg``, the layout's ``{species}``), XMP
hierarchical keywords (camtrapR's ``IDfrom = "metadata"``: ``Species|Leopard Cat``), a
Timelapse CSV export or a plain ``file,label`` CSV. A run reads the first two from every file
it lists (:func:`file_labels`); ``trapflow import labels`` reads a CSV
(:func:`read_label_csv`, :func:`import_label_csv`).

They are labels of the whole image, like an image-level review on the dashboard: dbt
(``int_human_labels``) lets them win over every model at once, and leaves out a photo whose
sources disagree (``marts.fct_label_conflicts`` lists it; a review decides). Ids are stable
(``flows.store.ids.media_label_id``), so a re-import adds nothing.

Plain functions, no Prefect.
"""

from __future__ import annotations

import csv
import posixpath
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flows.errors import UserError
from flows.pipeline.discovery import canonical_uri, layout_species
from flows.store import Store, ids, rows
from models_ml.keywords import species_keywords

__all__ = [
    "LabelCsvError",
    "LabelImport",
    "category_of",
    "file_labels",
    "import_label_csv",
    "label_rows",
    "read_label_csv",
]

#: A label that says the photo shows no animal, a person or a vehicle (case-insensitive).
BLANK_WORDS = frozenset({"blank", "empty", "none", "nothing", "no animal", "false trigger"})
PERSON_WORDS = frozenset({"person", "people", "human", "humans"})
VEHICLE_WORDS = frozenset({"vehicle", "car", "truck", "motorbike", "motorcycle"})

#: Columns a CSV names its file and its label with (first match, case-insensitive).
FILE_COLUMNS = ("file", "filename", "file_name", "path", "filepath", "file_path")
LABEL_COLUMNS = ("label", "species", "common_name", "category", "commonname")


class LabelCsvError(UserError, ValueError):
    """A label CSV trapflow cannot read; the message says what to change."""


def category_of(label: str) -> tuple[str, str | None]:
    """(category, label) of a human label: blank words are ``("blank", None)``, person and
    vehicle words their category, anything else an animal species."""
    name = " ".join(label.split())
    word = name.casefold()
    if word in BLANK_WORDS:
        return "blank", None
    if word in PERSON_WORDS:
        return "person", "person"
    if word in VEHICLE_WORDS:
        return "vehicle", word
    return "animal", name


@dataclass(frozen=True)
class FoundLabel:
    label: str
    source: str  # folder | xmp | csv | timelapse
    detail: str


def file_labels(
    rel_path: str, data: bytes | None, layout: str | None, keyword_parent: str
) -> list[FoundLabel]:
    """The labels a listed file carries: its ``{species}`` folder and its XMP keywords."""
    found: list[FoundLabel] = []
    folder = layout_species(rel_path, layout)
    if folder:
        found.append(FoundLabel(folder, "folder", rel_path))
    if data and keyword_parent:
        for name in species_keywords(data, keyword_parent):
            found.append(FoundLabel(name, "xmp", rel_path))
    return found


def label_rows(
    media_id: str, found: list[FoundLabel], run_id: str, at: datetime
) -> list[dict[str, Any]]:
    out = []
    for f in found:
        category, label = category_of(f.label)
        out.append(
            rows.media_label_row(
                media_id=media_id, category=category, label=label, source=f.source,
                source_detail=f.detail, run_id=run_id, imported_at=at,
            ).as_row()
        )  # fmt: skip
    return out


# --------------------------------------------------------------------------- CSV


@dataclass(frozen=True)
class CsvLabel:
    path: str  # as the CSV writes it, '/'-separated
    label: str
    line: int


def _column(fields: list[str], wanted: tuple[str, ...], given: str | None, what: str) -> str:
    cols = {c.strip().casefold(): c for c in fields}
    if given is not None:
        if given.strip().casefold() not in cols:
            raise LabelCsvError(
                f"the CSV has no column {given!r} for the {what}; it has {', '.join(fields)}"
            )
        return cols[given.strip().casefold()]
    for name in wanted:
        if name in cols:
            return cols[name]
    raise LabelCsvError(
        f"the CSV needs a {what} column ({', '.join(wanted)}; or name it with "
        f"--{what}-column); it has {', '.join(fields) or 'no header'}"
    )


def read_label_csv(
    path: Path, *, label_column: str | None = None, file_column: str | None = None
) -> tuple[str, list[CsvLabel]]:
    """(format, rows) of a label CSV: ``timelapse`` when it has Timelapse's ``File`` and
    ``RelativePath`` columns (the path is RelativePath/File, Windows separators allowed),
    else ``csv`` with a file and a label column. Rows with an empty label are left out."""
    if not path.is_file():
        raise LabelCsvError(f"label CSV {path} not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = list(reader.fieldnames or [])
            lower = {c.strip().casefold(): c for c in fields}
            timelapse = file_column is None and "relativepath" in lower and "file" in lower
            fcol = (
                lower["file"] if timelapse else _column(fields, FILE_COLUMNS, file_column, "file")
            )
            lcol = _column(fields, LABEL_COLUMNS, label_column, "label")
            found = []
            for line, row in enumerate(reader, start=2):
                name = (row.get(fcol) or "").strip().replace("\\", "/")
                label = (row.get(lcol) or "").strip()
                if timelapse:
                    folder = (row.get(lower["relativepath"]) or "").strip().replace("\\", "/")
                    name = posixpath.join(folder, name) if folder else name
                if name and label:
                    found.append(CsvLabel(name.removeprefix("./"), label, line))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise LabelCsvError(f"{path} is not a readable CSV ({exc})") from None
    return ("timelapse" if timelapse else "csv"), found


@dataclass
class LabelImport:
    format: str
    rows_read: int = 0
    labels_added: int = 0
    media_labelled: int = 0
    #: CSV rows whose file is not in the warehouse: (line, path)
    unmatched: list[tuple[int, str]] = field(default_factory=list)


_FILES = """
    select source_uri, file_path, media_id from raw.media_files
    where media_id is not null and status in ('ingested', 'duplicate')
"""


def import_label_csv(
    store: Store,
    path: Path,
    *,
    source: str | None = None,
    label_column: str | None = None,
    file_column: str | None = None,
) -> LabelImport:
    """Load a CSV's labels for the photos the warehouse holds (by the path under their source;
    with ``source``, only photos of that source). Files it does not hold are reported."""
    fmt, found = read_label_csv(path, label_column=label_column, file_column=file_column)
    result = LabelImport(format=fmt, rows_read=len(found))
    with store.reading() as con:
        files = con.execute(_FILES).fetchall()
    wanted = canonical_uri(source) if source else None
    by_path: dict[str, str] = {}
    for source_uri, file_path, media_id in files:
        if wanted is not None and canonical_uri(str(source_uri)) != wanted:
            continue
        by_path.setdefault(str(file_path), str(media_id))
        by_path.setdefault(posixpath.join(str(source_uri), str(file_path)), str(media_id))
    run_id = ids.import_run_id()
    at = rows.now()
    new: list[dict[str, Any]] = []
    labelled: set[str] = set()
    for item in found:
        media_id = by_path.get(item.path) or by_path.get(str(Path(item.path).absolute()))
        if media_id is None:
            result.unmatched.append((item.line, item.path))
            continue
        labelled.add(media_id)
        detail = f"{path.name}:{item.line}"
        new += label_rows(media_id, [FoundLabel(item.label, fmt, detail)], run_id, at)
    counts = store.load_batch(
        ids.new_batch_id(run_id), media=[], detections=[], quarantine=[], files=[],
        media_labels=new,
    )  # fmt: skip
    result.labels_added = int(counts.get("media_labels", 0))
    result.media_labelled = len(labelled)
    return result
