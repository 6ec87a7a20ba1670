"""Field formats (flows/formats): MegaDetector batch JSON out and in, Camtrap DP 1.0, CSV.

On the session's real ingest of the samples (``sample_run``, hence ``slow``); each test itself
takes under a second. The Camtrap DP schemas are vendored test data (tests/data/camtrapdp).
"""

from __future__ import annotations

import copy
import csv
import json
import math
import shutil
from pathlib import Path
from typing import Any

import frictionless
import jsonschema
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.formats import exports as _exports
from flows.settings import Settings
from flows.store.warehouse import open_file
from tests.conftest import SHARED_DIR, copy_samples, query

DATA = Path(__file__).parents[2] / "data" / "camtrapdp"
DEFAULTS = Settings()
MD_ARGS: dict[str, Any] = {
    "animal_model": DEFAULTS.animal_model,
    "general_model": DEFAULTS.general_model,
    "typical_threshold": 0.25,
    "conservative_threshold": 0.05,
}
DP_ARGS: dict[str, Any] = {
    "animal_model": DEFAULTS.animal_model,
    "general_model": DEFAULTS.general_model,
    "grid_km": 10.0,
}


# ---- a validator mirroring MegaDetector's postprocessing/validate_batch_results.py -----------


def validate_md_batch(doc: Any) -> list[str]:
    """The published field rules of MegaDetector batch output (format 1.x): required keys and
    types, string category ids that exist in the category maps, normalised [x, y, w, h] boxes,
    confidences in 0..1, classifications sorted by descending score, failure => detections
    null, no duplicate files. Returns the problems found (empty: valid)."""
    problems: list[str] = []
    if not isinstance(doc, dict):
        return ["top level is not an object"]
    for key in ("info", "detection_categories", "images"):
        if key not in doc:
            problems.append(f"missing required key {key!r}")
    if problems:
        return problems
    info = doc["info"]
    if not isinstance(info, dict) or not isinstance(info.get("format_version"), str):
        problems.append("info.format_version must be a string")
    elif float(info["format_version"]) < 1.3:
        problems.append("format_version must be >= 1.3")
    for k in ("detection_completion_time", "classification_completion_time"):
        if k in info and not isinstance(info[k], str):
            problems.append(f"info.{k} must be a string")
    meta = info.get("detector_metadata", {})
    for k in ("typical_detection_threshold", "conservative_detection_threshold"):
        if k in meta and not 0 <= meta[k] <= 1:
            problems.append(f"detector_metadata.{k} outside 0..1")
    det_cats = doc["detection_categories"]
    for cid, name in det_cats.items():
        if not (isinstance(cid, str) and cid.isdigit() and isinstance(name, str)):
            problems.append(f"detection category {cid!r}: ids are int strings, names strings")
    cls_cats = doc.get("classification_categories", {})
    for cid in cls_cats:
        if not (isinstance(cid, str) and cid.isdigit()):
            problems.append(f"classification category {cid!r} is not an int string")
    for cid in doc.get("classification_category_descriptions", {}):
        if cid not in cls_cats:
            problems.append(f"description for unknown classification category {cid!r}")
    if not isinstance(doc["images"], list):
        return [*problems, "images must be a list"]
    files: set[str] = set()
    for im in doc["images"]:
        f = im.get("file")
        if not isinstance(f, str):
            problems.append(f"image without a 'file' string: {im!r:.80}")
            continue
        if f in files:
            problems.append(f"{f}: listed twice")
        files.add(f)
        if "failure" in im and im["failure"] is not None:
            if not isinstance(im["failure"], str):
                problems.append(f"{f}: failure must be a string")
            if im.get("detections") is not None:
                problems.append(f"{f}: a failed image must have detections null")
            continue
        dets = im.get("detections")
        if not isinstance(dets, list):
            problems.append(f"{f}: detections must be a list when there is no failure")
            continue
        for det in dets:
            if det.get("category") not in det_cats:
                problems.append(
                    f"{f}: category {det.get('category')!r} not in detection_categories"
                )
            conf = det.get("conf")
            if not isinstance(conf, int | float) or not 0 <= conf <= 1:
                problems.append(f"{f}: conf {conf!r} outside 0..1")
            bbox = det.get("bbox")
            if not (isinstance(bbox, list) and len(bbox) == 4):
                problems.append(f"{f}: bbox must be [x, y, w, h]")
                continue
            x, y, w, h = bbox
            if not (0 <= x <= 1 and 0 <= y <= 1 and 0 <= w <= 1 and 0 <= h <= 1):
                problems.append(f"{f}: bbox {bbox} not normalised")
            if x + w > 1.0001 or y + h > 1.0001:
                problems.append(f"{f}: bbox {bbox} runs off the image")
            classes = det.get("classifications")
            if classes is not None:
                scores = [c[1] for c in classes]
                if scores != sorted(scores, reverse=True):
                    problems.append(f"{f}: classifications not sorted by score")
                for c in classes:
                    if c[0] not in cls_cats:
                        problems.append(f"{f}: classification {c[0]!r} not in categories")
    return problems


