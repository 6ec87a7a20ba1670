"""The field's formats in and out, as plain functions (the CLI calls them; docs/formats.md).

One name per format, each in its own module; this module gathers them for callers that
import ``flows.formats.exports``:

- MegaDetector batch output JSON (format 1.5) out: :mod:`flows.formats.mdjson`
  (:func:`mdjson_results`, :func:`write_mdjson`, :func:`read_mdjson`); in:
  :mod:`flows.formats.mdjson_import` (:func:`import_mdjson`).
- A Camtrap DP 1.0 package: :mod:`flows.formats.camtrapdp` (:func:`export_camtrapdp`).
- One CSV per mart: :mod:`flows.formats.tables` (:func:`export_mart_csvs`).
- Safe copies of images: :mod:`flows.formats.images`.

Exports read the relations dbt builds (short read-only connections); the rules of what
counts live in dbt, never here.
"""

from __future__ import annotations

from flows.formats.camtrapdp import CAMTRAP_DP_PROFILE, CamtrapResult, export_camtrapdp
from flows.formats.common import DETECTION_CATEGORIES, ExportError, MdJsonError
from flows.formats.mdjson import (
    MD_FORMAT_VERSION,
    dump_mdjson,
    ensure_detector_boxes,
    mdjson_results,
    read_mdjson,
    write_mdjson,
)
from flows.formats.mdjson_import import ImportResult, import_mdjson
from flows.formats.tables import export_mart_csvs

__all__ = [
    "CAMTRAP_DP_PROFILE",
    "DETECTION_CATEGORIES",
    "MD_FORMAT_VERSION",
    "CamtrapResult",
    "ExportError",
    "ImportResult",
    "MdJsonError",
    "dump_mdjson",
    "ensure_detector_boxes",
    "export_camtrapdp",
    "export_mart_csvs",
    "import_mdjson",
    "mdjson_results",
    "read_mdjson",
    "write_mdjson",
]
