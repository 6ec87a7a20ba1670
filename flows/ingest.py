"""The ``ingest`` flow: new trap images in a source -> detections in DuckDB -> daily marts."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.pipeline.models import model_ids
from flows.pipeline.process import BatchStats
from flows.settings import load_settings
from flows.store import ids, open_store
from flows.tasks.alerts import deliver_alerts, queue_alerts
from flows.tasks.dbt import build_marts
from flows.tasks.inference import detect_and_load, fetch_models, mark_repeat_detections
from flows.tasks.report import publish_run_report
from flows.tasks.storage import (
    close_run,
    list_new_media,
    load_deployments,
    open_run,
    record_outside_links,
    stat_named_media,
)


@dataclass
class RunSummary:
    run_id: str
    source_uri: str
    warehouse: str
    files_listed: int
    files_new: int
    other_files: int
    outside_root: int
    stats: BatchStats = field(default_factory=BatchStats)
    list_s: float = 0.0
    marts_s: float = 0.0
    duration_s: float = 0.0
    model_dir: str = ""
    models: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)  # named paths not found: why

    @property
    def images_per_s(self) -> float:
        return self.stats.images / self.duration_s if self.duration_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "images_per_s": self.images_per_s}


@flow(name="ingest", log_prints=False)
def ingest(
    source: str | None = None,
    warehouse: str | None = None,
    layout: str | None = None,
    build: bool | None = None,
    lake: str | None = None,
    lake_data_path: str | None = None,
    batch_size: int | None = None,
    detection_thresholds: dict[str, float] | None = None,
    full_listing: bool | None = None,
    paths: list[str] | None = None,
) -> RunSummary:
    """Poll the source once: list, pick what is new, detect, load, rebuild the marts.

    ``paths`` (``trapflow listen``): exactly these files under the source, never a listing;
    the ones not found are in ``RunSummary.missing``."""
    settings = load_settings(
        source=source, warehouse=warehouse, layout=layout, build_marts=build,
        batch_size=batch_size, detection_thresholds=detection_thresholds, lake=lake,
        lake_data_path=lake_data_path, full_listing=full_listing,
    )  # fmt: skip
    store = open_store(settings)  # the warehouse file or the lake, for the whole run
    logger = get_run_logger()
    started = time.perf_counter()
    run_id = ids.new_run_id()
    t0 = time.perf_counter()
    missing: dict[str, str] = {}
    if paths is None:
        listing, new_files = list_new_media(settings, store)
    else:
        listing, new_files, missing = stat_named_media(settings, store, paths)
    list_s = time.perf_counter() - t0
    open_run(store, run_id, listing.source_uri, flow_run.get_id(),
             datetime.now(UTC).replace(tzinfo=None))  # fmt: skip
    logger.info(
        "%s: %d media files, %d new or changed; warehouse %s",
        listing.source_uri, len(listing.media), len(new_files), settings.warehouse_path,
    )  # fmt: skip
    summary = RunSummary(
        run_id=run_id, source_uri=listing.source_uri, warehouse=str(settings.warehouse_path),
        files_listed=len(listing.media), files_new=len(new_files),
        other_files=listing.other_files, outside_root=len(listing.outside_root), list_s=list_s,
        missing=missing,
    )  # fmt: skip
    record_outside_links(store, run_id, listing)
    model_dir = fetch_models(settings)
    summary.model_dir = str(model_dir)
    summary.models = model_ids(settings)
    summary.stats.add(
        detect_and_load(settings, store, model_dir, listing.source_uri, run_id, new_files)
    )
    if summary.stats.images:
        mark_repeat_detections(settings, store, run_id)
    if settings.build_marts:
        changed = load_deployments(settings, store) or summary.stats.files > 0
        result = build_marts(settings, store, changed=changed)
        summary.marts_s = result.seconds if result else 0.0
    queue_alerts(settings, store, run_id)
    deliver_alerts(settings)  # also retries what earlier runs left pending
    summary.duration_s = time.perf_counter() - started
    close_run(store, run_id, _run_record(summary))
    publish_run_report(summary)
    logger.info(
        "done: %d images, %d boxes, %d quarantined in %.1f s (%.2f images/s)",
        summary.stats.images, summary.stats.detections, summary.stats.quarantined,
        summary.duration_s, summary.images_per_s,
    )  # fmt: skip
    return summary


def _run_record(summary: RunSummary) -> dict[str, Any]:
    s = summary.stats
    return {
        "finished_at": datetime.now(UTC).replace(tzinfo=None),
        "status": "completed",
        "files_listed": summary.files_listed,
        "files_new": summary.files_new,
        "images_processed": s.images,
        "duplicates": s.duplicates,
        "detections": s.detections,
        "quarantined": s.quarantined,
        "warnings": s.warnings,
        "model_versions": ", ".join(summary.models) or None,
        "duration_s": round(summary.duration_s, 3),
        "list_s": round(summary.list_s, 3),
        "read_s": round(s.read_s, 3),
        "detect_s": round(s.detect_s, 3),
        "load_s": round(s.load_s, 3),
        "marts_s": round(summary.marts_s, 3),
    }