def test_the_md_validator_catches_broken_files() -> None:
    good = {
        "info": {"format_version": "1.5"},
        "detection_categories": {"1": "animal"},
        "classification_categories": {"1": "fox", "2": "cat"},
        "images": [
            {"file": "a.jpg", "detections": [{"category": "1", "conf": 0.9, "bbox": [0, 0, 1, 1],
                                              "classifications": [["1", 0.8], ["2", 0.1]]}]},
            {"file": "b.jpg", "failure": "Failure image access", "detections": None},
        ],
    }  # fmt: skip
    assert validate_md_batch(good) == []
    cases = {
        "off the image": ("detections", 0, "bbox", [0.5, 0.5, 0.6, 0.1]),
        "not sorted": ("detections", 0, "classifications", [["1", 0.1], ["2", 0.8]]),
        "detection_categories": ("detections", 0, "category", "7"),
    }
    for expected, (key, i, field, value) in cases.items():
        bad = copy.deepcopy(good)
        bad["images"][0][key][i][field] = value
        assert any(expected in p for p in validate_md_batch(bad)), expected
    bad = copy.deepcopy(good)
    bad["images"][1]["detections"] = []
    assert any("detections null" in p for p in validate_md_batch(bad))


# ---- MegaDetector JSON out -------------------------------------------------------------


@pytest.mark.slow  # the session's sample ingest; the test itself takes < 1 s
def test_mdjson_export_follows_the_format(sample_run: dict[str, Any]) -> None:
    warehouse = sample_run["warehouse"]
    doc = _exports.mdjson_results(warehouse, **MD_ARGS)
    assert validate_md_batch(doc) == []
    # the JSON text round-trips through json (no NaN, no datetimes)
    assert json.loads(_exports.dump_mdjson(doc)) == doc

    info = doc["info"]
    assert info["format_version"] == "1.5"
    assert info["detector"].startswith("mdlite_yolox_tiny@")
    assert info["detector_metadata"]["typical_detection_threshold"] == 0.25
    assert info["detector_metadata"]["conservative_detection_threshold"] == 0.05
    assert doc["detection_categories"] == {"1": "animal", "2": "person", "3": "vehicle"}

    by_file = {im["file"]: im for im in doc["images"]}
    media = query(warehouse, "select file_path from raw.media")
    assert {m[0] for m in media} <= set(by_file)  # every image, by its path under the source
    assert not any(f.startswith("/") for f in by_file)
    skipped = query(
        warehouse,
        "select distinct file_path from raw.quarantine where action = 'skipped' "
        "and file_path not in (select file_path from raw.media)",
    )
    assert skipped, "the samples include files a run skips"
    for (path,) in skipped:
        assert by_file[path]["detections"] is None and by_file[path]["failure"]

    # the counted boxes, rounded like MegaDetector: animals from the animal model, people and
    # vehicles from the general model only
    counted = query(
        warehouse,
        "select count(*) from raw.detections where (category = 'animal' and model_name = ?) "
        "or (category in ('person', 'vehicle') and model_name = ?)",
        [DEFAULTS.animal_model, DEFAULTS.general_model],
    )[0][0]
    boxes = [d for im in doc["images"] for d in im["detections"] or []]
    assert len(boxes) == counted > 0
    assert {d["category"] for d in boxes} >= {"1", "2"}
    assert all(len(str(v).split(".")[-1]) <= 4 for d in boxes for v in d["bbox"])
    human = by_file["google__cameratrapai/test_data/human.jpg"]["detections"]
    assert any(d["category"] == "2" and d["conf"] >= 0.5 for d in human)

    clips = query(warehouse, "select file_path from raw.media where media_type = 'video'")
    for (path,) in clips:  # MegaDetector's video fields
        assert by_file[path]["frame_rate"] > 0
        assert all(isinstance(d["frame_number"], int) for d in by_file[path]["detections"])

    one_site = _exports.mdjson_results(warehouse, site=["StationA"], **MD_ARGS)
    assert one_site["images"] and all("/StationA/" in im["file"] for im in one_site["images"])
    with pytest.raises(_exports.ExportError, match="no images at site"):
        _exports.mdjson_results(warehouse, site=["no-such-site"], **MD_ARGS)


