"""Species classification of animal crops: preprocess -> predict -> postprocess.

Two implementations behind one interface (:class:`SpeciesClassifier`):

* :class:`EmbeddingHeadClassifier`: the embedder ``mobilenetv2_imagenet_features`` turns each
  crop into a 1280-d vector, L2-normalised, and a small *head* ONNX maps it to probabilities
  over its labels. Heads are what the training issue produces; the format is fixed here and
  in docs/models.md: ``head.onnx`` with input ``embedding`` float32 ``[N, 1280]`` and output
  ``probabilities`` float32 ``[N, C]``, plus ``labels.txt`` (line i = column i).
* :class:`OnnxCropClassifier`: a user-supplied crop classifier (SpeciesNet-style: crop in,
  logits or probabilities over a label file out).

:func:`load_classifier` builds either from a :class:`~models_ml.registry.ModelSpec`
(``output.decoder`` ``embedding_head``, ``softmax`` or ``probabilities``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image

from ._types import BBox, Detection
from .registry import InputSpec, ModelSpec
from .session import create_session

FloatArray = npt.NDArray[np.float32]

#: Decoders of crop classifiers: ``softmax`` = the model returns logits; ``probabilities`` =
#: it returns probabilities already; ``embedding_head`` = embedder + head (see module doc).
#: ``imagenet_groups`` = ImageNet-1k rolled up to coarse groups (GroupedCropClassifier).
CLASSIFIER_DECODERS = frozenset({"softmax", "probabilities", "embedding_head", "imagenet_groups"})
GROUPS_FILE = Path(__file__).with_name("imagenet_groups.toml")
CROP_CONTEXT = 0.1  # fraction of the box added on each side, as the person cue does
#: The crop of a photo without a box to classify (thumbnails, close-ups, dark night frames).
WHOLE_FRAME = BBox(0.0, 0.0, 1.0, 1.0)


# --------------------------------------------------------------------------- the one rule
# What the species stage classifies and what training embeds, so that a head classifies the
# photos it was trained on: every animal box of the animal detector at or above
# ``min_confidence`` (classification_min_confidence), its crop with CROP_CONTEXT; a photo with
# no such box is classified on its whole frame (training embeds the same). Whether anything in
# the photo counts stays the marts' rule: a whole-frame label on a box below the detection
# threshold, or on the classifier's own whole-image box, is stored but counts nowhere.


def box_is_classified(confidence: float, min_confidence: float) -> bool:
    """Whether an animal box is classified on its crop (else: the whole frame)."""
    return confidence >= min_confidence


@dataclass(frozen=True)
class Target:
    """One crop to classify: ``box`` is ``WHOLE_FRAME`` for the fallback; ``detection`` is the
    index of the box the label belongs to (for the fallback, the best animal box below the
    threshold, or None when the detector found no animal at all)."""

    box: BBox
    detection: int | None


def classification_targets(
    dets: Sequence[Detection], min_confidence: float, animal_model: str | None = None
) -> list[Target]:
    """The crops the species stage classifies in one photo (see the rule above)."""
    animal = [
        (i, d)
        for i, d in enumerate(dets)
        if d.category == "animal" and (animal_model is None or d.model == animal_model)
    ]
    boxes = [
        Target(d.bbox, i) for i, d in animal if box_is_classified(d.confidence, min_confidence)
    ]
    if boxes:
        return boxes
    best = max(animal, key=lambda item: item[1].confidence, default=None)
    return [Target(WHOLE_FRAME, best[0] if best is not None else None)]


MAX_CROP_BATCH = 16


@dataclass(frozen=True)
class Prediction:
    """One ranked label for one crop."""

    label: str
    probability: float
    rank: int  # 1 = top


class SpeciesClassifier(Protocol):
    """What the pipeline needs from a species classifier."""

    @property
    def model_id(self) -> str: ...

    labels: tuple[str, ...]

    def preprocess(self, img: Image.Image, boxes: Sequence[BBox]) -> FloatArray: ...

    def predict(self, batch: FloatArray) -> FloatArray: ...

    def classify(
        self, img: Image.Image, boxes: Sequence[BBox], top_k: int = 3
    ) -> list[list[Prediction]]: ...


def crop_batch(
    img: Image.Image, boxes: Sequence[BBox], inp: InputSpec, context: float = CROP_CONTEXT
) -> FloatArray:
    """The crops of ``boxes`` (plus ``context`` around each) as a float32 ``[N, 3, H, W]`` batch.

    Each crop is resized to the model input (no letterbox), converted to the model's channel
    order and scaled: ``imagenet`` = x/255 then (x - mean)/std, ``0-1`` = x/255, ``0-255``.
    """
    width, height = img.size
    size = (int(inp.size[0]), int(inp.size[1]))
    out = np.empty((len(boxes), size[1], size[0], 3), dtype=np.uint8)
    for i, b in enumerate(boxes):
        x0 = max(0.0, (b.x - context * b.w) * width)
        y0 = max(0.0, (b.y - context * b.h) * height)
        x1 = min(float(width), (b.x + b.w * (1 + context)) * width)
        y1 = min(float(height), (b.y + b.h * (1 + context)) * height)
        box = (int(x0), int(y0), max(int(x1), int(x0) + 1), max(int(y1), int(y0) + 1))
        out[i] = np.asarray(img.resize(size, Image.Resampling.BILINEAR, box=box), np.uint8)
    arr = out.astype(np.float32)  # [N, H, W, 3], vectorised from here on
    if inp.channels == "BGR":
        arr = arr[..., ::-1]
    if inp.scale == "imagenet":
        mean = np.asarray(inp.mean, np.float32) * 255.0
        std = np.asarray(inp.std, np.float32) * 255.0
        arr = (arr - mean) / std
    elif inp.scale == "0-1":
        arr = arr / np.float32(255.0)
    elif inp.scale != "0-255":
        raise ValueError(f"unsupported input scale {inp.scale!r} (imagenet, 0-1, 0-255)")
    return np.ascontiguousarray(arr.transpose(0, 3, 1, 2), dtype=np.float32)


def softmax(logits: npt.ArrayLike) -> FloatArray:
    x = np.asarray(logits, np.float64)
    x = x - x.max(axis=1, keepdims=True)
    e = np.exp(x)
    out: FloatArray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


def top_k(probs: FloatArray, labels: Sequence[str], k: int) -> list[list[Prediction]]:
    """The ``k`` most likely labels of each row, highest first (ties: lower index first)."""
    k = max(1, min(k, probs.shape[1]))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [
        [Prediction(labels[int(j)], float(row[j]), rank) for rank, j in enumerate(idx, start=1)]
        for row, idx in zip(probs, order, strict=True)
    ]


def _run(session: Any, output: str, inp: str, batch: FloatArray) -> FloatArray:
    outs = []
    for start in range(0, len(batch), MAX_CROP_BATCH):
        (out,) = session.run([output], {inp: batch[start : start + MAX_CROP_BATCH]})
        outs.append(np.asarray(out, np.float32))
    return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)


def _io_name(given: str, args: Sequence[Any], model: str, what: str) -> str:
    if given:
        return given
    if len(args) != 1:
        raise ValueError(
            f"{model}: the model has {len(args)} {what}s; set {what}_name in its entry"
        )
    return str(args[0].name)


def _check_labels(model: str, session: Any, output: str, labels: Sequence[str]) -> None:
    dims = {o.name: o.shape for o in session.get_outputs()}
    if output not in dims:
        raise ValueError(f"{model}: no output {output!r} (outputs: {sorted(dims)})")
    classes = dims[output][-1]
    if isinstance(classes, int) and classes != len(labels):
        raise ValueError(
            f"{model}: the model gives {classes} classes but its label file has {len(labels)} "
            "lines; use the label file that was exported with the model"
        )
    if not labels:
        raise ValueError(f"{model}: no labels (labels or labels_file in its entry)")


class _CropClassifierBase:
    """What both classifiers share: the id, and classify = preprocess -> predict -> top-k."""

    spec: ModelSpec
    labels: tuple[str, ...]

    @property
    def model_id(self) -> str:
        return self.spec.model_id

    def preprocess(self, img: Image.Image, boxes: Sequence[BBox]) -> FloatArray:
        raise NotImplementedError

    def predict(self, batch: FloatArray) -> FloatArray:
        raise NotImplementedError

    def classify(
        self, img: Image.Image, boxes: Sequence[BBox], top_k: int = 3
    ) -> list[list[Prediction]]:
        if not boxes:
            return []
        return postprocess(self.predict(self.preprocess(img, boxes)), self.labels, top_k)


class OnnxCropClassifier(_CropClassifierBase):
    """A crop classifier ONNX (logits or probabilities over ``labels``)."""

    def __init__(self, spec: ModelSpec, session: Any, labels: Sequence[str]) -> None:
        if spec.output.decoder not in ("softmax", "probabilities"):
            raise ValueError(f"{spec.name}: decoder must be softmax or probabilities")
        self.spec = spec
        self.session = session
        self.labels = tuple(labels)
        self._in = _io_name(spec.input.name, session.get_inputs(), spec.name, "input")
        self._out = _io_name(spec.output.name, session.get_outputs(), spec.name, "output")
        _check_labels(spec.name, session, self._out, self.labels)

    def preprocess(self, img: Image.Image, boxes: Sequence[BBox]) -> FloatArray:
        return crop_batch(img, boxes, self.spec.input)

    def predict(self, batch: FloatArray) -> FloatArray:
        """Probabilities ``[N, C]``."""
        out = _run(self.session, self._out, self._in, batch)
        return softmax(out) if self.spec.output.decoder == "softmax" else out


def group_matrix(path: Path = GROUPS_FILE, n_classes: int = 1000) -> tuple[tuple[str, ...], Any]:
    """(group names + ``animal``, a 0/1 matrix ``[n_classes, groups + 1]``) from the groups
    file; a class in no group goes to the last column, ``animal``."""
    with path.open("rb") as fh:
        groups = dict(tomllib.load(fh)["groups"])
    names = (*groups, "animal")
    matrix = np.zeros((n_classes, len(names)), np.float32)
    matrix[:, -1] = 1.0
    for j, ranges in enumerate(groups.values()):
        for first, last in ranges:
            matrix[first : last + 1, :] = 0.0
            matrix[first : last + 1, j] = 1.0
    return names, matrix


class GroupedCropClassifier(_CropClassifierBase):
    """An ImageNet-1k crop classifier whose probabilities are summed into coarse animal groups
    (``imagenet_groups.toml``: cats, dogs and foxes, deer and antelopes, ...); what falls in no
    group is ``animal``. Labels are the group names (docs/models.md gives its accuracy)."""

    def __init__(self, spec: ModelSpec, session: Any, imagenet_labels: Sequence[str]) -> None:
        self.spec = spec
        self.session = session
        self._in = _io_name(spec.input.name, session.get_inputs(), spec.name, "input")
        self._out = _io_name(spec.output.name, session.get_outputs(), spec.name, "output")
        _check_labels(spec.name, session, self._out, imagenet_labels)
        self.labels, self._groups = group_matrix(n_classes=len(imagenet_labels))

    def preprocess(self, img: Image.Image, boxes: Sequence[BBox]) -> FloatArray:
        return crop_batch(img, boxes, self.spec.input)

    def predict(self, batch: FloatArray) -> FloatArray:
        """Group probabilities ``[N, groups + 1]`` (softmax over ImageNet, then summed)."""
        probs = softmax(_run(self.session, self._out, self._in, batch))
        out: FloatArray = (probs @ self._groups).astype(np.float32)
        return out


class EmbeddingHeadClassifier(_CropClassifierBase):
    """Embedder (L2-normalised 1280-d) + head ONNX (``embedding`` -> ``probabilities``)."""

    def __init__(
        self,
        spec: ModelSpec,
        head_session: Any,
        labels: Sequence[str],
        embedder_spec: ModelSpec,
        embedder_session: Any,
    ) -> None:
        self.spec = spec
        self.embedder_spec = embedder_spec
        self.head = head_session
        self.embedder = embedder_session
        self.labels = tuple(labels)
        self._emb_in = _io_name(
            embedder_spec.input.name, embedder_session.get_inputs(), embedder_spec.name, "input"
        )
        self._emb_out = _io_name(
            embedder_spec.output.name, embedder_session.get_outputs(), embedder_spec.name, "output"
        )
        self._head_in = _io_name(spec.input.name, head_session.get_inputs(), spec.name, "input")
        self._head_out = _io_name(spec.output.name, head_session.get_outputs(), spec.name, "output")
        _check_labels(spec.name, head_session, self._head_out, self.labels)

    def preprocess(self, img: Image.Image, boxes: Sequence[BBox]) -> FloatArray:
        return crop_batch(img, boxes, self.embedder_spec.input)

    def embed(self, batch: FloatArray) -> FloatArray:
        """L2-normalised embeddings ``[N, D]``."""
        emb = _run(self.embedder, self._emb_out, self._emb_in, batch).reshape(len(batch), -1)
        norm = np.linalg.norm(emb, axis=1, keepdims=True)
        out: FloatArray = (emb / np.maximum(norm, 1e-12)).astype(np.float32)
        return out

    def predict(self, batch: FloatArray) -> FloatArray:
        """Probabilities ``[N, C]`` from the head."""
        return self.predict_embeddings(self.embed(batch))

    def predict_embeddings(self, emb: FloatArray) -> FloatArray:
        """Probabilities ``[N, C]`` of embeddings already computed (a cache, a relabel)."""
        return _run(self.head, self._head_out, self._head_in, np.asarray(emb, np.float32))

    @property
    def embedder_id(self) -> str:
        return self.embedder_spec.model_id


def postprocess(probs: FloatArray, labels: Sequence[str], k: int) -> list[list[Prediction]]:
    """Top-``k`` predictions per crop."""
    return top_k(np.asarray(probs, np.float32), labels, k)


def read_labels(path: Path) -> tuple[str, ...]:
    """One label per line (blank lines ignored)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip())


