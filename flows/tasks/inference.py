"""Tasks that run the models."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.pipeline.discovery import SourceFile, chunked
from flows.pipeline.process import (
    BatchStats,
    batch_context,
    ensure_pipeline_models,
    flag_repeats,
    process_batches,
)
from flows.settings import Settings
from flows.store import Store
from flows.tasks._retry import retry_on_io
from models_ml.repeats import RepeatParams


@task(retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=retry_on_io, cache_policy=NO_CACHE)
def fetch_models(settings: Settings) -> Path:
    """Verified local copies of the configured models (pulled from the mirror if missing)."""
    return ensure_pipeline_models(settings)


#: Tag of the inference task: `prefect concurrency-limit create trapflow-inference 1` keeps two
#: runs (or two deployments) from oversubscribing the CPU with onnxruntime at the same time.
INFERENCE_TAG = "trapflow-inference"


@task(cache_policy=NO_CACHE, tags=[INFERENCE_TAG])
def detect_and_load(
    settings: Settings,
    store: Store,
    model_dir: Path,
    source_uri: str,
    run_id: str,
    files: list[SourceFile],
) -> BatchStats:
    """Hash, read EXIF, detect, classify and load the new files, one transaction per batch of
    ``batch_size`` (one pipeline: the next batch is decoded while this one is detected)."""
    logger = get_run_logger()
    ctx = batch_context(settings, model_dir, source_uri, run_id, store=store)
    batches = list(chunked(files, settings.batch_size))
    total = BatchStats()
    for number, stats in enumerate(process_batches(ctx, batches), start=1):
        total.add(stats)
        seconds = stats.read_s + stats.detect_s + stats.classify_s + stats.load_s
        logger.info(
            "batch %d/%d: %d images, %d duplicates, %d quarantined, %d boxes, %d labels "
            "(%.1f images/s)",
            number, len(batches), stats.images, stats.duplicates, stats.quarantined,
            stats.detections, stats.classifications, stats.images / seconds if seconds else 0.0,
        )  # fmt: skip
    return total


@task(cache_policy=NO_CACHE)
def mark_repeat_detections(settings: Settings, store: Store, run_id: str) -> int:
    """Repeat-detection elimination for the cameras this run touched (flags, never deletes)."""
    if not store.holds_history:  # the workers write Parquet; flags need the camera's history
        get_run_logger().info("lake mode: repeat detections are left to the marts builder")
        return 0
    params = RepeatParams(
        iou=settings.repeat_iou,
        min_occurrences=settings.repeat_min_occurrences,
        max_box_area=settings.repeat_max_box_area,
        min_confidence=settings.repeat_min_confidence,
    )
    flagged = flag_repeats(store.warehouse, run_id, params)
    get_run_logger().info("repeat detections: %d boxes flagged at the cameras of this run", flagged)
    return flagged
