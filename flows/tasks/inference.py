"""Tasks that run the models."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows._discovery import SourceFile
from flows._models import ensure_models
from flows._process import BatchContext, BatchStats, load_ensemble, process_batch
from flows.settings import Settings
from flows.tasks._retry import retry_on_io


@task(retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=retry_on_io, cache_policy=NO_CACHE)
def fetch_models(settings: Settings) -> Path:
    """Verified local copies of the configured detectors (pulled from the mirror if missing)."""
    return ensure_models(settings, settings.model_names)


@task(cache_policy=NO_CACHE)
def detect_and_load(
    settings: Settings,
    model_dir: Path,
    source_uri: str,
    run_id: str,
    files: list[SourceFile],
    label: str,
) -> BatchStats:
    """Hash, read EXIF, detect and load one batch of files (one transaction)."""
    ensemble = load_ensemble(
        model_dir,
        settings.animal_model,
        settings.general_model,
        settings.intra_op_threads,
        settings.person_cue_model,
    )
    ctx = BatchContext(
        source_uri=source_uri,
        warehouse=settings.warehouse_path,
        run_id=run_id,
        layout=settings.layout,
        max_image_pixels=settings.max_image_pixels,
        inference_floor=settings.inference_floor,
        ensemble=ensemble,
    )
    stats = process_batch(ctx, files)
    seconds = stats.read_s + stats.detect_s + stats.load_s
    get_run_logger().info(
        "%s: %d images, %d duplicates, %d quarantined, %d boxes (%.1f images/s)",
        label, stats.images, stats.duplicates, stats.quarantined, stats.detections,
        stats.images / seconds if seconds else 0.0,
    )  # fmt: skip
    return stats
