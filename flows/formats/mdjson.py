"""MegaDetector batch output JSON (format 1.5) out (:func:`mdjson_results`, :func:`write_mdjson`)
and the check of a file to import (:func:`read_mdjson`; the import: ``mdjson_import``).

The export is the stored output of the detectors the marts count (``animal_model`` for animals,
``general_model`` for persons and vehicles) down to the inference floor, as MegaDetector
writes it: boxes are not thresholded here, the thresholds go into ``detector_metadata`` for
the reader's tools. The boxes are ``marts.fct_detector_boxes``: dbt decides which version of
a model re-run on an image is the latest (int_detections_latest_version). It is a view, so a
warehouse that only holds an import exports once dbt has created it
(:data:`DETECTOR_BOXES_SELECT`, a few seconds; ``trapflow export mdjson`` does it).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flows.formats.common import (
    CATEGORY_ID,
    DETECTION_CATEGORIES,
    ExportError,
    MdJsonError,
    fetch,
    iso_utc,
)
from flows.pipeline.discovery import site_and_camera
from flows.settings import Settings
from flows.store import warehouse as _warehouse

MD_FORMAT_VERSION = "1.5"
DETECTOR_BOXES = "fct_detector_boxes"
# what ``dbt run --select`` creates for the export (views only, over raw)
DETECTOR_BOXES_SELECT = f"+{DETECTOR_BOXES}"


def has_detector_boxes(warehouse: Path) -> bool:
    """Whether dbt has created ``marts.fct_detector_boxes`` in this warehouse."""
    with _warehouse.connect(warehouse, read_only=True) as con:
        return _warehouse.has_mart(con, DETECTOR_BOXES)


def ensure_detector_boxes(settings: Settings) -> bool:
    """Create ``marts.fct_detector_boxes`` with dbt (views only: a few seconds) where the
    warehouse lacks it, e.g. one that only holds an import; whether dbt ran."""
    if has_detector_boxes(settings.warehouse_path):
        return False
    from flows.store.dbt import run_dbt

    run_dbt(settings, "run", "--select", DETECTOR_BOXES_SELECT)
    return True


def split_model(model: str) -> tuple[str, str]:
    name, _, version = model.partition("@")
    return name, version


def mdjson_results(
    warehouse: Path,
    *,
    animal_model: str,
    general_model: str,
    typical_threshold: float,
    conservative_threshold: float,
    site: Sequence[str] = (),
    layout: str | None = None,
    detector: str | None = None,
) -> dict[str, Any]:
    """The warehouse's results as a MegaDetector batch output document (format 1.5).

    Boxes: animals from ``animal_model``, persons and vehicles from ``general_model`` (the
    models the marts count), latest version per image; ``detector`` (a model name) exports
    every category from that one model instead, e.g. after importing someone else's run.
    Quarantined files that were skipped are listed with ``failure`` and ``detections: null``.
    """
    rules = (
        {c: detector for c in ("animal", "person", "vehicle")}
        if detector
        else {"animal": animal_model, "person": general_model, "vehicle": general_model}
    )
    sites = list(site)
    with _warehouse.connect(warehouse, read_only=True) as con:
        if not _warehouse.has_mart(con, DETECTOR_BOXES):
            raise ExportError(
                f"the warehouse {warehouse} has no marts.{DETECTOR_BOXES} yet: run 'trapflow "
                "marts' (or 'trapflow export mdjson', which creates it) first"
            )
        site_sql = " and site_id in (select unnest(?::varchar[]))" if sites else ""
        media = [
            (m["media_id"], m["source_uri"], m["file_path"], m.get("fps"))
            for m in fetch(
                con,
                f"select * from raw.media where true{site_sql} order by file_path, source_uri",
                [sites] if sites else [],
            )
        ]
        if sites and not media:
            known = [r[0] for r in con.execute("select distinct site_id from raw.media").fetchall()]
            raise ExportError(
                f"no images at site(s) {', '.join(sites)}; the warehouse has: "
                f"{', '.join(sorted(known)) or 'none'}. Check --site."
            )
        rule_rows = [(c, m) for c, m in rules.items()]
        con.execute("create temp table _rules (category varchar, model_name varchar)")
        con.executemany("insert into _rules values (?, ?)", rule_rows)
        detections = con.execute(
            f"""
            select d.detection_id, d.media_id, d.model_name, d.model_version, d.category,
                   d.confidence, d.bbox_x, d.bbox_y, d.bbox_w, d.bbox_h, d.frame_number,
                   d.detected_at
            from marts.{DETECTOR_BOXES} d
            join _rules r on d.category = r.category and d.model_name = r.model_name
            """
        ).fetchall()
        classifications = con.execute(
            """
            select c.detection_id, c.model_name, c.model_version, c.label, c.probability,
                   c.rank, c.classified_at
            from raw.classifications c
            """
        ).fetchall()
        failures = con.execute(
            "select file_path, min(reason) from raw.quarantine where action = 'skipped' "
            "and file_path not in (select file_path from raw.media) group by file_path"
        ).fetchall()

    exported = {d[0] for d in detections}
    # One classifier: the one that labelled most of the exported boxes.
    cls_rows = [c for c in classifications if c[0] in exported]
    classifier = None
    if cls_rows:
        counts = Counter(f"{c[1]}@{c[2]}" if c[2] else c[1] for c in cls_rows)
        classifier = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        cls_rows = [c for c in cls_rows if (f"{c[1]}@{c[2]}" if c[2] else c[1]) == classifier]
    labels = sorted({c[3] for c in cls_rows})
    label_ids = {label: str(i) for i, label in enumerate(labels, start=1)}
    by_detection: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for c in cls_rows:
        by_detection[c[0]].append((label_ids[c[3]], round(float(c[4]), 3)))

    boxes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    versions: dict[str, Counter[str]] = defaultdict(Counter)
    for d in detections:
        det: dict[str, Any] = {
            "category": CATEGORY_ID[d[4]],
            "conf": round(float(d[5]), 3),
            "bbox": [round(float(v), 4) for v in (d[6], d[7], d[8], d[9])],
        }
        if d[10] is not None:
            det["frame_number"] = int(d[10])
        if d[0] in by_detection:
            det["classifications"] = [
                [cid, conf]
                for cid, conf in sorted(by_detection[d[0]], key=lambda x: (-x[1], int(x[0])))
            ]
        boxes[d[1]].append(det)
        versions[d[2]][d[3]] += 1

    images: list[dict[str, Any]] = []
    seen: set[str] = set()
    for media_id, _source, path, fps in media:
        if media_id in seen:
            continue
        seen.add(media_id)
        dets = sorted(
            boxes.get(media_id, []),
            key=lambda x: (x.get("frame_number", 0), -x["conf"], x["category"], x["bbox"]),
        )
        image: dict[str, Any] = {"file": path}
        if fps:  # a video: MegaDetector's frame_rate, and frame_number on each detection
            image["frame_rate"] = round(float(fps), 3)
        image["detections"] = dets
        images.append(image)
    for path, reason in failures:
        if sites and site_and_camera(path, layout)[0] not in sites:
            continue
        images.append({"file": path, "failure": reason, "detections": None})
    images.sort(key=lambda img: img["file"])

    def model_id(name: str) -> str:
        common = versions.get(name)
        if not common:
            return name
        version = sorted(common.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        return f"{name}@{version}" if version else name

    completed = max((d[11] for d in detections), default=None)
    info: dict[str, Any] = {
        "format_version": MD_FORMAT_VERSION,
        "detector": model_id(rules["animal"]),
        "detection_completion_time": iso_utc(completed) if completed else None,
        "detector_metadata": {
            "megadetector_version": model_id(rules["animal"]),
            "typical_detection_threshold": typical_threshold,
            "conservative_detection_threshold": conservative_threshold,
            "trapflow_detectors": {c: model_id(m) for c, m in rules.items()},
        },
    }
    if info["detection_completion_time"] is None:
        del info["detection_completion_time"]
    result: dict[str, Any] = {"info": info, "detection_categories": dict(DETECTION_CATEGORIES)}
    if classifier:
        done = max(c[6] for c in cls_rows)
        info["classifier"] = classifier
        info["classification_completion_time"] = iso_utc(done)
        info["classifier_metadata"] = {"top_k": max(int(c[5]) for c in cls_rows)}
        result["classification_categories"] = {cid: label for label, cid in label_ids.items()}
        result["classification_category_descriptions"] = {
            cid: label for label, cid in label_ids.items()
        }
    result["images"] = images
    return result


def dump_mdjson(results: Mapping[str, Any]) -> str:
    """MegaDetector's own layout: indent 1, UTF-8, newline at the end."""
    return json.dumps(results, indent=1, ensure_ascii=False) + "\n"


