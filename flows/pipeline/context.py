"""What a batch needs besides its files: the settings it runs under and the models, loaded
once per process (onnxruntime sessions are reused between batches and runs).

Plain functions, no Prefect.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from flows.pipeline.models import ModelsUnavailableError, ensure_models
from flows.settings import Settings
from flows.store import Store, store_for
from models_ml import DetectorEnsemble, registry
from models_ml.classifier import SpeciesClassifier, load_classifier
from models_ml.geofence import Geofence
from models_ml.ocr import InfoBarReader

__all__ = [
    "BatchContext",
    "batch_context",
    "configured_manifest",
    "ensure_pipeline_models",
    "inference_layout",
    "load_ensemble",
    "load_info_bar_reader",
    "load_species_classifier",
]


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
    ocr_every_photo: bool = False  # read the info bar of photos with an EXIF time too
    lake: str | None = None  # scale-out: raw rows go to Parquet files here, not the warehouse
    lake_data_path: str | None = None  # a DuckLake's Parquet files (Settings.lake_data_path)
    video_sample_rate: float = 1.0  # frames per second sampled from clips (plus the first)
    video_max_frames: int | None = None  # sampled frames per clip, at most
    species_keyword_parent: str = ""  # XMP 'Species|<name>' keywords -> human labels; '' = off
    behaviour: SpeciesClassifier | None = None  # behaviour head on clips' frames; None: skipped

    store: Store | None = None  # the run's store (flows.store.open_store); None: from the above

    def rows_store(self) -> Store:
        """The run's store; a context made without one gets the store its settings chose."""
        return (
            self.store
            if self.store is not None
            else store_for(self.warehouse, self.lake, self.lake_data_path)
        )


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
    settings: Settings,
    model_dir: Path,
    source_uri: str,
    run_id: str,
    *,
    store: Store | None = None,
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
    path = None
    if settings.geofence_file is not None:  # the user's site lists win over a head's own
        path = settings.geofence_file.expanduser().absolute()
    elif settings.species_model:
        spec = _manifest(user)[settings.species_model]
        if spec.geofence_file:  # a trained head: the sites it knows (docs/training.md)
            path = spec.files_dir(model_dir) / spec.geofence_file
    if path is not None:
        geofence = _load_geofence(path, path.stat().st_mtime_ns if path.exists() else 0)
    info_bar = load_info_bar_reader(model_dir, settings.ocr_model) if settings.ocr_model else None
    behaviour = None
    if settings.behaviour_model:
        behaviour = load_species_classifier(model_dir, settings.behaviour_model, threads, user)
    return BatchContext(
        behaviour=behaviour,
        info_bar=info_bar,
        ocr_dayfirst=settings.ocr_dayfirst,
        ocr_every_photo=settings.ocr_every_photo,
        lake=settings.lake,
        lake_data_path=settings.lake_data_path,
        video_sample_rate=settings.video_sample_rate,
        video_max_frames=settings.video_max_frames,
        source_uri=source_uri,
        warehouse=settings.warehouse_path,
        run_id=run_id,
        layout=settings.layout,
        species_keyword_parent=settings.species_keyword_parent,
        max_image_pixels=settings.max_image_pixels,
        inference_floor=settings.inference_floor,
        ensemble=ensemble,
        classifier=classifier,
        geofence=geofence,
        top_k=settings.classification_top_k,
        classify_min_confidence=settings.classification_min_confidence,
        inference_workers=workers,
        store=store,
    )
