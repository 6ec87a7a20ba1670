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

Pure library: no Prefect, no Streamlit; scikit-learn, onnx and matplotlib are imported only
when training, so reading the trained registry stays cheap.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ._imageops import ImageRejected, decode_rgb, open_image
from ._types import BBox
from .classifier import crop_batch
from .registry import ModelSpec, load_manifest, sha256_file
from .session import create_session

FloatArray = npt.NDArray[np.float32]

EMBEDDER = "mobilenetv2_imagenet_features"
EMBEDDING_DIM = 1280
OPSET = 17
IR_VERSION = 9
IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "tif", "tiff", "jpe", "webp"})
TRAINED_REGISTRY = Path("trained") / "registry.toml"
DEFAULT_HEAD_NAME = "species_head"
MAX_IMAGE_PIXELS = 80_000_000
DETECTION_FLOOR = 0.05


class TrainingDataError(ValueError):
    """The training data cannot give a model; the message says what to change."""


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    label: str
    origin: str = "folder"  # folder | csv | review


@dataclass(frozen=True)
class TrainingConfig:
    min_per_class: int = 5
    max_per_class: int = 1000
    val_fraction: float = 0.25
    seed: int = 0
    min_box_confidence: float = 0.2  # the best animal box must reach this
    whole_frame_fallback: bool = True  # else: the whole frame (True) or left out (False)
    regularisation_c: float = 10.0  # sklearn's C (inverse regularisation strength)


@dataclass
class Skipped:
    path: str
    label: str
    reason: str


@dataclass
class Embedded:
    """The usable training images: ``x[i]`` is the embedding of ``items[i]``'s best crop."""

    items: list[LabelledImage]
    shas: list[str]
    x: FloatArray
    skipped: list[Skipped] = field(default_factory=list)
    cache_hits: int = 0
    whole_frame: int = 0  # images without an animal box, embedded as a whole


@dataclass
class ClassReport:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class Evaluation:
    labels: list[str]
    per_class: list[ClassReport]
    confusion: list[list[int]]  # rows: true label, columns: predicted (order of ``labels``)
    accuracy: float
    baseline_accuracy: float  # always predicting the training set's majority class
    baseline_label: str
    macro_f1: float
    n_train: int
    n_validation: int


@dataclass
class TrainResult:
    name: str
    version: str
    model_id: str
    out_dir: Path
    head_path: Path
    labels: list[str]
    evaluation: Evaluation
    excluded_classes: dict[str, int]  # below min_per_class: label -> images
    subsampled_classes: dict[str, int]  # above max_per_class: label -> images before
    skipped: list[Skipped]
    cache_hits: int
    embedded: int
    whole_frame: int = 0
    estimator: Any = None  # the fitted scikit-learn model


# --------------------------------------------------------------------------- inputs


def images_from_folders(root: Path) -> list[LabelledImage]:
    """One sub-folder per species under ``root`` (images anywhere below each folder)."""
    root = Path(root)
    if not root.is_dir():
        raise TrainingDataError(
            f"{root} is not a folder; --data needs a folder with one sub-folder per species "
            "(e.g. data/red_fox/*.jpg, data/badger/*.jpg)"
        )
    items: list[LabelledImage] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(sub.rglob("*")):
            if path.is_file() and path.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS:
                items.append(LabelledImage(path, sub.name, "folder"))
    if not items:
        raise TrainingDataError(
            f"no images found under {root}: put each species' images in its own sub-folder "
            f"(extensions {', '.join(sorted(IMAGE_EXTENSIONS))}), or use --csv with file,label"
        )
    return items