@pytest.mark.slow  # the session's sample ingest; the test itself takes < 1 s
def test_mdjson_exports_only_the_latest_version_dbt_picks(
    sample_run: dict[str, Any], tmp_path: Path
) -> None:
    """The animal model re-run with a newer version on one photo: the export holds only the
    new run's box there (dbt's int_detections_latest_version decides, through the
    marts.fct_detector_boxes view: no rebuild), and the other photos keep theirs."""
    warehouse = tmp_path / "copy.duckdb"
    shutil.copy(sample_run["warehouse"], warehouse)
    before = _exports.mdjson_results(warehouse, **MD_ARGS)
    by_file = {im["file"]: im for im in before["images"]}
    media_id, path, n_old = query(
        warehouse,
        "select d.media_id, m.file_path, count(*) from raw.detections d join raw.media m "
        "using (media_id) where d.model_name = ? and d.category = 'animal' "
        "group by all having count(*) >= 2 order by m.file_path limit 1",
        [DEFAULTS.animal_model],
    )[0]
    assert sum(d["category"] == "1" for d in by_file[path]["detections"]) == n_old
    with open_file(warehouse) as con:
        con.execute(
            "insert into raw.detections by name select * replace ("
            "  md5(detection_id || 'v-next') as detection_id, 'v-next' as model_version,"
            "  0.07 as confidence, detected_at + interval 1 day as detected_at)"
            " from raw.detections where media_id = ? and model_name = ? limit 1",
            [media_id, DEFAULTS.animal_model],
        )
    after = {im["file"]: im for im in _exports.mdjson_results(warehouse, **MD_ARGS)["images"]}
    animals = [d for d in after[path]["detections"] if d["category"] == "1"]
    assert [d["conf"] for d in animals] == [0.07]
    assert {f: im for f, im in after.items() if f != path} == {
        f: im for f, im in by_file.items() if f != path
    }


@pytest.mark.slow  # the session's sample ingest; the test itself takes < 1 s
def test_mdjson_round_trip_is_identical(
    sample_run: dict[str, Any], camtrap_dir: Path, tmp_path: Path
) -> None:
    """export -> import into a fresh warehouse -> export gives the same bytes (completion time
    included: the import keeps it as the boxes' detected_at); a second import adds nothing."""
    first = _exports.dump_mdjson(_exports.mdjson_results(sample_run["warehouse"], **MD_ARGS))
    path = tmp_path / "md.json"
    path.write_text(first, encoding="utf-8")
    fresh = tmp_path / "fresh.duckdb"

    result = _exports.import_mdjson(fresh, path, str(camtrap_dir))
    assert result.missing == [] and result.media_added > 100 and result.detections_added > 100
    assert result.failures == first.count('"failure"')
    with pytest.raises(_exports.ExportError, match="fct_detector_boxes"):
        _exports.mdjson_results(fresh, **MD_ARGS)  # an import only: dbt has not run yet
    assert _exports.ensure_detector_boxes(Settings(warehouse=fresh, home=tmp_path))
    assert not _exports.ensure_detector_boxes(Settings(warehouse=fresh, home=tmp_path))
    second = _exports.dump_mdjson(_exports.mdjson_results(fresh, **MD_ARGS))
    assert second == first

    again = _exports.import_mdjson(fresh, path, str(camtrap_dir))
    assert (again.media_added, again.detections_added) == (0, 0)
    counts = query(
        fresh, "select (select count(*) from raw.media), (select count(*) from raw.detections)"
    )
    assert counts[0] == (result.media_added, result.detections_added)
    # media rows carry the image's own identity and EXIF, as a trapflow run would
    ingested = dict(query(sample_run["warehouse"], "select media_id, captured_at from raw.media"))
    imported = dict(query(fresh, "select media_id, captured_at from raw.media"))
    assert set(imported) == set(ingested)
    exif_times = query(
        sample_run["warehouse"], "select media_id from raw.media where timestamp_source = 'exif'"
    )
    assert all(imported[m] == ingested[m] for (m,) in exif_times)


