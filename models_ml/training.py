"""Train a species head from a few labelled images, evaluate it honestly, register it.

Steps (:func:`train_head`): detect animals with the animal detector, crop the best box (the
same crop the species stage uses: box + 10 % each side, 224x224), embed it with
``mobilenetv2_imagenet_features`` (L2-normalised; cached by image SHA-256 so a re-train only
embeds new images), balance the classes (classes below ``min_per_class`` are reported and
left out, classes above ``max_per_class`` are subsampled, as Wildlife Insights' data
preparation does), split train/validation stratified by class, fit a scikit-learn logistic
regression, evaluate it on the held-out images (per-class precision/recall/F1/support, a
confusion matrix PNG, accuracy against the majority-class baseline) and export it to ONNX in
the head format the species stage reads (docs/models.md): ``head.onnx`` (``embedding``
float32 ``[N, 1280]`` -> ``Gemm`` -> ``Softmax`` -> ``probabilities`` ``[N, C]``) plus
``labels.txt``. :func:`register_head` adds it to ``<model_dir>/trained/registry.toml``, which
the pipeline merges into its registry; the newest head becomes the default ``species_model``.

The work is split by responsibility: :mod:`models_ml.training_data` (gathering, embedding,
balancing, splitting), :mod:`models_ml.training_report` (fitting, evaluation, ONNX export,
report, confusion PNG) and this module (the trained registry and :func:`train_head`). Every
name is re-exported here, so ``from models_ml.training import ...`` keeps working.

Pure library: no Prefect, no Streamlit; scikit-learn, onnx and matplotlib are imported only
when training, so reading the trained registry stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .classifier import WHOLE_FRAME
from .registry import ModelSpec, sha256_file
from .training_data import (
    DETECTION_FLOOR,
    EMBEDDER,
    EMBEDDING_DIM,
    IMAGE_EXTENSIONS,
    MAX_IMAGE_PIXELS,
    CropEmbedder,
    CropEmbedding,
    Embedded,
    EmbeddingCache,
    FloatArray,
    LabelledImage,
    Skipped,
    TrainingDataError,
    balance,
    embed_images,
    group_split,
    images_from_csv,
    images_from_folders,
    l2_normalise,
    split_groups,
    stratified_split,
)
from .training_report import (
    IR_VERSION,
    OPSET,
    ClassReport,
    Evaluation,
    TrainResult,
    evaluate,
    export_head_onnx,
    fit_head,
    head_weights,
    report_markdown,
    write_confusion_png,
    write_head_onnx,
)

__all__ = [
    "DEFAULT_HEAD_NAME",
    "DETECTION_FLOOR",
    "EMBEDDER",
    "EMBEDDING_DIM",
    "IMAGE_EXTENSIONS",
    "IR_VERSION",
    "MAX_IMAGE_PIXELS",
    "OPSET",
    "TRAINED_REGISTRY",
    "WHOLE_FRAME",
    "AlreadyTrained",
    "ClassReport",
    "CropEmbedder",
    "CropEmbedding",
    "Embedded",
    "EmbeddingCache",
    "Evaluation",
    "Examples",
    "FloatArray",
    "LabelledImage",
    "Skipped",
    "TrainResult",
    "TrainingConfig",
    "TrainingDataError",
    "balance",
    "check_classes",
    "embed_images",
    "evaluate",
    "export_head_onnx",
    "fit_examples",
    "fit_head",
    "group_split",
    "head_weights",
    "images_from_csv",
    "images_from_folders",
    "l2_normalise",
    "latest_trained",
    "next_version",
    "read_trained_registry",
    "register_head",
    "report_markdown",
    "split_groups",
    "stratified_split",
    "train_head",
    "trained_models",
    "trained_registry_path",
    "write_confusion_png",
    "write_head_onnx",
    "write_version",
]

TRAINED_REGISTRY = Path("trained") / "registry.toml"
DEFAULT_HEAD_NAME = "species_head"


@dataclass(frozen=True)
class TrainingConfig:
    min_per_class: int = 5
    max_per_class: int = 1000
    val_fraction: float = 0.25
    seed: int = 0
    min_box_confidence: float = 0.2  # the species stage's classification_min_confidence
    whole_frame_fallback: bool = True  # else: the whole frame (True) or left out (False)
    regularisation_c: float = 10.0  # sklearn's C (inverse regularisation strength)
    split: str = "burst"  # burst | site | image: what the train/validation split keeps whole
    only_trained_sites: bool = True  # labels photos only at the sites it was trained on
    burst_gap_s: float = 1800.0  # photos of one folder closer than this are one burst


# --------------------------------------------------------------------------- registry


def trained_registry_path(model_dir: Path) -> Path:
    return Path(model_dir) / TRAINED_REGISTRY


def read_trained_registry(model_dir: Path) -> dict[str, Any]:
    """``{"latest": species head | None, "latest_behaviour": behaviour head | None,
    "models": {name: table}}`` (empty when nothing was trained)."""
    path = trained_registry_path(model_dir)
    empty: dict[str, Any] = {"latest": None, "latest_behaviour": None, "models": {}}
    if not path.is_file():
        return empty
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return empty
    models = {k: dict(v) for k, v in dict(data.get("models", {})).items() if isinstance(v, dict)}
    latest, behaviour = data.get("latest"), data.get("latest_behaviour")
    return {
        "latest": latest if latest in models else None,
        "latest_behaviour": behaviour if behaviour in models else None,
        "models": models,
    }


def trained_models(model_dir: Path) -> dict[str, dict[str, Any]]:
    """Trained heads as ``[models.<name>]`` tables (the trapflow.toml format)."""
    models: dict[str, dict[str, Any]] = read_trained_registry(model_dir)["models"]
    return models


def latest_trained(model_dir: Path, task: str = "species") -> str | None:
    """The name of the most recently trained species (or ``behaviour``) head, if any."""
    key = "latest_behaviour" if task == "behaviour" else "latest"
    latest = read_trained_registry(model_dir)[key]
    return str(latest) if latest else None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    return json.dumps(str(value), ensure_ascii=False)


def _write_trained_registry(
    model_dir: Path, models: dict[str, dict[str, Any]], latest: Any, behaviour: Any
) -> Path:
    out = ["# Models made here: heads trained by `trapflow train`, INT8 copies made by"]
    out += ["# `trapflow models quantize` (merged into the model registry)."]
    out += [f"latest = {_toml_value(latest)}"] if latest else []
    out += [f"latest_behaviour = {_toml_value(behaviour)}"] if behaviour else []
    out.append("")
    for model, table in sorted(models.items()):
        out.append(f"[models.{json.dumps(model)}]")
        out += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
        out.append("")
    path = trained_registry_path(model_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(out), encoding="utf-8")
    os.replace(tmp, path)
    return path


def register_model(model_dir: Path, name: str, table: dict[str, Any]) -> Path:
    """Add (or replace) ``[models.<name>]`` (trapflow.toml's format, ``registry.user_spec``)
    in the registry of models made here, leaving the latest heads as they are. Used for the
    INT8 detectors of ``models_ml.quantize``."""
    from .registry import load_manifest

    if name in load_manifest():
        raise ValueError(f"{name!r} is the name of a registry model; pick another")
    data = read_trained_registry(model_dir)
    models: dict[str, dict[str, Any]] = data["models"]
    models[name] = dict(table)
    return _write_trained_registry(model_dir, models, data["latest"], data["latest_behaviour"])


def register_head(
    model_dir: Path,
    name: str,
    version: str,
    head_path: Path,
    labels_path: Path,
    description: str = "",
    geofence_path: Path | None = None,
    task: str = "species",
) -> Path:
    """Add (or replace) ``[models.<name>]`` in the trained registry and make it the latest of
    its task (``species``: the default species model; ``behaviour``: of clips' frames)."""
    data = read_trained_registry(model_dir)
    models: dict[str, dict[str, Any]] = data["models"]
    models[name] = {
        "file": str(head_path.absolute()),
        "sha256": sha256_file(head_path),
        "decoder": "embedding_head",
        "labels_file": str(labels_path.absolute()),
        "version": version,
        "embedder": EMBEDDER,
        "licence": "user-trained",
        "description": description or f"{task} head trained by trapflow train ({version})",
        "task": task,
    }
    if geofence_path is not None:
        models[name]["geofence_file"] = str(geofence_path.absolute())
    latest = name if task == "species" else data["latest"]
    behaviour = name if task == "behaviour" else data["latest_behaviour"]
    return _write_trained_registry(model_dir, models, latest, behaviour)


def write_site_fence(path: Path, sites: Sequence[str], labels: Sequence[str]) -> Path:
    """A geofence (``models_ml.geofence``) that allows the head's labels at the sites its
    photos came from and none elsewhere: at another site (another country, another habitat)
    a closed-set head would name a species it never saw, so its labels roll up to
    ``animal`` there (``trapflow train --any-site`` leaves this out)."""
    lines = [
        "# Written by trapflow train: the sites this head was trained on. Elsewhere its",
        "# labels roll up to 'animal' (geofence_status 'rolled_up').",
        "default = []",
        "",
        "[sites]",
    ]
    allowed = "[" + ", ".join(_toml_value(label) for label in labels) + "]"
    lines += [f"{json.dumps(site)} = {allowed}" for site in sites]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def next_version(out_root: Path, name: str, model_dir: Path) -> str:
    """1 + the highest version trained so far under ``out_root/name`` or in the registry."""
    seen = [0]
    folder = Path(out_root) / name
    if folder.is_dir():
        seen += [int(p.name[1:]) for p in folder.iterdir() if p.name[1:].isdigit()]
    current = trained_models(model_dir).get(name, {}).get("version", "")
    if str(current).isdigit():
        seen.append(int(current))
    return str(max(seen) + 1)


class AlreadyTrained(Exception):
    """The registered head was trained on exactly these photos, labels and settings."""

    def __init__(self, model_id: str) -> None:
        super().__init__(model_id)
        self.model_id = model_id


def _fingerprint(shas: Sequence[str], labels: Sequence[str], cfg: TrainingConfig, key: str) -> str:
    pairs = sorted(zip(shas, labels, strict=True))
    blob = json.dumps([pairs, asdict(cfg), key], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _current_fingerprint(out_root: Path, name: str, model_dir: Path) -> tuple[str, str] | None:
    """(model id, fingerprint) of the registered version of ``name``, if it has one."""
    version = str(trained_models(model_dir).get(name, {}).get("version", ""))
    report = Path(out_root) / name / f"v{version}" / "report.json"
    try:
        return f"{name}@{version}", str(json.loads(report.read_text())["fingerprint"])
    except (OSError, ValueError, KeyError):
        return None


def write_version(
    model: Any, evaluation: Evaluation, out_root: Path, name: str, model_dir: Path
) -> tuple[str, Path, Path, Path, list[str]]:
    """The next version's folder of a fitted head: ``head.onnx``, ``labels.txt`` and
    ``confusion.png``; returns (version, folder, head, labels file, labels)."""
    version = next_version(out_root, name, model_dir)
    out_dir = Path(out_root) / name / f"v{version}"
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = [str(c) for c in model.classes_]
    head_path = export_head_onnx(model, out_dir / "head.onnx")
    labels_path = out_dir / "labels.txt"
    labels_path.write_text("\n".join(labels) + "\n", encoding="utf-8")
    write_confusion_png(evaluation, out_dir / "confusion.png", f"{name}@{version} (held out)")
    return version, out_dir, head_path, labels_path, labels


# --------------------------------------------------------------------------- the whole thing


def check_classes(labels: Iterable[str], min_per_class: int) -> None:
    counts = Counter(labels)
    usable = {k: n for k, n in counts.items() if n >= min_per_class}
    if len(usable) < 2:
        have = ", ".join(f"{k} ({n})" for k, n in sorted(counts.items())) or "none"
        raise TrainingDataError(
            f"need at least two species with {min_per_class} or more usable images each; "
            f"have: {have}. Add images (one folder per species), or lower --min-per-class"
        )


def train_head(
    items: Sequence[LabelledImage],
    *,
    model_dir: Path,
    out_root: Path,
    name: str = DEFAULT_HEAD_NAME,
    config: TrainingConfig | None = None,
    embedder: CropEmbedder | None = None,
    manifest: dict[str, ModelSpec] | None = None,
    register: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
    test_items: Sequence[LabelledImage] = (),
) -> TrainResult:
    """Detect, crop, embed (cached), balance, split, fit, evaluate, export and register.

    ``test_items``: photos the head never sees (other cameras, another season), classified
    by the same rule after training and reported beside the split's figure."""
    cfg = config or TrainingConfig()
    if not items:
        raise TrainingDataError("no labelled images given")
    if not name.replace("_", "").replace("-", "").isalnum():
        raise TrainingDataError(f"model name {name!r}: use letters, digits, _ and - only")
    check_classes((i.label for i in items), cfg.min_per_class)
    embedder = embedder or CropEmbedder(model_dir, manifest)
    cache = EmbeddingCache(Path(out_root) / "embeddings", embedder.cache_key)
    emb = embed_images(
        items,
        embedder,
        cache,
        min_box_confidence=cfg.min_box_confidence,
        whole_frame_fallback=cfg.whole_frame_fallback,
        progress=progress,
    )
    labels_all = [i.label for i in emb.items]
    if not emb.items:
        reasons = Counter(s.reason.split(" (")[0] for s in emb.skipped)
        raise TrainingDataError(
            "none of the images could be used ("
            + "; ".join(f"{n} x {r}" for r, n in reasons.most_common(3))
            + "); check that the files are camera-trap photos with a visible animal"
        )
    return fit_examples(
        Examples(
            x=emb.x,
            labels=labels_all,
            keys=list(emb.shas),
            groups=split_groups(emb.items, emb.times, cfg.split, cfg.burst_gap_s),
            sites=[i.site for i in emb.items],
            names=[str(i.path) for i in emb.items],
        ),
        cfg=cfg,
        model_dir=model_dir,
        out_root=out_root,
        name=name,
        embedder_id=embedder.embedder_spec.model_id,
        detector_id=embedder.detector.model_id,
        fingerprint_key=embedder.cache_key,
        register=register,
        unseen=_unseen_evaluation(test_items, embedder, cache, cfg),
        report_extra={
            "skipped": [asdict(s) for s in emb.skipped],
            "whole_frame_images": emb.whole_frame,
            "cache_hits": emb.cache_hits,
        },
        skipped=emb.skipped,
        cache_hits=emb.cache_hits,
        whole_frame=emb.whole_frame,
    )


def _unseen_evaluation(
    test_items: Sequence[LabelledImage],
    embedder: CropEmbedder,
    cache: EmbeddingCache,
    cfg: TrainingConfig,
) -> Callable[[Any, list[str]], Evaluation | None] | None:
    """How to evaluate a fitted head on photos it never saw (None without any)."""
    if not test_items:
        return None

    def run(model: Any, y_tr: list[str]) -> Evaluation | None:
        test = embed_images(
            test_items, embedder, cache, min_box_confidence=cfg.min_box_confidence,
            whole_frame_fallback=True,
        )  # fmt: skip
        if not test.items:
            return None
        return evaluate(model, test.x, [i.label for i in test.items], y_tr)

    return run


@dataclass
class Examples:
    """What a head is fitted on: one embedding per labelled crop, with what keeps the split
    honest (``groups``: the burst, site or image each belongs to) and what names it."""

    x: FloatArray
    labels: list[str]
    keys: list[str]  # what identifies each example for the fingerprint (SHA-256, media/crop)
    groups: list[str]
    sites: list[str | None]
    names: list[str]  # for report.json (paths, or media ids)


def fit_examples(
    ex: Examples,
    *,
    cfg: TrainingConfig,
    model_dir: Path,
    out_root: Path,
    name: str,
    embedder_id: str,
    detector_id: str,
    fingerprint_key: str,
    register: bool = True,
    unseen: Callable[[Any, list[str]], Evaluation | None] | None = None,
    report_extra: dict[str, Any] | None = None,
    skipped: list[Skipped] | None = None,
    cache_hits: int = 0,
    whole_frame: int = 0,
) -> TrainResult:
    """Balance, split (groups kept whole), fit, evaluate, export and register: everything
    after the embeddings, for photos embedded now (:func:`train_head`) and for crops whose
    embeddings the warehouse cached (flows/pipeline/train_now.py)."""
    check_classes(ex.labels, cfg.min_per_class)
    keep, excluded, subsampled = balance(ex.labels, cfg.min_per_class, cfg.max_per_class, cfg.seed)
    y = [ex.labels[i] for i in keep]
    x = ex.x[keep]
    fingerprint = _fingerprint([ex.keys[i] for i in keep], y, cfg, fingerprint_key)
    current = _current_fingerprint(out_root, name, model_dir) if register else None
    if current is not None and current[1] == fingerprint and unseen is None:
        raise AlreadyTrained(current[0])
    tr, va, untested = group_split(y, [ex.groups[i] for i in keep], cfg.val_fraction, cfg.seed)
    if not va:
        raise TrainingDataError(
            f"every species has a single {cfg.split}: nothing can be held out; label photos "
            "from more visits (or use --split image and read the figure as optimistic)"
        )
    y_tr, y_va = [y[i] for i in tr], [y[i] for i in va]
    model = fit_head(x[tr], y_tr, cfg.regularisation_c, cfg.seed)
    evaluation = evaluate(model, x[va], y_va, y_tr)
    unseen_eval = unseen(model, y_tr) if unseen is not None else None

    version, out_dir, head_path, labels_path, labels = write_version(
        model, evaluation, out_root, name, model_dir
    )
    sites = sorted({s for s in (ex.sites[k] for k in keep) if s})
    geofence_path = None
    if sites and cfg.only_trained_sites:
        geofence_path = write_site_fence(out_dir / "sites.toml", sites, labels)
    result = TrainResult(
        name=name,
        version=version,
        model_id=f"{name}@{version}",
        out_dir=out_dir,
        head_path=head_path,
        labels=labels,
        evaluation=evaluation,
        excluded_classes=excluded,
        subsampled_classes=subsampled,
        skipped=skipped or [],
        cache_hits=cache_hits,
        embedded=len(ex.labels),
        whole_frame=whole_frame,
        estimator=model,
        unseen=unseen_eval,
        untested_classes=untested,
        split=cfg.split,
    )
    report = {
        "model": result.model_id,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "embedder": embedder_id,
        "detector": detector_id,
        "config": asdict(cfg),
        "fingerprint": fingerprint,
        "evaluation": asdict(evaluation),
        "split": cfg.split,
        "untested_classes": untested,
        "unseen_evaluation": asdict(unseen_eval) if unseen_eval is not None else None,
        "excluded_classes": excluded,
        "subsampled_classes": subsampled,
        **(report_extra or {}),
        "train_images": [ex.names[keep[i]] for i in tr],
        "validation_images": [ex.names[keep[i]] for i in va],
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (out_dir / "report.md").write_text(report_markdown(result), encoding="utf-8")
    if register:
        register_head(
            model_dir,
            name,
            version,
            head_path,
            labels_path,
            f"trained on {len(y)} images of {len(labels)} species; held-out accuracy "
            f"{evaluation.accuracy:.2f} (baseline {evaluation.baseline_accuracy:.2f})",
            geofence_path,
        )
    if not math.isfinite(evaluation.accuracy):  # pragma: no cover - defensive
        raise TrainingDataError("evaluation failed: no validation images")
    return result