def images_from_csv(path: Path, root: Path | None = None) -> list[LabelledImage]:
    """A CSV with ``file`` and ``label`` columns (LILA/WCS metadata style).

    Also accepted: ``filename``/``file_name``/``path`` for the file and ``species``/
    ``category``/``common_name`` for the label. Relative files are relative to ``root``
    (default: the CSV's folder). Rows with an empty label are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(f"CSV {path} not found; give --csv a file with file,label columns")
    base = Path(root) if root is not None else path.parent
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = {c.strip().lower(): c for c in reader.fieldnames or []}
        fcol = next((cols[c] for c in ("file", "filename", "file_name", "path") if c in cols), None)
        lcol = next(
            (cols[c] for c in ("label", "species", "category", "common_name") if c in cols), None
        )
        if fcol is None or lcol is None:
            raise TrainingDataError(
                f"{path}: needs a file column (file, filename, path) and a label column (label, "
                f"species, category); it has {', '.join(reader.fieldnames or []) or 'no header'}"
            )
        items = []
        for row in reader:
            file, label = (row.get(fcol) or "").strip(), (row.get(lcol) or "").strip()
            if file and label:
                p = Path(file)
                items.append(LabelledImage(p if p.is_absolute() else base / p, label, "csv"))
    if not items:
        raise TrainingDataError(f"{path}: no rows with both a file and a label")
    return items


# --------------------------------------------------------------------------- embedding


class CropEmbedder:
    """Animal detector + embedder: an image's best animal crop as an L2-normalised vector."""

    def __init__(
        self,
        model_dir: Path,
        manifest: dict[str, ModelSpec] | None = None,
        *,
        animal_model: str = "mdlite_yolox_tiny",
        intra_op_threads: int | None = None,
    ) -> None:
        from .detector import YoloxDetector

        manifest = manifest or load_manifest()
        for name in (animal_model, EMBEDDER):
            if name not in manifest:
                raise TrainingDataError(f"model {name!r} is not in the registry")
        det_spec = manifest[animal_model]
        self.detector = YoloxDetector.from_spec(
            det_spec, det_spec.files_dir(model_dir), intra_op_threads=intra_op_threads
        )
        self.embedder_spec = manifest[EMBEDDER]
        emb_dir = self.embedder_spec.files_dir(model_dir)
        self.embedder = create_session(
            emb_dir / self.embedder_spec.file, intra_op_threads=intra_op_threads
        )
        self._in = self.embedder_spec.input.name or self.embedder.get_inputs()[0].name
        self._out = self.embedder_spec.output.name or self.embedder.get_outputs()[0].name

    @property
    def cache_key(self) -> str:
        return f"{self.detector.model_id}+{self.embedder_spec.model_id}"

    def embed_bytes(self, data: bytes) -> CropEmbedding:
        """The best animal box's confidence and the embeddings of its crop and the whole frame.

        Without an animal box the box embedding is the whole frame's (confidence 0). Raises
        :class:`ImageRejected` for a file that is not a usable image.
        """
        img = decode_rgb(
            open_image(data, max_pixels=MAX_IMAGE_PIXELS), draft_size=self.detector.input_size
        )
        dets = [d for d in self.detector.detect(img, DETECTION_FLOOR) if d.category == "animal"]
        boxes = [WHOLE_FRAME]
        conf = 0.0
        if dets:
            best = max(dets, key=lambda d: d.confidence)
            boxes.append(best.bbox)
            conf = float(best.confidence)
        batch = crop_batch(img, boxes, self.embedder_spec.input, context=0.0)
        if dets:  # the box crop gets the species stage's context around it
            batch[1:] = crop_batch(img, boxes[1:], self.embedder_spec.input)
        (out,) = self.embedder.run([self._out], {self._in: batch})
        emb = l2_normalise(np.asarray(out, np.float32).reshape(len(boxes), -1))
        return CropEmbedding(conf, emb[-1], emb[0])


@dataclass(frozen=True)
class CropEmbedding:
    confidence: float  # best animal box; 0 without one
    box: FloatArray  # embedding of the best box's crop (the whole frame without a box)
    whole: FloatArray  # embedding of the whole frame


WHOLE_FRAME = BBox(0.0, 0.0, 1.0, 1.0)