FOREIGN_FILES = [
    "agentmorris__MegaDetector/images/idaho-camera-traps.jpg",
    "google__cameratrapai/test_data/human.jpg",
]


def test_import_of_another_tools_results(camtrap_dir: Path, tmp_path: Path) -> None:
    """A MegaDetector + species classifier file with Windows paths, a failure, a missing file
    and an unknown category: loaded where it can be, reported where it cannot."""
    source = tmp_path / "card"
    copy_samples(camtrap_dir, source, FOREIGN_FILES)
    doc = {
        "info": {
            "format_version": "1.4",
            "detector": "md_v5a.0.0.pt",
            "detection_completion_time": "2024-05-01 10:11:12",
            "classifier": "speciesnet@4.0.1a",
            "detector_metadata": {"megadetector_version": "v5a.0.0"},
        },
        "detection_categories": {"1": "animal", "2": "person", "3": "vehicle", "4": "ghost"},
        "classification_categories": {"0": "elk", "1": "mule deer"},
        "images": [
            {"file": FOREIGN_FILES[0].replace("/", "\\"), "detections": [
                {"category": "1", "conf": 0.91, "bbox": [0.1, 0.2, 0.3, 0.4],
                 "classifications": [["1", 0.7], ["0", 0.2]]},
                {"category": "4", "conf": 0.5, "bbox": [0.0, 0.0, 0.1, 0.1]},
            ]},
            {"file": FOREIGN_FILES[1], "detections": [
                {"category": "2", "conf": 0.88, "bbox": [0.4, 0.1, 0.2, 0.8]}]},
            {"file": "gone/missing.jpg", "detections": []},
            {"file": "corrupt.jpg", "failure": "Failure image access", "detections": None},
        ],
    }  # fmt: skip
    (source / "corrupt.jpg").write_bytes(b"not a jpeg")
    path = tmp_path / "md.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    warehouse = tmp_path / "w.duckdb"

    result = _exports.import_mdjson(warehouse, path, str(source))
    assert result.missing == ["gone/missing.jpg"]
    assert result.skipped_categories == {"4": 1}
    assert (result.media_added, result.detections_added, result.classifications_added) == (2, 2, 2)
    assert query(warehouse, "select distinct model_name, model_version from raw.detections") == [
        ("md_v5a.0.0", "v5a.0.0")
    ]
    assert query(warehouse, "select label, rank from raw.classifications order by rank") == [
        ("mule deer", 1), ("elk", 2),
    ]  # fmt: skip
    assert query(warehouse, "select file_path, reason, action from raw.quarantine") == [
        ("corrupt.jpg", "Failure image access", "skipped")
    ]
    assert query(warehouse, "select status from raw.runs") == [("completed",)]

    _exports.ensure_detector_boxes(Settings(warehouse=warehouse, home=tmp_path))
    out = _exports.mdjson_results(warehouse, detector="md_v5a.0.0", **MD_ARGS)
    assert validate_md_batch(out) == []
    assert out["info"]["detector"] == "md_v5a.0.0@v5a.0.0"
    assert out["info"]["detection_completion_time"] == "2024-05-01T10:11:12Z"
    assert out["info"]["classifier"] == "speciesnet@4.0.1a"
    names = out["classification_categories"]
    by_file = {im["file"]: im for im in out["images"]}
    elk_box = by_file[FOREIGN_FILES[0]]["detections"][0]
    assert [names[c] for c, _ in elk_box["classifications"]] == ["mule deer", "elk"]
    assert by_file[FOREIGN_FILES[1]]["detections"][0]["category"] == "2"
    assert by_file["corrupt.jpg"] == {
        "file": "corrupt.jpg", "failure": "Failure image access", "detections": None,
    }  # fmt: skip


