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

from .registry import ModelSpec, sha256_file
from .training_data import (
    DETECTION_FLOOR,
    EMBEDDER,
    EMBEDDING_DIM,
    IMAGE_EXTENSIONS,
    MAX_IMAGE_PIXELS,
    WHOLE_FRAME,
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
    images_from_csv,
    images_from_folders,
    l2_normalise,
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
    "ClassReport",
    "CropEmbedder",
    "CropEmbedding",
    "Embedded",
    "EmbeddingCache",
    "Evaluation",
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
    "fit_head",
    "head_weights",
    "images_from_csv",
    "images_from_folders",
    "l2_normalise",
    "latest_trained",
    "next_version",
    "read_trained_registry",
    "register_head",
    "report_markdown",
    "stratified_split",
    "train_head",
    "trained_models",
    "trained_registry_path",
    "write_confusion_png",
    "write_head_onnx",
]

TRAINED_REGISTRY = Path("trained") / "registry.toml"
DEFAULT_HEAD_NAME = "species_head"


@dataclass(frozen=True)
class TrainingConfig:
    min_per_class: int = 5
    max_per_class: int = 1000
    val_fraction: float = 0.25
    seed: int = 0
    min_box_confidence: float = 0.2  # the best animal box must reach this
    whole_frame_fallback: bool = True  # else: the whole frame (True) or left out (False)
    regularisation_c: float = 10.0  # sklearn's C (inverse regularisation strength)


# --------------------------------------------------------------------------- registry


def trained_registry_path(model_dir: Path) -> Path:
    return Path(model_dir) / TRAINED_REGISTRY


def read_trained_registry(model_dir: Path) -> dict[str, Any]:
    """``{"latest": name | None, "models": {name: table}}`` (empty when nothing was trained)."""
    path = trained_registry_path(model_dir)
    if not path.is_file():
        return {"latest": None, "models": {}}
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return {"latest": None, "models": {}}
    models = {k: dict(v) for k, v in dict(data.get("models", {})).items() if isinstance(v, dict)}
    latest = data.get("latest")
    return {"latest": latest if latest in models else None, "models": models}


def trained_models(model_dir: Path) -> dict[str, dict[str, Any]]:
    """Trained heads as ``[models.<name>]`` tables (the trapflow.toml format)."""
    models: dict[str, dict[str, Any]] = read_trained_registry(model_dir)["models"]
    return models


def latest_trained(model_dir: Path) -> str | None:
    """The name of the most recently trained head, if any."""
    latest = read_trained_registry(model_dir)["latest"]
    return str(latest) if latest else None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def register_head(
    model_dir: Path,
    name: str,
    version: str,
    head_path: Path,
    labels_path: Path,
    description: str = "",
) -> Path:
    """Add (or replace) ``[models.<name>]`` in the trained registry and make it the latest."""
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
        "description": description or f"species head trained by trapflow train ({version})",
    }
    out = [
        "# Species heads trained by `trapflow train` (merged into the model registry).",
        f"latest = {_toml_value(name)}",
        "",
    ]
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
) -> TrainResult:
    """Detect, crop, embed (cached), balance, split, fit, evaluate, export and register."""
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
    check_classes(labels_all, cfg.min_per_class)
    keep, excluded, subsampled = balance(labels_all, cfg.min_per_class, cfg.max_per_class, cfg.seed)
    y = [labels_all[i] for i in keep]
    x = emb.x[keep]
    tr, va = stratified_split(y, cfg.val_fraction, cfg.seed)
    y_tr, y_va = [y[i] for i in tr], [y[i] for i in va]
    model = fit_head(x[tr], y_tr, cfg.regularisation_c, cfg.seed)
    evaluation = evaluate(model, x[va], y_va, y_tr)

    version = next_version(out_root, name, model_dir)
    out_dir = Path(out_root) / name / f"v{version}"
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = [str(c) for c in model.classes_]
    head_path = export_head_onnx(model, out_dir / "head.onnx")
    labels_path = out_dir / "labels.txt"
    labels_path.write_text("\n".join(labels) + "\n", encoding="utf-8")
    write_confusion_png(evaluation, out_dir / "confusion.png", f"{name}@{version} (held out)")
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
        skipped=emb.skipped,
        cache_hits=emb.cache_hits,
        embedded=len(emb.items),
        whole_frame=emb.whole_frame,
        estimator=model,
    )
    report = {
        "model": result.model_id,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "embedder": embedder.embedder_spec.model_id,
        "detector": embedder.detector.model_id,
        "config": asdict(cfg),
        "evaluation": asdict(evaluation),
        "excluded_classes": excluded,
        "subsampled_classes": subsampled,
        "skipped": [asdict(s) for s in emb.skipped],
        "whole_frame_images": emb.whole_frame,
        "cache_hits": emb.cache_hits,
        "train_images": [str(emb.items[keep[i]].path) for i in tr],
        "validation_images": [str(emb.items[keep[i]].path) for i in va],
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
        )
    if not math.isfinite(evaluation.accuracy):  # pragma: no cover - defensive
        raise TrainingDataError("evaluation failed: no validation images")
    return result