def l2_normalise(x: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(x, np.float32)
    norm = np.linalg.norm(arr, axis=1, keepdims=True)
    out: FloatArray = (arr / np.maximum(norm, 1e-12)).astype(np.float32)
    return out


class EmbeddingCache:
    """Embeddings by image SHA-256, in one ``.npz`` per detector + embedder pair."""

    def __init__(self, folder: Path, key: str) -> None:
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        self.path = Path(folder) / f"embeddings-{digest}.npz"
        self.entries: dict[str, CropEmbedding] = {}
        self.dirty = False
        if self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as npz:
                    rows = zip(npz["sha"], npz["conf"], npz["box"], npz["whole"], strict=True)
                    for sha, conf, box, whole in rows:
                        self.entries[str(sha)] = CropEmbedding(
                            float(conf), np.asarray(box, np.float32), np.asarray(whole, np.float32)
                        )
            except (OSError, ValueError, KeyError):
                self.entries = {}  # a damaged cache is rebuilt, never trusted

    def get(self, sha: str) -> CropEmbedding | None:
        return self.entries.get(sha)

    def put(self, sha: str, value: CropEmbedding) -> None:
        self.entries[sha] = value
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        shas = sorted(self.entries)
        empty = np.zeros((0, EMBEDDING_DIM), np.float32)
        tmp = self.path.with_name(self.path.stem + ".tmp.npz")
        np.savez(
            tmp,
            sha=np.asarray(shas, dtype="U64"),
            conf=np.asarray([self.entries[s].confidence for s in shas], np.float32),
            box=np.stack([self.entries[s].box for s in shas]) if shas else empty,
            whole=np.stack([self.entries[s].whole for s in shas]) if shas else empty,
        )
        os.replace(tmp, self.path)
        self.dirty = False


def embed_images(
    items: Sequence[LabelledImage],
    embedder: CropEmbedder,
    cache: EmbeddingCache | None,
    *,
    min_box_confidence: float = 0.2,
    whole_frame_fallback: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
) -> Embedded:
    """Embed the best animal crop of every image; unusable images are skipped with a reason.

    An image without an animal box >= ``min_box_confidence`` (thumbnails, close-ups) uses its
    whole frame when ``whole_frame_fallback``, else it is skipped. Identical files (same
    SHA-256) count once; the same file under two labels is left out.
    """
    by_sha: dict[str, tuple[LabelledImage, CropEmbedding]] = {}
    conflicts: set[str] = set()
    skipped: list[Skipped] = []
    hits = 0
    for i, item in enumerate(items):
        if progress is not None:
            progress(i, len(items), item.path.name)
        try:
            data = item.path.read_bytes()
        except OSError as exc:
            skipped.append(Skipped(str(item.path), item.label, f"cannot read the file: {exc}"))
            continue
        sha = hashlib.sha256(data).hexdigest()
        if sha in by_sha:
            if by_sha[sha][0].label != item.label:
                conflicts.add(sha)
            skipped.append(Skipped(str(item.path), item.label, "duplicate of another file"))
            continue
        value = cache.get(sha) if cache is not None else None
        if value is not None:
            hits += 1
        else:
            try:
                value = embedder.embed_bytes(data)
            except ImageRejected as exc:
                skipped.append(
                    Skipped(str(item.path), item.label, f"not a usable image ({exc.reason})")
                )
                continue
            if cache is not None:
                cache.put(sha, value)
        by_sha[sha] = (item, value)
    if progress is not None:
        progress(len(items), len(items), "")
    if cache is not None:
        cache.save()
    kept_items, shas, rows = [], [], []
    whole = 0
    for sha, (item, value) in by_sha.items():
        if sha in conflicts:
            skipped.append(Skipped(str(item.path), item.label, "same file has two labels"))
            continue
        if value.confidence >= min_box_confidence:
            rows.append(value.box)
        elif whole_frame_fallback:
            rows.append(value.whole)
            whole += 1
        else:
            skipped.append(
                Skipped(
                    str(item.path),
                    item.label,
                    f"no animal box >= {min_box_confidence} (best {value.confidence:.2f}); "
                    "crop the image or use the whole frame (--whole-frame)",
                )
            )
            continue
        kept_items.append(item)
        shas.append(sha)
    x = np.stack(rows).astype(np.float32) if rows else np.zeros((0, EMBEDDING_DIM), np.float32)
    return Embedded(kept_items, shas, x, skipped, hits, whole)


# --------------------------------------------------------------------------- balance / split


def balance(
    labels: Sequence[str], min_per_class: int, max_per_class: int, seed: int = 0
) -> tuple[list[int], dict[str, int], dict[str, int]]:
    """Indices kept, classes left out (below the minimum), classes subsampled (above the max)."""
    if min_per_class < 2:
        raise TrainingDataError("min_per_class must be at least 2 (one to train, one to check)")
    if max_per_class < min_per_class:
        raise TrainingDataError("max_per_class must be at least min_per_class")
    counts = Counter(labels)
    rng = np.random.default_rng(seed)
    excluded = {k: n for k, n in sorted(counts.items()) if n < min_per_class}
    subsampled = {k: n for k, n in sorted(counts.items()) if n > max_per_class}
    keep: list[int] = []
    for label in sorted(counts):
        if label in excluded:
            continue
        idx = [i for i, lab in enumerate(labels) if lab == label]
        if label in subsampled:
            idx = sorted(int(i) for i in rng.choice(idx, size=max_per_class, replace=False))
        keep.extend(idx)
    return sorted(keep), excluded, subsampled


def stratified_split(
    labels: Sequence[str], val_fraction: float, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Train and validation indices with every class on both sides (at least one each)."""
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    for label in sorted(set(labels)):
        idx = np.array([i for i, lab in enumerate(labels) if lab == label])
        rng.shuffle(idx)
        n_val = min(len(idx) - 1, max(1, round(len(idx) * val_fraction)))
        val.extend(int(i) for i in idx[:n_val])
        train.extend(int(i) for i in idx[n_val:])
    return sorted(train), sorted(val)


# --------------------------------------------------------------------------- fit / evaluate


def fit_head(x: FloatArray, y: Sequence[str], c: float = 10.0, seed: int = 0) -> Any:
    """A multinomial logistic regression over L2-normalised embeddings."""
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced", random_state=seed)
    model.fit(np.asarray(x, np.float64), np.asarray(y))
    return model


def head_weights(model: Any) -> tuple[FloatArray, FloatArray]:
    """``W [C, D]`` and ``B [C]`` with ``softmax(x @ W.T + B) == model.predict_proba(x)``.

    A binary sklearn model has one row (``sigmoid(z)``); it becomes ``[0, z]``, whose softmax
    is ``[1 - sigmoid(z), sigmoid(z)]``.
    """
    coef = np.asarray(model.coef_, np.float64)
    intercept = np.asarray(model.intercept_, np.float64)
    if len(model.classes_) == 2 and coef.shape[0] == 1:
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    return coef.astype(np.float32), intercept.astype(np.float32)


def evaluate(
    model: Any, x_val: FloatArray, y_val: Sequence[str], y_train: Sequence[str]
) -> Evaluation:
    from sklearn.metrics import (  # type: ignore[import-untyped]
        confusion_matrix,
        precision_recall_fscore_support,
    )

    labels = [str(c) for c in model.classes_]
    pred = model.predict(np.asarray(x_val, np.float64))
    p, r, f, s = precision_recall_fscore_support(y_val, pred, labels=labels, zero_division=0)
    cm = confusion_matrix(y_val, pred, labels=labels)
    majority = Counter(y_train).most_common(1)[0][0]
    y_arr = np.asarray(y_val)
    return Evaluation(
        labels=labels,
        per_class=[
            ClassReport(lab, float(p[i]), float(r[i]), float(f[i]), int(s[i]))
            for i, lab in enumerate(labels)
        ],
        confusion=[[int(v) for v in row] for row in cm],
        accuracy=float(np.mean(pred == y_arr)),
        baseline_accuracy=float(np.mean(y_arr == majority)),
        baseline_label=str(majority),
        macro_f1=float(np.mean(f)),
        n_train=len(y_train),
        n_validation=len(y_val),
    )


# --------------------------------------------------------------------------- outputs


def export_head_onnx(model: Any, path: Path) -> Path:
    """The fitted scikit-learn head as ONNX, in the species stage's head format."""
    w, b = head_weights(model)
    return write_head_onnx(w, b, path)


def write_head_onnx(
    weights: FloatArray, bias: FloatArray, path: Path, producer: str = "trapflow-train"
) -> Path:
    """``embedding [N, D] -> Gemm(W [C, D], B [C], transB=1) -> Softmax(axis=1) ->
    probabilities [N, C]``: the head format of docs/models.md."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.asarray(weights, np.float32)
    b = np.asarray(bias, np.float32)
    nodes = [
        helper.make_node("Gemm", ["embedding", "W", "B"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "species_head",
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", w.shape[1]])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", w.shape[0]])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=producer
    )
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    return path


def write_confusion_png(evaluation: Evaluation, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = evaluation.labels
    cm = np.asarray(evaluation.confusion)
    size = max(4.0, 0.6 * len(labels) + 2.5)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    top = cm.max() if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            colour = "white" if top and cm[i, j] > top / 2 else "black"
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=colour)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def report_markdown(result: TrainResult) -> str:
    ev = result.evaluation
    lines = [
        f"# {result.model_id}",
        "",
        f"Validation accuracy **{ev.accuracy:.3f}** vs majority baseline "
        f"{ev.baseline_accuracy:.3f} (always '{ev.baseline_label}'); macro F1 {ev.macro_f1:.3f}.",
        f"{ev.n_train} training and {ev.n_validation} held-out images.",
        "",
        "| label | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {c.label} | {c.precision:.3f} | {c.recall:.3f} | {c.f1:.3f} | {c.support} |"
        for c in ev.per_class
    ]
    lines += ["", "Confusion matrix (rows true, columns predicted): confusion.png", ""]
    if result.whole_frame:
        lines.append(
            f"{result.whole_frame} image(s) had no animal box >= the minimum confidence; "
            "their whole frame was used."
        )
    if result.excluded_classes:
        lines.append("Left out (fewer images than the minimum): " + ", ".join(
            f"{k} ({n})" for k, n in result.excluded_classes.items()
        ))  # fmt: skip
    if result.subsampled_classes:
        lines.append("Subsampled (more than the maximum): " + ", ".join(
            f"{k} ({n})" for k, n in result.subsampled_classes.items()
        ))  # fmt: skip
    if result.skipped:
        lines += ["", f"Skipped images ({len(result.skipped)}):", ""]
        lines += [f"* {s.path} [{s.label}]: {s.reason}" for s in result.skipped]
    return "\n".join(lines) + "\n"


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