def write_mdjson(out: Path, results: Mapping[str, Any]) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(dump_mdjson(results), encoding="utf-8")
    tmp.replace(out)
    return out


def read_mdjson(path: Path) -> dict[str, Any]:
    """Parse and check the structure; :class:`MdJsonError` says what is wrong and what to do."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MdJsonError(
            f"{path} is not JSON ({exc}). Give the .json file MegaDetector wrote "
            "(run_detector_batch output)."
        ) from None
    if not isinstance(doc, dict):
        raise MdJsonError(f"{path}: the top level must be an object with 'info' and 'images'")
    problems = []
    if not isinstance(doc.get("info"), dict) or "format_version" not in doc["info"]:
        problems.append("'info.format_version' is missing")
    if not isinstance(doc.get("detection_categories"), dict):
        problems.append("'detection_categories' is missing")
    if not isinstance(doc.get("images"), list):
        problems.append("'images' is missing or not a list")
    if problems:
        raise MdJsonError(
            f"{path} is not MegaDetector batch output: {'; '.join(problems)}. "
            "Convert it with MegaDetector's postprocessing tools first."
        )
    return doc


__all__ = [
    "MD_FORMAT_VERSION",
    "dump_mdjson",
    "mdjson_results",
    "read_mdjson",
    "split_model",
    "write_mdjson",
]