def _labels(spec: ModelSpec, model_dir: Path) -> tuple[str, ...]:
    if spec.labels:
        return spec.labels
    if spec.labels_file:
        return read_labels(spec.files_dir(model_dir) / spec.labels_file)
    raise ValueError(f"{spec.name}: no labels (labels or labels_file in its entry)")


def load_classifier(
    spec: ModelSpec,
    manifest: Mapping[str, ModelSpec],
    model_dir: Path,
    *,
    intra_op_threads: int | None = None,
    providers: Sequence[str] | None = None,
) -> OnnxCropClassifier | EmbeddingHeadClassifier | GroupedCropClassifier:
    """The classifier for ``spec`` with its files verified beforehand (see ``registry``)."""
    if spec.kind != "classifier" or spec.output.decoder not in CLASSIFIER_DECODERS:
        raise ValueError(
            f"model {spec.name!r} is a {spec.kind} with decoder {spec.output.decoder!r}, not a "
            f"species classifier ({', '.join(sorted(CLASSIFIER_DECODERS))})"
        )
    labels = _labels(spec, model_dir)
    session = create_session(
        spec.files_dir(model_dir) / spec.file,
        providers=providers,
        intra_op_threads=intra_op_threads,
    )
    if spec.output.decoder == "imagenet_groups":
        return GroupedCropClassifier(spec, session, labels)
    if spec.output.decoder != "embedding_head":
        return OnnxCropClassifier(spec, session, labels)
    if not spec.embedder or spec.embedder not in manifest:
        raise ValueError(
            f"{spec.name}: embedder {spec.embedder!r} is not in the registry; a species head "
            "names its embedder (embedder = 'mobilenetv2_imagenet_features')"
        )
    emb_spec = manifest[spec.embedder]
    emb_session = create_session(
        emb_spec.files_dir(model_dir) / emb_spec.file,
        providers=providers,
        intra_op_threads=intra_op_threads,
    )
    return EmbeddingHeadClassifier(spec, session, labels, emb_spec, emb_session)