def test_import_rejects_what_is_not_md_output(tmp_path: Path) -> None:
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps({"annotations": []}), encoding="utf-8")
    with pytest.raises(_exports.MdJsonError, match=r"format_version.*images"):
        _exports.import_mdjson(tmp_path / "w.duckdb", bad, str(tmp_path))
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(_exports.MdJsonError, match="is not JSON"):
        _exports.import_mdjson(tmp_path / "w.duckdb", bad, str(tmp_path))


# ---- Camtrap DP ------------------------------------------------------------------------


def _validate_package(out: Path, standards: Path = DATA) -> frictionless.Report:
    """frictionless against the vendored table schemas (the package names the published URLs),
    or those of ``standards``; an extra resource carries its own schema inline."""
    descriptor = json.loads((out / "datapackage.json").read_text(encoding="utf-8"))
    profile = json.loads((standards / "camtrap-dp-profile.json").read_text(encoding="utf-8"))
    if "allOf" in profile:
        # the published profile: its parts refer to remote schemas (the Data Package spec,
        # GeoJSON) that cannot be fetched offline, so apply its rule on the resources (the
        # three Camtrap DP tables by schema URL; any other name is an extra resource)
        rule = next(p["properties"]["resources"] for p in profile["allOf"] if "properties" in p)
        rule = json.loads(json.dumps(rule).replace('"#$defs/', '"#/$defs/'))  # 1.0 lacks a "/"
        jsonschema.validate(descriptor["resources"], {"$defs": profile["$defs"], **rule})
    else:
        jsonschema.validate(descriptor, profile)
    local = copy.deepcopy(descriptor)
    del local["profile"]  # the remote profile: checked above with jsonschema, offline
    for resource in local["resources"]:
        if isinstance(resource["schema"], str):
            resource["schema"] = json.loads(
                (standards / f"{resource['name']}-table-schema.json").read_text(encoding="utf-8")
            )
    package = frictionless.Package(local, basepath=str(out))
    return package.validate()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _assert_rai_intervals_match_the_mart(warehouse: Path, path: Path) -> None:
    """rai_intervals.csv holds marts.fct_rai_intervals' species rows, value for value."""
    mart = query(
        warehouse,
        "select site_id, period_start, label, rai, rai_lower, rai_upper, confidence_level,"
        " replicates, seed, unit, n_units, between_deployment_variance"
        " from marts.fct_rai_intervals where category = 'animal'",
    )
    assert mart, "the sample marts have RAI intervals"
    rows = _rows(path)
    assert len(rows) == len(mart)
    by_key = {(r["site"], r["period"], r["species"]): r for r in rows}
    for site, start, label, rai, lower, upper, level, reps, seed, unit, n, var in mart:
        row = by_key[(site, start.isoformat(), label)]
        for field, value in (("rai", rai), ("lower", lower), ("upper", upper)):
            assert float(row[field]) == pytest.approx(value, abs=1e-6), (field, row)
        assert float(row["lower"]) <= float(row["rai"]) <= float(row["upper"])
        assert (float(row["confidence_level"]), int(row["replicates"]), int(row["seed"])) == (
            level, reps, seed
        )  # fmt: skip
        assert (row["unit"], int(row["n_units"])) == (unit, n)
        if var is None:
            assert row["between_deployment_variance"] == ""
        else:
            assert float(row["between_deployment_variance"]) == pytest.approx(var, abs=1e-6)


