"""A Camtrap DP 1.0 package (datapackage.json, deployments.csv, media.csv, observations.csv)
from the marts: :func:`export_camtrapdp`; beside them ``rai_intervals.csv``
(``marts.fct_rai_intervals``), listed as an extra resource with its own Table Schema.

Everything counted comes from relations dbt builds: deployments and effort
(``marts.dim_deployments``), media (``marts.dim_media``), media-level observations
(``intermediate.int_observations_per_image``: the counted boxes with their resolved labels),
events (``marts.fct_events``), who classified a reviewed image (``marts.fct_label_reviews``,
the reviews in force) and which sites are sensitive (``flows.access.privacy.sensitive_sites``,
over dbt's live views). ``raw.media`` gives only file metadata (offset, type, name).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flows.access.privacy import generalise, sensitive_sites
from flows.formats.common import (
    default_setting,
    fetch,
    fmt_cell,
    now_utc,
    require_marts,
    write_csv,
)
from flows.formats.rai_intervals import (
    RAI_INTERVALS_FILE,
    RAI_INTERVALS_SCHEMA,
    write_rai_intervals,
)
from flows.store import ids
from flows.store import warehouse as _warehouse

CAMTRAP_DP_PROFILE = "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0/camtrap-dp-profile.json"
CAMTRAP_DP_SCHEMA = (
    "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0/{table}-table-schema.json"
)

DEPLOYMENT_FIELDS = (
    "deploymentID", "locationID", "locationName", "latitude", "longitude",
    "coordinateUncertainty", "deploymentStart", "deploymentEnd", "setupBy", "cameraID",
    "cameraModel", "cameraDelay", "cameraHeight", "cameraDepth", "cameraTilt", "cameraHeading",
    "detectionDistance", "timestampIssues", "baitUse", "featureType", "habitat",
    "deploymentGroups", "deploymentTags", "deploymentComments",
)  # fmt: skip
MEDIA_FIELDS = (
    "mediaID", "deploymentID", "captureMethod", "timestamp", "filePath", "filePublic",
    "fileName", "fileMediatype", "exifData", "favorite", "mediaComments",
)  # fmt: skip
OBSERVATION_FIELDS = (
    "observationID", "deploymentID", "mediaID", "eventID", "eventStart", "eventEnd",
    "observationLevel", "observationType", "cameraSetupType", "scientificName", "count",
    "lifeStage", "sex", "behavior", "individualID", "individualPositionRadius",
    "individualPositionAngle", "individualSpeed", "bboxX", "bboxY", "bboxWidth", "bboxHeight",
    "classificationMethod", "classifiedBy", "classificationTimestamp",
    "classificationProbability", "observationTags", "observationComments",
)  # fmt: skip
_OBSERVATION_TYPE = {"animal": "animal", "person": "human", "vehicle": "vehicle"}
_MEDIATYPE = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "TIFF": "image/tiff"}
_EXT_MEDIATYPE = {
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "tif": "image/tiff",
    "tiff": "image/tiff", "mp4": "video/mp4", "avi": "video/x-msvideo", "mov": "video/quicktime",
}  # fmt: skip


@dataclass
class CamtrapResult:
    out_dir: Path
    deployments: int = 0
    media: int = 0
    observations_media: int = 0
    observations_event: int = 0
    generalised: list[str] = field(default_factory=list)  # deployments with sensitive taxa
    timestamp_issues: list[str] = field(default_factory=list)  # deployments without a UTC offset
    no_coordinates: list[str] = field(default_factory=list)
    unplaced_media: int = 0  # media outside every deployment (not exported)
    rai_intervals: Path | None = None  # the companion rai_intervals.csv (an extra resource)


def _offset(value: str | None) -> str | None:
    if not value:
        return None
    match = re.fullmatch(r"([+-])(\d{1,2}):?(\d{2})?", value.strip())
    if value.strip().upper() == "Z":
        return "+00:00"
    if not match:
        return None
    return f"{match[1]}{int(match[2]):02d}:{match[3] or '00'}"


def _stamp(value: datetime | None, offset: str, zone: ZoneInfo | None = None) -> str:
    """ISO 8601 with an offset: the deployment's IANA zone's offset at that instant (summer
    time included) when the station table names a zone, else the fixed offset."""
    if value is None:
        return ""
    value = value.replace(microsecond=0)
    if zone is not None:
        return value.replace(tzinfo=zone).isoformat()
    return value.isoformat() + offset


def export_camtrapdp(
    warehouse: Path,
    out_dir: Path,
    *,
    animal_model: str,
    general_model: str,
    sensitive: Sequence[str],
    grid_km: float | None = None,
    title: str = "trapflow camera-trap data",
    contributor: str = "trapflow user",
    missing_location: tuple[float, float, float] | None = None,
) -> CamtrapResult:
    """Write a Camtrap DP 1.0 package from the marts (deployments with effort, media with
    UTC offsets, media- and event-level observations) into ``out_dir``.

    Coordinates: the deployment's (deployments.csv), else the mean of its images' GPS, else
    ``missing_location`` (lat, lon, uncertainty in metres: e.g. the study area's centre),
    else none (listed in ``no_coordinates``: Camtrap DP requires them, so add the deployments
    to a deployments.csv). Deployments at sites that ever recorded a ``sensitive`` taxon
    (``flows.access.privacy.sensitive_sites``, the rule CSV and image exports use too) are
    generalised to ``grid_km`` (unset: the setting's default).
    """
    require_marts(warehouse)
    if grid_km is None:
        grid_km = float(default_setting("sensitive_grid_km"))
    with _warehouse.connect(warehouse, read_only=True) as con:
        deployments = fetch(con, "select * from marts.dim_deployments order by deployment_id")
        media = fetch(
            con,
            """
            select m.media_id, m.deployment_id, m.site_id, m.captured_at, m.file_path,
                   m.timestamp_source, m.latitude, m.longitude, m.camera_make, m.camera_model,
                   r.utc_offset, r.media_type, r.image_format, r.file_name, r.file_extension
            from marts.dim_media m join raw.media r using (media_id)
            order by m.captured_at, m.media_id
            """,
        )
        per_image = fetch(
            con,
            """
            select o.media_id, o.category, o.label, o.individuals, o.max_confidence,
                   o.label_source
            from intermediate.int_observations_per_image o
            order by o.media_id, o.category, o.label
            """,
        )
        reviewers = {
            r["media_id"]: r["reviewers"]
            for r in fetch(
                con,
                "select media_id, string_agg(distinct reviewer, '; ' order by reviewer) "
                "as reviewers from marts.fct_label_reviews where is_latest group by 1",
            )
        }
        classifiers = {  # provenance only: which classifier's rows the image has
            r["media_id"]: r["model"]
            for r in fetch(
                con,
                "select media_id, min(model_name || '@' || model_version) as model "
                "from raw.classifications group by 1",
            )
        }
        events = fetch(
            con,
            "select * from marts.fct_events order by deployment_id, event_started_at, event_id",
        )
        risky_sites = sensitive_sites(con, sensitive)

    # offsets and coordinates per deployment
    media_offsets: dict[str, Counter[str]] = defaultdict(Counter)
    media_coords: dict[str, list[tuple[float, float]]] = defaultdict(list)
    models: dict[str, Counter[str]] = defaultdict(Counter)
    for m in media:
        dep = m["deployment_id"]
        if dep is None:
            continue
        if off := _offset(m["utc_offset"]):
            media_offsets[dep][off] += 1
        if m["latitude"] is not None and m["longitude"] is not None:
            media_coords[dep].append((m["latitude"], m["longitude"]))
        if m["camera_make"] or m["camera_model"]:
            models[dep][" ".join(filter(None, (m["camera_make"], m["camera_model"])))] += 1

    media_by_id = {m["media_id"]: m for m in media if m["deployment_id"] is not None}
    result = CamtrapResult(out_dir=out_dir, unplaced_media=len(media) - len(media_by_id))
    sensitive_deps = {d["deployment_id"] for d in deployments if d["site_id"] in risky_sites}

    dep_offset: dict[str, str] = {}
    dep_zone: dict[str, ZoneInfo] = {
        d["deployment_id"]: ZoneInfo(d["timezone"]) for d in deployments if d["timezone"]
    }
    dep_rows = []
    for d in deployments:
        dep = d["deployment_id"]
        offset = _offset(d["utc_offset"])
        if offset is None and media_offsets[dep]:
            offset = media_offsets[dep].most_common(1)[0][0]
        issues = offset is None and dep not in dep_zone
        if issues:
            result.timestamp_issues.append(dep)
        dep_offset[dep] = offset or "+00:00"
        lat, lon = d["latitude"], d["longitude"]
        if (lat is None or lon is None) and media_coords[dep]:
            pts = media_coords[dep]
            lat, lon = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
        uncertainty: float | None = None
        if (lat is None or lon is None) and missing_location is not None:
            lat, lon, uncertainty = missing_location
        if dep in sensitive_deps and lat is not None and lon is not None:
            lat, lon, cell = generalise(lat, lon, grid_km)
            uncertainty = max(cell or 0, uncertainty or 0) or None
            result.generalised.append(dep)
        if lat is None or lon is None:
            result.no_coordinates.append(dep)
        elif uncertainty is None:
            lat, lon = round(lat, 6), round(lon, 6)
        dep_rows.append(
            {
                "deploymentID": dep, "locationID": d["site_id"], "locationName": d["site_id"],
                "latitude": lat, "longitude": lon,
                "coordinateUncertainty": int(uncertainty) if uncertainty else None,
                # the effort window (a date-only setup is 12:00, camtrapR's rule): a reader
                # computing effort from these gets the marts' trap-nights
                "deploymentStart": _stamp(d["effort_start"], dep_offset[dep], dep_zone.get(dep)),
                "deploymentEnd": _stamp(d["effort_end"], dep_offset[dep], dep_zone.get(dep)),
                "cameraID": d["camera_id"],
                "cameraModel": models[dep].most_common(1)[0][0] if models[dep] else None,
                "timestampIssues": issues,
                "deploymentGroups": f"site:{d['site_id']}",
                "deploymentTags": (
                    f"trapNights:{fmt_cell(float(d['trap_nights']))} | "
                    f"deployedDays:{d['deployed_days']} | images:{d['images']} | "
                    f"inferred:{fmt_cell(bool(d['is_inferred']))}"
                ),
                "deploymentComments": (
                    f"effort {fmt_cell(float(d['trap_nights']))} trap-nights over "
                    f"{d['deployed_days']} deployed days"
                    + (" (start/end inferred from the first and last image)"
                       if d["is_inferred"] else "")
                    + ("; no UTC offset known: times are camera-local, written as +00:00"
                       if issues else "")
                ),
            }
        )  # fmt: skip

    humans = {o["media_id"] for o in per_image if o["category"] == "person"}
    media_rows = []
    for m in media_by_id.values():
        offset = _offset(m["utc_offset"]) or dep_offset.get(m["deployment_id"], "+00:00")
        m["stamp"] = _stamp(m["captured_at"], offset, dep_zone.get(m["deployment_id"]))
        media_rows.append(
            {
                "mediaID": m["media_id"], "deploymentID": m["deployment_id"],
                "captureMethod": "activityDetection", "timestamp": m["stamp"],
                "filePath": m["file_path"], "filePublic": m["media_id"] not in humans,
                "fileName": m["file_name"],
                "fileMediatype": _MEDIATYPE.get(m["image_format"] or "")
                or _EXT_MEDIATYPE.get(m["file_extension"] or "", "image/jpeg"),
                "mediaComments": None if m["timestamp_source"] == "exif"
                else f"timestamp from {m['timestamp_source']}",
            }
        )  # fmt: skip

    def machine_by(category: str, media_id: str, source: str) -> str:
        if source == "classifier" and media_id in classifiers:
            return str(classifiers[media_id])
        return animal_model if category == "animal" else general_model

    obs_rows: list[dict[str, Any]] = []
    # event lookup: (deployment, category, label) -> events; media-level rows get their eventID
    by_key: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_key[(e["deployment_id"], e["category"], e["label"])].append(e)
    event_human: dict[str, list[str]] = defaultdict(list)
    event_prob: dict[str, float] = {}
    observed = set()
    for o in per_image:
        if o["media_id"] not in media_by_id:
            continue
        m = media_by_id[o["media_id"]]
        observed.add(o["media_id"])
        event_id = None
        for e in by_key.get((m["deployment_id"], o["category"], o["label"]), []):
            if e["event_started_at"] <= m["captured_at"] <= e["event_ended_at"]:
                event_id = e["event_id"]
                break
        human = o["label_source"] == "review"
        by = (
            reviewers.get(o["media_id"])
            if human
            else machine_by(o["category"], o["media_id"], o["label_source"])
        )
        if event_id and human:
            event_human[event_id].append(by or "reviewer")
        prob = (
            None if human or o["max_confidence"] is None else round(float(o["max_confidence"]), 4)
        )
        if event_id and prob is not None:
            event_prob[event_id] = max(prob, event_prob.get(event_id, 0.0))
        obs_rows.append(
            _observation(
                ids.camtrap_observation_id(o["media_id"], o["category"], o["label"]),
                m["deployment_id"], o["media_id"], event_id, m["stamp"], m["stamp"], "media",
                o["category"], o["label"], o["individuals"], human, by, prob,
            )
        )  # fmt: skip
    for m in media_by_id.values():
        if m["media_id"] not in observed:
            obs_rows.append(
                _observation(
                    ids.camtrap_observation_id(m["media_id"], "blank"), m["deployment_id"],
                    m["media_id"], None, m["stamp"], m["stamp"], "media", "blank", None, None,
                    False, animal_model, None,
                )
            )  # fmt: skip
    result.observations_media = len(obs_rows)
    for e in events:
        offset = dep_offset.get(e["deployment_id"], "+00:00")
        zone = dep_zone.get(e["deployment_id"])
        human = bool(event_human.get(e["event_id"]))
        by = (
            "; ".join(sorted(set(event_human[e["event_id"]])))
            if human
            else machine_by(e["category"], "", "detector")
        )
        obs_rows.append(
            _observation(
                e["event_id"], e["deployment_id"], None, e["event_id"],
                _stamp(e["event_started_at"], offset, zone),
                _stamp(e["event_ended_at"], offset, zone),
                "event", e["category"], e["label"], e["max_count"], human, by,
                None if human else event_prob.get(e["event_id"]),
            )
        )  # fmt: skip
    result.observations_event = len(obs_rows) - result.observations_media

    out_dir.mkdir(parents=True, exist_ok=True)
    result.deployments = write_csv(out_dir / "deployments.csv", DEPLOYMENT_FIELDS, dep_rows)
    result.media = write_csv(out_dir / "media.csv", MEDIA_FIELDS, media_rows)
    write_csv(out_dir / "observations.csv", OBSERVATION_FIELDS, obs_rows)
    with _warehouse.connect(warehouse, read_only=True) as con:
        result.rai_intervals = write_rai_intervals(con, out_dir)

    package = _datapackage(
        dep_rows, media, obs_rows, title=title, contributor=contributor, grid_km=grid_km,
        generalised=bool(result.generalised), rai_intervals=result.rai_intervals is not None,
    )  # fmt: skip
    (out_dir / "datapackage.json").write_text(
        json.dumps(package, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return result


def _observation(
    observation_id: str, deployment_id: str, media_id: str | None, event_id: str | None,
    start: str, end: str, level: str, category: str, label: str | None, count: Any,
    human: bool, by: str | None, probability: float | None,
) -> dict[str, Any]:  # fmt: skip
    kind = _OBSERVATION_TYPE.get(category, "blank")
    scientific = label if kind == "animal" and label and label != "animal" else None
    return {
        "observationID": observation_id, "deploymentID": deployment_id, "mediaID": media_id,
        "eventID": event_id, "eventStart": start, "eventEnd": end, "observationLevel": level,
        "observationType": kind, "scientificName": scientific,
        "count": int(count) if count and kind != "blank" else None,
        "classificationMethod": "human" if human else "machine", "classifiedBy": by,
        "classificationProbability": probability,
        "observationTags": f"label:{label}" if label else None,
    }  # fmt: skip


def _datapackage(
    deployments: list[dict[str, Any]],
    media: list[dict[str, Any]],
    observations: list[dict[str, Any]],
    *,
    title: str,
    contributor: str,
    grid_km: float,
    generalised: bool,
    rai_intervals: bool = False,
) -> dict[str, Any]:
    lats = [d["latitude"] for d in deployments if d["latitude"] is not None]
    lons = [d["longitude"] for d in deployments if d["longitude"] is not None]
    if lats:
        w, e, s, n = min(lons), max(lons), min(lats), max(lats)
        spatial: dict[str, Any] = {
            "type": "Polygon",
            "bbox": [w, s, e, n],
            "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]],
        }
    else:
        spatial = {"type": "Polygon", "coordinates": []}
    days = sorted(m["captured_at"].date() for m in media if m["captured_at"] is not None)
    today = now_utc().date()
    temporal = {
        "start": (days[0] if days else today).isoformat(),
        "end": (days[-1] if days else today).isoformat(),
    }
    taxa = sorted({o["scientificName"] for o in observations if o["scientificName"]})
    created = datetime.now(UTC).replace(microsecond=0)
    name = re.sub(r"[^a-z0-9._-]+", "-", title.lower()).strip("-") or "trapflow"
    resources: list[dict[str, Any]] = [
        {
            "name": table,
            "path": f"{table}.csv",
            "profile": "tabular-data-resource",
            "format": "csv",
            "mediatype": "text/csv",
            "encoding": "utf-8",
            "schema": CAMTRAP_DP_SCHEMA.format(table=table),
        }
        for table in ("deployments", "media", "observations")
    ]
    if rai_intervals:  # an extra resource: Camtrap DP allows resources of other names
        resources.append(
            {
                "name": "rai_intervals",
                "path": RAI_INTERVALS_FILE,
                "profile": "tabular-data-resource",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "description": (
                    "RAI (independent events per 100 trap-nights) per site, period and species "
                    "with a percentile bootstrap interval (trapflow marts.fct_rai_intervals)."
                ),
                "schema": RAI_INTERVALS_SCHEMA,
            }
        )
    package: dict[str, Any] = {
        "resources": resources,
        "profile": CAMTRAP_DP_PROFILE,
        "name": name,
        "id": ids.camtrap_package_id(name),
        "created": created.isoformat().replace("+00:00", "Z"),
        "title": title,
        "contributors": [{"title": contributor, "role": "contact"}],
        "licenses": [
            {"name": "CC0-1.0", "scope": "data"},
            {"name": "CC-BY-4.0", "scope": "media"},
        ],
        "project": {
            "title": title,
            "samplingDesign": "opportunistic",
            "captureMethod": ["activityDetection"],
            "individualAnimals": False,
            "observationLevel": ["media", "event"],
            "description": (
                "Exported by trapflow. Media-level observations: one per label per image "
                "(machine: the detectors and species classifier above their thresholds; human: "
                "review labels). Event-level: independent events (marts.fct_events)."
                + (
                    f" Coordinates of deployments with sensitive taxa are generalised to a "
                    f"{grid_km:g} km grid (coordinateUncertainty)."
                    if generalised
                    else ""
                )
            ),
        },
        "spatial": spatial,
        "temporal": temporal,
        "taxonomic": [{"scientificName": t} for t in taxa],
    }
    return package


__all__ = [
    "CAMTRAP_DP_PROFILE",
    "CAMTRAP_DP_SCHEMA",
    "DEPLOYMENT_FIELDS",
    "MEDIA_FIELDS",
    "OBSERVATION_FIELDS",
    "CamtrapResult",
    "export_camtrapdp",
]
