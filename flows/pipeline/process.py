"""One batch of new files: read, hash, read EXIF, detect, and load, as plain functions.

Bad input never stops a batch: every file that cannot be used gets a quarantine row with a
reason and what to do, and the rest of the batch goes through.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
from PIL import Image

from flows.pipeline import video as _video
from flows.pipeline.discovery import SourceFile, read_file, sha256_hex, site_and_camera
from flows.pipeline.models import ModelsUnavailableError, ensure_models
from flows.settings import Settings
from flows.store import lake as _lake
from flows.store import warehouse as _warehouse
from models_ml import DetectorEnsemble, ImageRejected, decode_rgb, open_image, read_exif, registry
from models_ml._types import CATEGORY_IDS, Detection, ExifRecord, PreprocessedImage
from models_ml.classifier import SpeciesClassifier, load_classifier
from models_ml.geofence import NO_LIST, Geofence, fence
from models_ml.ocr import InfoBarReader
from models_ml.repeats import BoxRecord, RepeatParams, find_repeats

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)

#: How much lower the decode threads' CPU priority is than inference's (Linux nice steps).
DECODE_NICE = 10

#: What each image format is called in file names.
FORMAT_EXTENSIONS = {
    "JPEG": {"jpg", "jpeg", "jpe"},
    "PNG": {"png"},
    "TIFF": {"tif", "tiff"},
    "MPO": {"jpg", "jpeg"},  # multi-picture JPEG, written by some cameras
    "WEBP": {"webp"},
}


@dataclass
class BatchStats:
    files: int = 0
    images: int = 0
    duplicates: int = 0
    detections: int = 0
    quarantined: int = 0  # skipped files
    warnings: int = 0  # processed, with a recorded problem
    classifications: int = 0
    read_s: float = 0.0
    detect_s: float = 0.0
    classify_s: float = 0.0
    load_s: float = 0.0
    by_reason: dict[str, int] = field(default_factory=dict)

    def add(self, other: BatchStats) -> None:
        for name in (
            "files", "images", "duplicates", "detections", "quarantined", "warnings",
            "classifications",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("read_s", "detect_s", "classify_s", "load_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, n in other.by_reason.items():
            self.by_reason[reason] = self.by_reason.get(reason, 0) + n


@dataclass(frozen=True)
class BatchContext:
    """Everything a batch needs besides its files."""

    source_uri: str
    warehouse: Path
    run_id: str
    layout: str | None
    max_image_pixels: int
    inference_floor: float
    ensemble: DetectorEnsemble
    classifier: SpeciesClassifier | None = None  # species stage; None: skipped
    geofence: Geofence | None = None
    top_k: int = 3
    classify_min_confidence: float = 0.2
    infer_batch: int = 4  # images per detector call
    inference_workers: int = 1  # detector calls running at once (threads; see inference_layout)
    prefetch: int = 8  # decoded images waiting for the detectors, at most
    info_bar: InfoBarReader | None = None  # OCR of the printed time when EXIF has none
    ocr_dayfirst: bool | None = None
    lake: str | None = None  # scale-out: raw rows go to Parquet files here, not the warehouse
    video_sample_rate: float = 1.0  # frames per second sampled from clips (plus the first)
    video_max_frames: int | None = None  # sampled frames per clip, at most


def _user_models_key(settings: Settings) -> str:
    # heads from `trapflow train` (<model_dir>/trained/registry.toml), then trapflow.toml's
    from models_ml.training import trained_models

    models = {**trained_models(settings.model_path), **settings.models}
    return json.dumps(models, sort_keys=True, default=str)


@lru_cache(maxsize=8)
def _manifest(user_models: str) -> dict[str, registry.ModelSpec]:
    return registry.load_manifest(user_models=json.loads(user_models) if user_models else None)


def configured_manifest(settings: Settings) -> dict[str, registry.ModelSpec]:
    """The registry plus the models the user registered under ``[models]`` in trapflow.toml."""
    return _manifest(_user_models_key(settings))


def ensure_pipeline_models(settings: Settings) -> Path:
    """The model folder, with every configured model verified (registry models are pulled).

    A user-registered model stays where it is; its SHA-256 is checked there.
    """
    manifest = configured_manifest(settings)
    names = list(settings.model_names)
    unknown = [n for n in names if n not in manifest]
    if unknown:
        raise ModelsUnavailableError(
            f"model(s) {', '.join(unknown)} are not in the registry ({', '.join(sorted(manifest))})"
            "; register your own under [models.<name>] in trapflow.toml (file, sha256, decoder)"
        )
    for name in list(names):
        embedder = manifest[name].embedder
        if embedder and embedder not in names:
            names.append(embedder)
    builtin = [n for n in names if manifest[n].location is None]
    model_dir = ensure_models(settings, builtin) if builtin else settings.model_path
    for name in names:
        spec = manifest[name]
        if spec.location is None:
            continue
        result = registry.verify(spec, spec.files_dir(model_dir))
        if not result.ok:
            raise ModelsUnavailableError(
                f"your model '{name}' is not usable: {result.detail} (in {spec.location}). Check "
                f"file and sha256 under [models.{name}] in trapflow.toml "
                f"(sha256sum {Path(spec.location) / spec.file})"
            )
    return model_dir


def inference_layout(workers: int = 0, intra_op_threads: int = 0) -> tuple[int, int]:
    """(inference threads, onnxruntime threads per session) for this machine; 0 means auto.

    On a CPU, several model calls side by side, each on fewer threads, keep the cores busier
    than one call spread over all of them (onnxruntime's threads wait for each other between
    operators): auto is 2 inference threads up to 7 cores, cores / 4 above, and the cores
    shared out between them. One core gets one thread.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    if not workers:
        workers = 1 if cores < 2 else max(2, cores // 4)
    return workers, intra_op_threads or max(1, cores // workers)


@lru_cache(maxsize=4)
def load_ensemble(
    model_dir: Path,
    animal_model: str,
    general_model: str,
    intra_op_threads: int,
    person_cue_model: str | None = None,
    general_categories: tuple[str, ...] = ("person", "vehicle", "animal"),
    user_models: str = "",
) -> DetectorEnsemble:
    """The detectors of this process: onnxruntime sessions are created once, then reused."""
    return DetectorEnsemble.from_models_dir(
        model_dir,
        _manifest(user_models),
        animal_model=animal_model,
        general_model=general_model or None,
        intra_op_threads=intra_op_threads or None,
        person_cue_model=person_cue_model or None,
        general_categories=general_categories,
    )


@lru_cache(maxsize=4)
def load_species_classifier(
    model_dir: Path, species_model: str, intra_op_threads: int, user_models: str = ""
) -> SpeciesClassifier:
    """The species stage of this process (sessions created once)."""
    manifest = _manifest(user_models)
    return load_classifier(
        manifest[species_model], manifest, model_dir, intra_op_threads=intra_op_threads or None
    )


@lru_cache(maxsize=2)
def load_info_bar_reader(model_dir: Path, model: str) -> InfoBarReader:
    """The info-bar OCR of this process (one thread: it runs beside the detectors)."""
    return InfoBarReader.from_models_dir(model_dir, model=model, intra_op_threads=1)


@lru_cache(maxsize=4)
def _load_geofence(path: Path, mtime_ns: int) -> Geofence:
    return Geofence.from_file(path)


def batch_context(
    settings: Settings, model_dir: Path, source_uri: str, run_id: str
) -> BatchContext:
    """The :class:`BatchContext` for ``settings`` (models loaded once per process)."""
    user = _user_models_key(settings)
    workers, threads = inference_layout(settings.inference_workers, settings.intra_op_threads)
    ensemble = load_ensemble(
        model_dir,
        settings.animal_model,
        settings.general_model,
        threads,
        settings.person_cue_model,
        tuple(settings.general_categories),
        user,
    )
    classifier = None
    if settings.species_model:
        classifier = load_species_classifier(model_dir, settings.species_model, threads, user)
    geofence = None
    if settings.geofence_file is not None:
        path = settings.geofence_file.expanduser().absolute()
        geofence = _load_geofence(path, path.stat().st_mtime_ns if path.exists() else 0)
    info_bar = load_info_bar_reader(model_dir, settings.ocr_model) if settings.ocr_model else None
    return BatchContext(
        info_bar=info_bar,
        ocr_dayfirst=settings.ocr_dayfirst,
        lake=settings.lake,
        video_sample_rate=settings.video_sample_rate,
        video_max_frames=settings.video_max_frames,
        source_uri=source_uri,
        warehouse=settings.warehouse_path,
        run_id=run_id,
        layout=settings.layout,
        max_image_pixels=settings.max_image_pixels,
        inference_floor=settings.inference_floor,
        ensemble=ensemble,
        classifier=classifier,
        geofence=geofence,
        top_k=settings.classification_top_k,
        classify_min_confidence=settings.classification_min_confidence,
        inference_workers=workers,
    )


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _quarantine_row(
    ctx: BatchContext,
    file: SourceFile,
    media_id: str | None,
    reason: str,
    error: str,
    action: str,
) -> dict[str, Any]:
    key = "\x1f".join([ctx.source_uri, file.path, media_id or "", reason])
    return {
        "quarantine_id": hashlib.md5(key.encode(), usedforsecurity=False).hexdigest(),
        "source_uri": ctx.source_uri,
        "file_path": file.path,
        "media_id": media_id,
        "file_size": file.size,
        "reason": reason,
        "error": error,
        "action": action,
        "run_id": ctx.run_id,
        "quarantined_at": _now(),
    }


def _file_row(
    ctx: BatchContext, file: SourceFile, media_id: str | None, status: str
) -> dict[str, Any]:
    return {
        "source_uri": ctx.source_uri,
        "file_path": file.path,
        "file_size": file.size,
        "file_modified_at": file.modified_at,
        "media_id": media_id,
        "status": status,
        "run_id": ctx.run_id,
        "seen_at": _now(),
    }


@dataclass
class _Prepared:
    """A new image, opened and decoded, ready for the detectors."""

    file: SourceFile
    media_id: str
    image_format: str
    exif: ExifRecord
    rgb: Image.Image | None = None
    pre: tuple[PreprocessedImage, ...] = ()  # the detectors' inputs, made ahead
    rejected: ImageRejected | None = None
    exif_error: str | None = None
    ocr_at: datetime | None = None  # the time printed on the photo, when EXIF has none
    ocr_warning: str | None = None


def _prepare(ctx: BatchContext, file: SourceFile, data: bytes, media_id: str) -> _Prepared:
    try:
        img = open_image(data, max_pixels=ctx.max_image_pixels)
    except ImageRejected as exc:
        return _Prepared(file, media_id, "", ExifRecord(), rejected=exc)
    fmt = img.format or ""
    exif_error = None
    try:
        exif = read_exif(data)
    except Exception as exc:  # a header Pillow opened but whose EXIF it cannot parse
        exif, exif_error = (
            ExifRecord(width=img.width, height=img.height),
            f"{type(exc).__name__}: {exc}",
        )
    try:
        rgb = decode_rgb(img, draft_size=ctx.ensemble.draft_size)
    except ImageRejected as exc:
        return _Prepared(file, media_id, fmt, exif, rejected=exc, exif_error=exif_error)
    pre = ctx.ensemble.preprocess(rgb)
    ocr_at, ocr_warning = None, None
    if exif.captured_at is None and ctx.info_bar is not None:
        try:
            reading = ctx.info_bar.read(rgb, dayfirst=ctx.ocr_dayfirst)
            ocr_at, ocr_warning = reading.captured_at, "; ".join(reading.warnings) or None
        except Exception as exc:  # OCR must never stop a run
            ocr_warning = f"info-bar OCR failed: {type(exc).__name__}: {exc}"
    return _Prepared(
        file, media_id, fmt, exif, rgb=rgb, pre=pre, exif_error=exif_error,
        ocr_at=ocr_at, ocr_warning=ocr_warning,
    )  # fmt: skip


def _local(utc: datetime | None) -> datetime | None:
    """A UTC file time as this machine's wall time: cameras (and FAT cards) keep local time."""
    return utc.replace(tzinfo=UTC).astimezone().replace(tzinfo=None) if utc else None


def _media_row(ctx: BatchContext, p: _Prepared) -> dict[str, Any]:
    exif = p.exif
    site, camera = site_and_camera(p.file.path, ctx.layout)
    name = p.file.path.rsplit("/", 1)[-1]
    captured_at: datetime | None
    if exif.captured_at:
        captured_at, source, tag = exif.captured_at, "exif", exif.timestamp_tag
    elif p.ocr_at:
        captured_at, source, tag = p.ocr_at, "ocr", "info_bar"
    else:
        captured_at, source, tag = _local(p.file.modified_at), "mtime", None
    return {
        "media_id": p.media_id,
        "source_uri": ctx.source_uri,
        "file_path": p.file.path,
        "file_name": name,
        "file_extension": name.rsplit(".", 1)[-1].lower() if "." in name else "",
        "file_size": p.file.size,
        "file_modified_at": p.file.modified_at,
        "media_type": "image",
        "image_format": p.image_format,
        "site_id": site,
        "camera_id": camera,
        "captured_at": captured_at,
        "utc_offset": exif.utc_offset,
        "timestamp_source": source,
        "timestamp_tag": tag,
        "latitude": exif.latitude,
        "longitude": exif.longitude,
        "altitude": exif.altitude,
        "camera_make": exif.make,
        "camera_model": exif.model,
        "camera_serial": exif.serial,
        "width": exif.width,
        "height": exif.height,
        "orientation": exif.orientation,
        "exif_warnings": "; ".join(filter(None, [*exif.warnings, p.ocr_warning])) or None,
        "run_id": ctx.run_id,
        "ingested_at": _now(),
    }


def _detection_rows(
    ctx: BatchContext,
    media_id: str,
    dets: list[Detection],
    frame_number: int | None = None,
    frame_time_s: float | None = None,
) -> list[dict[str, Any]]:
    rows = []
    for index, det in enumerate(dets):
        name, _, version = det.model.partition("@")
        key = f"{media_id}\x1f{det.model}\x1f{index}"
        if frame_number is not None:
            key = f"{media_id}\x1f{det.model}\x1f{frame_number}\x1f{index}"
        rows.append(
            {
                "detection_id": hashlib.md5(key.encode(), usedforsecurity=False).hexdigest(),
                "media_id": media_id,
                "model_name": name,
                "model_version": version,
                "category": det.category,
                "category_id": CATEGORY_IDS[det.category],
                "label": det.label,
                "confidence": round(float(det.confidence), 6),
                "bbox_x": det.bbox.x,
                "bbox_y": det.bbox.y,
                "bbox_w": det.bbox.w,
                "bbox_h": det.bbox.h,
                "frame_number": frame_number,
                "frame_time_s": frame_time_s,
                "run_id": ctx.run_id,
                "detected_at": _now(),
            }
        )
    return rows


def _exif_problems(p: _Prepared) -> str:
    """EXIF that is there but wrong. An image with no EXIF at all is normal, not a problem."""
    problems = [w for w in p.exif.warnings if not w.startswith("no EXIF")]
    return "; ".join(filter(None, [p.exif_error, *problems]))


def _extension_warning(p: _Prepared) -> str | None:
    ext = p.file.path.rsplit(".", 1)[-1].lower()
    expected = FORMAT_EXTENSIONS.get(p.image_format)
    if expected is None or ext in expected:
        return None
    return (
        f"the file is named .{ext} but holds a {p.image_format} image; it was processed as "
        f"{p.image_format}. Rename it to .{sorted(expected)[0]} so other tools read it too."
    )


class _Batch:
    """One batch on its way through the pipeline: what it read, what it found, what it loads."""

    def __init__(self, ctx: BatchContext, files: list[SourceFile]) -> None:
        self.ctx = ctx
        self.stats = BatchStats(files=len(files))
        self.media: list[dict[str, Any]] = []
        self.detections: list[dict[str, Any]] = []
        self.classifications: list[dict[str, Any]] = []
        self.quarantine: list[dict[str, Any]] = []
        self.file_rows: list[dict[str, Any]] = []
        self.data: dict[str, tuple[SourceFile, bytes]] = {}  # new images' bytes, until decoded
        self.new_ids: list[str] = []
        self.clips: dict[str, SourceFile] = {}
        self.new_clips: list[str] = []

    def add_media(
        self,
        media: dict[str, Any],
        detections: list[dict[str, Any]],
        classifications: list[dict[str, Any]],
    ) -> None:
        """One ingested image or clip: its media row, boxes and species labels."""
        self.media.append(media)
        self.detections.extend(detections)
        self.classifications.extend(classifications)
        self.stats.images += 1
        self.stats.detections += len(detections)

    def quarantine_file(
        self, file: SourceFile, media_id: str | None, reason: str, error: str, action: str
    ) -> None:
        self.quarantine.append(_quarantine_row(self.ctx, file, media_id, reason, error, action))
        self.stats.by_reason[reason] = self.stats.by_reason.get(reason, 0) + 1
        if action == "skipped":
            self.stats.quarantined += 1
        else:
            self.stats.warnings += 1


def _intake(ctx: BatchContext, files: list[SourceFile], claimed: set[str]) -> _Batch:
    """Read and hash every file (identity is the SHA-256 of the bytes) and keep what is new:
    not in the warehouse (or lake), and not ``claimed`` by an earlier batch of this run."""
    t0 = time.perf_counter()
    b = _Batch(ctx, files)
    contents: dict[str, tuple[SourceFile, bytes]] = {}
    hashed: list[tuple[SourceFile, str]] = []
    for file in files:
        if _video.is_video(file.path):
            # new videos: hashed streaming, never held in memory
            _hash_clip(ctx, file, b.clips, hashed, b.quarantine_file, b.file_rows)
            continue
        try:
            data = read_file(ctx.source_uri, file.path)
        except OSError as exc:
            b.quarantine_file(
                file,
                None,
                "unreadable",
                f"could not read the file ({exc}); check permissions and the storage, "
                "it will be tried again on the next run",
                "skipped",
            )
            continue
        if not data:
            b.quarantine_file(
                file,
                None,
                "empty_file",
                "the file is 0 bytes: the copy from the card failed or was "
                "interrupted; copy it again from the card",
                "skipped",
            )
            b.file_rows.append(_file_row(ctx, file, None, "quarantined"))
            continue
        media_id = sha256_hex(data)
        hashed.append((file, media_id))
        contents.setdefault(media_id, (file, data))

    if ctx.lake:
        known = _lake.known_media(ctx.lake, [*contents, *b.clips])
    else:
        with _warehouse.attached(ctx.warehouse) as con:
            known = _warehouse.known_media(con, [*contents, *b.clips])
    known |= claimed
    b.new_ids = [m for m in contents if m not in known]
    b.new_clips = [m for m in b.clips if m not in known and m not in contents]
    claimed.update(b.new_ids)
    claimed.update(b.new_clips)
    b.data = {m: contents[m] for m in b.new_ids}
    for file, media_id in hashed:
        owner = contents[media_id][0] if media_id in contents else b.clips[media_id]
        first = owner is file and (media_id in b.new_ids or media_id in b.new_clips)
        if not first:
            b.stats.duplicates += 1
            b.file_rows.append(_file_row(ctx, file, media_id, "duplicate"))
    b.stats.read_s += time.perf_counter() - t0
    return b


def _load(b: _Batch) -> BatchStats:
    """Write one batch in one transaction (or as one set of Parquet files in lake mode)."""
    ctx = b.ctx
    t3 = time.perf_counter()
    if ctx.lake:
        _lake.load_batch(
            ctx.lake, f"{ctx.run_id}-{uuid.uuid4().hex[:12]}", media=b.media,
            detections=b.detections, quarantine=b.quarantine, media_files=b.file_rows,
            classifications=b.classifications,
        )  # fmt: skip
    else:
        with _warehouse.attached(ctx.warehouse) as con:
            _warehouse.load_batch(
                con, media=b.media, detections=b.detections, quarantine=b.quarantine,
                files=b.file_rows, classifications=b.classifications,
            )  # fmt: skip
    b.stats.classifications += len(b.classifications)
    b.stats.load_s += time.perf_counter() - t3
    return b.stats


@dataclass(frozen=True)
class _EndOfBatch:
    batch: _Batch


def process_batches(
    ctx: BatchContext,
    batches: Iterable[list[SourceFile]],
    *,
    on_image: Callable[[int], None] | None = None,
) -> Iterator[BatchStats]:
    """Read, hash, check EXIF, detect and load batches of files; yields each batch's stats
    once it is loaded.

    Each batch is its own transaction, loaded in order (a crash loses at most the batches not
    yet loaded, which the next run picks up). The batches flow through one pipeline: the next
    batch is read and hashed (one thread) and its images decoded (the decode threads, a bounded
    prefetch queue) while this one is detected, and a batch is written (one thread) while the
    next one is detected, so the detectors never wait for a batch boundary. Detection runs as
    jobs of ``infer_batch`` photos (or one clip) on ``inference_workers`` threads; jobs are
    taken back in the order they were given out, so rows and progress come in file order.
    """
    _keep_freed_memory()
    claimed: set[str] = set()  # new media of earlier batches of this run, not yet loaded
    it = iter(batches)
    decoders = max(1, min(2, os.cpu_count() or 1))
    workers = max(1, ctx.inference_workers)
    with (
        ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="intake", initializer=_yield_to_inference
        ) as intake_pool,
        ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="load", initializer=_yield_to_inference
        ) as load_pool,
        ThreadPoolExecutor(
            max_workers=decoders, thread_name_prefix="decode", initializer=_yield_to_inference
        ) as decode_pool,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="infer") as infer_pool,
    ):
        # at most one batch read ahead: two batches' bytes in memory, never the whole card
        first = next(it, None)
        upcoming = intake_pool.submit(_intake, ctx, first, claimed) if first is not None else None

        def stream() -> Iterator[tuple[_Batch, str] | _EndOfBatch]:
            nonlocal upcoming
            while upcoming is not None:
                b = upcoming.result()
                files = next(it, None)
                upcoming = (
                    intake_pool.submit(_intake, ctx, files, claimed) if files is not None else None
                )
                for media_id in b.new_ids:
                    yield b, media_id
                yield _EndOfBatch(b)

        def prepare(
            item: tuple[_Batch, str] | _EndOfBatch,
        ) -> tuple[_Batch, _Prepared] | _EndOfBatch:
            if isinstance(item, _EndOfBatch):
                return item
            b, media_id = item
            file, data = b.data.pop(media_id)  # the bytes are dropped once decoded
            return b, _prepare(ctx, file, data, media_id)

        loading: Future[BatchStats] | None = None
        ready: list[_Prepared] = []  # always of one batch
        jobs: deque[_Job] = deque()  # submitted to the inference threads, retired in order

        def submit(b: _Batch) -> None:
            if ready:
                jobs.append(_Job(b, infer_pool.submit(_infer, ctx, list(ready))))
                ready.clear()

        def retire(keep: int) -> Iterator[BatchStats]:
            """Take finished jobs off the front, in order, until at most ``keep`` are in flight
            (waiting for the oldest); a batch whose jobs are all retired goes to the load."""
            nonlocal loading
            while jobs:
                job = jobs[0]
                running = job.work is not None and not job.work.done()
                if running and sum(j.work is not None for j in jobs) <= keep:
                    return
                jobs.popleft()
                if job.work is None:  # the end of a batch
                    if loading is not None:
                        yield loading.result()  # in order; a failed load stops the run here
                    loading = load_pool.submit(_load, job.batch)
                    continue
                for found in job.work.result():
                    found.accept(ctx, job.batch)
                    if on_image:
                        on_image(1)

        prepared = bounded_map(
            decode_pool, prepare, stream(), depth=max(ctx.prefetch, ctx.infer_batch)
        )
        while True:
            t1 = time.perf_counter()
            item = next(prepared, None)
            waited = time.perf_counter() - t1  # decoding not hidden behind inference
            if item is None:
                break
            if isinstance(item, _EndOfBatch):
                b = item.batch
                b.stats.read_s += waited
                submit(b)
                for media_id in b.new_clips:
                    work = infer_pool.submit(_infer_clip, ctx, b.clips[media_id], media_id)
                    jobs.append(_Job(b, work))
                jobs.append(_Job(b, None))
                yield from retire(keep=workers)
                continue
            b, p = item
            b.stats.read_s += waited
            if p.rejected is not None or p.rgb is None:
                reason = p.rejected.reason if p.rejected else "corrupt"
                b.quarantine_file(p.file, p.media_id, reason, str(p.rejected), "skipped")
                b.file_rows.append(_file_row(ctx, p.file, p.media_id, "quarantined"))
                continue
            ready.append(p)
            # a small batch is shared out between the inference threads (latency of a trickle)
            if len(ready) >= max(1, min(ctx.infer_batch, -(-len(b.new_ids) // workers))):
                submit(b)
                yield from retire(keep=workers)
        yield from retire(keep=0)
        if loading is not None:
            yield loading.result()


@dataclass
class _Job:
    """Work on the inference threads for one batch; ``work`` None marks the batch's end."""

    batch: _Batch
    work: Future[list[_Found | _ClipFound]] | None


def process_batch(
    ctx: BatchContext,
    files: list[SourceFile],
    *,
    on_image: Callable[[int], None] | None = None,
) -> BatchStats:
    """Read, hash, check EXIF, detect and load one batch in one transaction."""
    stats = BatchStats()
    for done in process_batches(ctx, [files], on_image=on_image):
        stats.add(done)
    return stats


def _infer(ctx: BatchContext, images: list[_Prepared]) -> list[_Found | _ClipFound]:
    """Detect (one call per model) and classify some images of one batch, on an inference
    thread, and make their rows; the pixels are freed here."""
    t2 = time.perf_counter()
    found = ctx.ensemble.detect_batch(
        [p.rgb for p in images if p.rgb is not None],
        conf_floor=ctx.inference_floor,
        preprocessed=[p.pre for p in images],
    )
    detect_s = (time.perf_counter() - t2) / len(images)
    out: list[_Found | _ClipFound] = []
    for p, dets in zip(images, found, strict=True):
        row = _media_row(ctx, p)
        det_rows = _detection_rows(ctx, p.media_id, dets)
        classifications: list[dict[str, Any]] = []
        t4 = time.perf_counter()
        if ctx.classifier is not None and p.rgb is not None:
            classifications = _classify(ctx, p.rgb, row["site_id"], dets, det_rows)
        p.rgb, p.pre = None, ()  # free the pixels as soon as possible
        out.append(_Found(p, row, det_rows, classifications, detect_s, time.perf_counter() - t4))
    return out


@dataclass
class _Found:
    """One detected image's rows, made on an inference thread; :meth:`accept` adds them to
    its batch (on the thread that owns the batch)."""

    image: _Prepared
    media: dict[str, Any]
    detections: list[dict[str, Any]]
    classifications: list[dict[str, Any]]
    detect_s: float
    classify_s: float

    def accept(self, ctx: BatchContext, b: _Batch) -> None:
        p = self.image
        b.add_media(self.media, self.detections, self.classifications)
        b.stats.detect_s += self.detect_s
        b.stats.classify_s += self.classify_s
        b.file_rows.append(_file_row(ctx, p.file, p.media_id, "ingested"))
        problems = _exif_problems(p)
        if problems:
            b.quarantine_file(
                p.file,
                p.media_id,
                "exif_unreadable" if p.exif_error else "exif_invalid",
                f"EXIF is damaged or implausible ({problems}); the image was processed "
                f"and its time taken from the {self.media['timestamp_source']}. Check the "
                "camera's clock and settings.",
                "processed",
            )
        warning = _extension_warning(p)
        if warning:
            b.quarantine_file(p.file, p.media_id, "wrong_extension", warning, "processed")


def _infer_clip(ctx: BatchContext, file: SourceFile, media_id: str) -> list[_Found | _ClipFound]:
    """A clip on an inference thread: sampled frames through the detectors, one in memory."""
    t5 = time.perf_counter()
    rows = _process_clip(ctx, file, media_id)
    return [_ClipFound(file, media_id, rows, time.perf_counter() - t5)]


@dataclass
class _ClipFound:
    """One clip's rows (or why it was skipped), made on an inference thread."""

    file: SourceFile
    media_id: str
    rows: _ClipRows
    detect_s: float

    def accept(self, ctx: BatchContext, b: _Batch) -> None:
        out = self.rows
        b.stats.detect_s += self.detect_s
        for q in out.quarantine:
            b.quarantine_file(self.file, self.media_id, *q)
        b.file_rows.append(
            _file_row(ctx, self.file, self.media_id, "ingested" if out.media else "quarantined")
        )
        if out.media:
            b.add_media(out.media, out.detections, out.classifications)


@lru_cache(maxsize=1)
def _keep_freed_memory() -> None:
    """Let glibc's malloc keep freed memory for the next image instead of returning it.

    Every photo allocates and frees the same few large buffers (decoded pixels, model inputs,
    batches). With glibc's defaults the largest are mapped and unmapped each time and freed
    memory above 128 KiB is trimmed, so each image page-faults them in again (tens of
    thousands of faults per 100 photos). Allocations up to 32 MiB now come from the heap
    and up to 256 MiB of free heap is kept. Once per process; glibc only.
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 * 1024 * 1024)  # M_TRIM_THRESHOLD


def _yield_to_inference() -> None:
    """Run this helper thread (intake, decode, load) at a lower CPU priority than inference.

    They only have to stay ahead of the detectors (bounded queues); at equal priority they take
    cores from onnxruntime's threads mid-run and every model call waits for its slowest
    thread. Linux schedules threads as tasks, so this nices only this thread (and the threads
    it starts, such as DuckDB's for the connection it opens).
    """
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), DECODE_NICE)


def bounded_map(
    pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T], depth: int
) -> Iterator[R]:
    """``pool.map`` in order, with at most ``depth`` results computed ahead of the consumer."""
    it = iter(items)
    pending: deque[Future[R]] = deque()
    for item in it:
        pending.append(pool.submit(fn, item))
        if len(pending) >= depth:
            break
    while pending:
        fut = pending.popleft()
        for item in it:
            pending.append(pool.submit(fn, item))
            break
        yield fut.result()


def _classify(
    ctx: BatchContext,
    rgb: Image.Image,
    site: str | None,
    dets: list[Detection],
    det_rows: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Top-k species labels (geofenced) for the animal boxes of the animal detector."""
    if ctx.classifier is None:
        return []
    chosen = [
        (det, row)
        for det, row in zip(dets, det_rows, strict=True)
        if det.category == "animal"
        and det.model == ctx.ensemble.animal_model_id
        and det.confidence >= ctx.classify_min_confidence
    ]
    if not chosen:
        return []
    preds = ctx.classifier.classify(rgb, [d.bbox for d, _ in chosen], top_k=ctx.top_k)
    allowed = ctx.geofence.allowed(site) if ctx.geofence is not None else None
    name, _, version = ctx.classifier.model_id.partition("@")
    now = _now()
    rows = []
    for (_, det_row), ranked in zip(chosen, preds, strict=True):
        for f in fence(ranked, allowed):
            key = f"{det_row['detection_id']}\x1f{ctx.classifier.model_id}\x1f{f.rank}"
            rows.append(
                {
                    "classification_id": hashlib.md5(
                        key.encode(), usedforsecurity=False
                    ).hexdigest(),
                    "detection_id": det_row["detection_id"],
                    "media_id": det_row["media_id"],
                    "model_name": name,
                    "model_version": version,
                    "label": f.label,
                    "probability": round(f.probability, 6),
                    "rank": f.rank,
                    "geofence_status": f.geofence_status if allowed is not None else NO_LIST,
                    "run_id": ctx.run_id,
                    "classified_at": now,
                }
            )
    return rows


def flag_repeats(warehouse: Path, run_id: str, params: RepeatParams) -> int:
    """Repeat-detection elimination over the warehouse, for the cameras this run touched.

    Every box of those cameras (all runs) is regrouped per (site, camera, model); boxes of
    groups that recur in ``params.min_occurrences`` images get a ``repeat_detection`` row in
    ``raw.detection_flags`` (stale ones are removed). Idempotent; returns the flags now set.
    """
    sql = """
        with cams as (
            select distinct coalesce(site_id, '') as site, coalesce(camera_id, '') as cam
            from raw.media where run_id = ?
        )
        select d.detection_id, d.media_id, d.bbox_x, d.bbox_y, d.bbox_w, d.bbox_h,
               d.confidence, d.model_name, cams.site, cams.cam
        from raw.detections d
        join raw.media m using (media_id)
        join cams on coalesce(m.site_id, '') = cams.site and coalesce(m.camera_id, '') = cams.cam
    """
    with _warehouse.connect(warehouse) as con:
        rows = con.execute(sql, [run_id]).fetchall()
        groups: dict[tuple[str, str, str], list[BoxRecord]] = {}
        for det_id, media_id, x, y, w, h, conf, model, site, cam in rows:
            groups.setdefault((site, cam, model), []).append(
                BoxRecord(det_id, media_id, x, y, w, h, conf)
            )
        flags = []
        for (site, cam, model), boxes in sorted(groups.items()):
            flags.extend(find_repeats(boxes, params, key=f"{site}\x1f{cam}\x1f{model}"))
        now = _now()
        new = [
            {
                "detection_id": f.detection_id,
                "flag": "repeat_detection",
                "cluster_id": f.cluster_id,
                "occurrences": f.occurrences,
                "detail": f.detail,
                "run_id": run_id,
                "flagged_at": now,
            }
            for f in flags
        ]
        con.execute("begin transaction")
        try:
            con.register("_scope", _ids([r[0] for r in rows]))
            con.register("_keep", _ids([f.detection_id for f in flags]))
            con.execute(
                "delete from raw.detection_flags where flag = 'repeat_detection' "
                "and detection_id in (select detection_id from _scope) "
                "and detection_id not in (select detection_id from _keep)"
            ).fetchall()
            if new:
                con.register("_flags", _warehouse._table(new, con, "detection_flags"))
                con.execute(
                    "insert or replace into raw.detection_flags by name select * from _flags"
                ).fetchall()
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    return len(new)


def _ids(values: list[str]) -> pa.Table:
    return pa.table({"detection_id": pa.array(values, pa.string())})


def _hash_clip(
    ctx: BatchContext,
    file: SourceFile,
    clips: dict[str, SourceFile],
    hashed: list[tuple[SourceFile, str]],
    quarantine_file: Callable[[SourceFile, str | None, str, str, str], None],
    file_rows: list[dict[str, Any]],
) -> None:
    """SHA-256 of a clip, read in chunks (a 2 GB clip is never held in memory)."""
    try:
        media_id, size = _video.sha256_stream(ctx.source_uri, file.path)
    except OSError as exc:
        quarantine_file(
            file, None, "unreadable",
            f"could not read the file ({exc}); check permissions and the storage, "
            "it will be tried again on the next run", "skipped",
        )  # fmt: skip
        return
    if size == 0:
        quarantine_file(
            file, None, "empty_file",
            "the file is 0 bytes: the copy from the card failed or was interrupted; copy it "
            "again from the card", "skipped",
        )  # fmt: skip
        file_rows.append(_file_row(ctx, file, None, "quarantined"))
        return
    hashed.append((file, media_id))
    clips.setdefault(media_id, file)


@dataclass
class _ClipRows:
    media: dict[str, Any] | None = None
    detections: list[dict[str, Any]] = field(default_factory=list)
    classifications: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[tuple[str, str, str]] = field(default_factory=list)  # reason, error, action


def _process_clip(ctx: BatchContext, file: SourceFile, media_id: str) -> _ClipRows:
    """Rows for one clip: media (media_type 'video'), per-frame boxes, species, problems."""
    from models_ml.video import probe

    out = _ClipRows()
    site, _ = site_and_camera(file.path, ctx.layout)
    try:
        with _video.open_file(ctx.source_uri, file.path) as src:
            info = probe(src)
            if not isinstance(src, str):
                src.seek(0)

            def on_frame(frame: Any, dets: list[Detection]) -> None:
                rows = _detection_rows(ctx, media_id, dets, frame.frame_number, frame.time_s)
                out.detections.extend(rows)
                if ctx.classifier is not None:
                    out.classifications.extend(_classify(ctx, frame.image, site, dets, rows))

            result = _video.analyse_clip(
                src, info, ctx.ensemble, ctx.inference_floor, rate=ctx.video_sample_rate,
                max_frames=ctx.video_max_frames, on_frame=on_frame,
            )  # fmt: skip
    except _video.VideoError as exc:
        out.quarantine.append((exc.reason, f"{exc}", "skipped"))
        out.detections, out.classifications = [], []
        return out
    except OSError as exc:
        out.quarantine.append(
            ("unreadable", f"could not read the clip ({exc}); it will be tried again", "skipped")
        )
        out.detections, out.classifications = [], []
        return out
    if result.error is not None:
        out.quarantine.append(
            (result.error.reason, f"{result.error} (the frames before were processed)",
             "processed")
        )  # fmt: skip
    out.media = _clip_media_row(ctx, file, media_id, info, len(result.frames))
    return out


def _clip_media_row(
    ctx: BatchContext, file: SourceFile, media_id: str, info: Any, frames_sampled: int
) -> dict[str, Any]:
    site, camera = site_and_camera(file.path, ctx.layout)
    name = file.path.rsplit("/", 1)[-1]
    created = info.created_at
    utc_offset = None
    if created is not None:
        source, tag = "container", info.created_tag
        if created.tzinfo is not None:  # QuickTime keeps UTC: shown as this machine's time
            captured_at = _local(created.astimezone(UTC).replace(tzinfo=None))
        else:
            captured_at = created
    else:
        captured_at, source, tag = _local(file.modified_at), "mtime", None
    return {
        "media_id": media_id,
        "source_uri": ctx.source_uri,
        "file_path": file.path,
        "file_name": name,
        "file_extension": name.rsplit(".", 1)[-1].lower() if "." in name else "",
        "file_size": file.size,
        "file_modified_at": file.modified_at,
        "media_type": "video",
        "image_format": info.codec.upper(),
        "site_id": site,
        "camera_id": camera,
        "captured_at": captured_at,
        "utc_offset": utc_offset,
        "timestamp_source": source,
        "timestamp_tag": tag,
        "camera_make": info.tags.get("make") or info.tags.get("com.apple.quicktime.make"),
        "camera_model": info.tags.get("model") or info.tags.get("com.apple.quicktime.model"),
        "width": info.width,
        "height": info.height,
        "duration_s": info.duration_s,
        "fps": info.fps,
        "frame_count": info.frame_count,
        "frames_sampled": frames_sampled,
        "codec": info.codec,
        "container_format": info.container,
        "run_id": ctx.run_id,
        "ingested_at": _now(),
    }