@pytest.mark.slow  # the session's sample ingest; the test itself takes < 1 s
def test_camtrapdp_package_is_valid(sample_run: dict[str, Any], tmp_path: Path) -> None:
    warehouse = sample_run["warehouse"]
    out = tmp_path / "dp"
    result = _exports.export_camtrapdp(
        warehouse, out, sensitive=("animal",), missing_location=(-1.95, 34.68, 20000.0),
        **DP_ARGS,
    )  # fmt: skip
    report = _validate_package(out)
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])[:10]
    # and against the published Camtrap DP 1.0 files (../shared/standards), offline
    report = _validate_package(out, SHARED_DIR / "standards" / "camtrap-dp-1.0")
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])[:10]

    # the companion RAI intervals: an extra resource, the mart's rows
    descriptor = json.loads((out / "datapackage.json").read_text(encoding="utf-8"))
    extra = [r for r in descriptor["resources"] if r["name"] == "rai_intervals"]
    assert extra and extra[0]["path"] == "rai_intervals.csv" == result.rai_intervals.name
    _assert_rai_intervals_match_the_mart(warehouse, out / "rai_intervals.csv")

    deployments = {d["deploymentID"]: d for d in _rows(out / "deployments.csv")}
    media = {m["mediaID"]: m for m in _rows(out / "media.csv")}
    observations = _rows(out / "observations.csv")
    marts = query(
        warehouse, "select deployment_id, trap_nights, utc_offset from marts.dim_deployments"
    )
    assert set(deployments) == {d[0] for d in marts} and result.deployments == len(marts)
    assert (
        len(media)
        == query(warehouse, "select count(*) from marts.dim_media where deployment_id is not null")[
            0
        ][0]
    )

    # effort is carried per deployment; times always carry an offset
    for dep_id, trap_nights, offset in marts:
        assert f"trapNights:{float(trap_nights)!r}" in deployments[dep_id]["deploymentTags"]
        if offset:  # else the images' offset, if they have one
            assert deployments[dep_id]["timestampIssues"] == "false"
    assert all(m["timestamp"][-6] in "+-" for m in media.values())
    assert set(result.timestamp_issues) == {
        d for d, row in deployments.items() if row["timestampIssues"] == "true"
    }

    # observations at both levels, with who classified them
    levels = {o["observationLevel"] for o in observations}
    assert levels == {"media", "event"}
    events = [o for o in observations if o["observationLevel"] == "event"]
    assert len(events) == query(warehouse, "select count(*) from marts.fct_events")[0][0]
    assert all(o["mediaID"] == "" and o["eventID"] for o in events)
    assert {o["observationType"] for o in observations} >= {"animal", "human", "blank"}
    animals = [o for o in observations if o["observationType"] == "animal"]
    # the camtrapR species tags came in as human labels: classified by a person, per photo
    tagged = [o for o in animals if o["classificationMethod"] == "human"]
    assert tagged
    assert all(o["classifiedBy"] == "import:xmp" for o in tagged)
    machine = [o for o in animals if o["classificationMethod"] == "machine"]
    assert len(machine) + len(tagged) == len(animals) and machine
    assert all(o["classifiedBy"] == DEFAULTS.animal_model for o in machine)
    media_level = [o for o in machine if o["observationLevel"] == "media"]
    assert all(0 < float(o["classificationProbability"]) <= 1 for o in media_level)
    people = {
        o["mediaID"] for o in observations if o["observationType"] == "human" and o["mediaID"]
    }
    assert people and all(media[m]["filePublic"] == "false" for m in people)

    # sensitive taxa ('animal' here, to exercise it on the samples): generalised coordinates
    exact = dict(((d, (lat, lon)) for d, lat, lon in query(
        warehouse, "select deployment_id, latitude, longitude from marts.dim_deployments "
        "where latitude is not null")))  # fmt: skip
    generalised = [d for d in result.generalised if d in exact]
    assert generalised, "sample deployments with GPS and animals"
    for dep in generalised:
        row = deployments[dep]
        assert int(row["coordinateUncertainty"]) == round(10_000 * math.sqrt(2) / 2)
        lat, lon = exact[dep]
        assert abs(float(row["latitude"]) - lat) <= 10 / 111.32
        assert (float(row["latitude"]), float(row["longitude"])) != (round(lat, 6), round(lon, 6))


@pytest.mark.slow  # the session's sample ingest; the test itself takes < 1 s
def test_camtrapdp_reports_what_gbif_would_reject(
    sample_run: dict[str, Any], tmp_path: Path
) -> None:
    """Without --missing-location the sample deployments lack coordinates: the export says so
    and the package does not validate (the schemas do catch it)."""
    out = tmp_path / "dp"
    result = _exports.export_camtrapdp(sample_run["warehouse"], out, sensitive=(), **DP_ARGS)
    assert result.no_coordinates and not result.generalised
    report = _validate_package(out)
    assert not report.valid
    errors = report.flatten(["fieldName", "type"])
    assert {tuple(e) for e in errors} <= {
        ("latitude", "constraint-error"),
        ("longitude", "constraint-error"),
    }


@pytest.mark.slow  # the session's sample ingest; the test itself takes < 1 s
def test_camtrapdp_marks_human_review(sample_run: dict[str, Any], tmp_path: Path) -> None:
    """A reviewed label is exported as classificationMethod=human, classifiedBy=the reviewer.
    The review is written where the marts put it (review.labels and the resolved per-image
    table dbt built), on a copy of the warehouse, to keep this test fast."""
    warehouse = tmp_path / "w.duckdb"
    shutil.copy(sample_run["warehouse"], warehouse)
    with open_file(warehouse) as con:
        media_id = con.execute(
            "select media_id from intermediate.int_observations_per_image "
            "where category = 'animal' order by media_id limit 1"
        ).fetchone()[0]
        con.execute(
            "update intermediate.int_observations_per_image set label = 'Loxodonta africana', "
            "label_source = 'review', max_confidence = null "
            "where media_id = ? and category = 'animal'", [media_id],
        )  # fmt: skip
        con.execute(
            "insert into review.labels (label_id, media_id, category, label, reviewer, reviewed_at)"
            " values ('l1', ?, 'animal', 'Loxodonta africana', 'ranger.ann', now())", [media_id],
        )  # fmt: skip
    out = tmp_path / "dp"
    _exports.export_camtrapdp(warehouse, out, sensitive=DEFAULTS.sensitive_species, **DP_ARGS)
    reviewed = [o for o in _rows(out / "observations.csv") if o["mediaID"] == media_id]
    assert len(reviewed) == 1
    assert reviewed[0]["classificationMethod"] == "human"
    assert reviewed[0]["classifiedBy"] == "ranger.ann"
    assert reviewed[0]["classificationProbability"] == ""
    assert reviewed[0]["scientificName"] == "Loxodonta africana"
    package = json.loads((out / "datapackage.json").read_text(encoding="utf-8"))
    assert {"scientificName": "Loxodonta africana"} in package["taxonomic"]


# ---- CSV and the command line ----------------------------------------------------------


@pytest.mark.slow  # the session's sample ingest; the test itself takes < 1 s
def test_mart_csvs(sample_run: dict[str, Any], tmp_path: Path) -> None:
    warehouse = sample_run["warehouse"]
    paths = _exports.export_mart_csvs(warehouse, tmp_path / "csv")
    marts = [r[0] for r in query(
        warehouse, "select table_name from information_schema.tables where table_schema = 'marts'"
    )]  # fmt: skip
    assert sorted(p.stem for p in paths) == sorted([*marts, "rai_intervals"])
    assert paths[-1].name == "rai_intervals.csv" and "fct_rai_intervals" in marts
    _assert_rai_intervals_match_the_mart(warehouse, paths[-1])
    paths = paths[:-1]
    assert {"fct_daily_population", "fct_events", "dim_deployments"} <= set(marts)
    for path in paths:
        rows = _rows(path)
        assert len(rows) == query(warehouse, f"select count(*) from marts.{path.stem}")[0][0]
    with pytest.raises(_exports.ExportError, match="no marts yet"):
        _exports.export_mart_csvs(tmp_path / "empty.duckdb", tmp_path / "x")


@pytest.mark.slow  # the session's sample ingest; the test itself takes < 1 s
def test_cli_export_and_import(sample_run: dict[str, Any], tmp_path: Path) -> None:
    runner = CliRunner()
    wh = str(sample_run["warehouse"])
    res = runner.invoke(app, ["export", "mdjson", "--out", str(tmp_path / "md.json"), "-w", wh])
    assert res.exit_code == 0, res.output
    assert validate_md_batch(json.loads((tmp_path / "md.json").read_text())) == []
    res = runner.invoke(app, ["export", "camtrapdp", "--out", str(tmp_path / "dp"), "-w", wh])
    assert res.exit_code == 0, res.output
    assert "no coordinates" in res.output and (tmp_path / "dp" / "datapackage.json").exists()
    res = runner.invoke(app, ["export", "csv", "--out", str(tmp_path / "csv"), "-w", wh])
    assert res.exit_code == 0 and "fct_events.csv" in res.output
    (tmp_path / "bad.json").write_text("[]")
    res = runner.invoke(
        app, ["import", "mdjson", str(tmp_path / "bad.json"), "--source", str(tmp_path),
              "-w", str(tmp_path / "new.duckdb")],
    )  # fmt: skip
    assert res.exit_code == 1 and "error" in res.output and "'info'" in res.output
