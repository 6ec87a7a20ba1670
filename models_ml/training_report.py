"""Evaluation and outputs for :mod:`models_ml.training`: fit, evaluate, export, report.

:func:`fit_head` fits a scikit-learn logistic regression on the embeddings; :func:`evaluate`
scores it on the held-out images (per-class precision/recall/F1/support, confusion matrix,
accuracy against the majority-class baseline); :func:`export_head_onnx` writes it in the head
format the species stage reads (docs/models.md); :func:`write_confusion_png` and
:func:`report_markdown` describe the result.

Pure library: no Prefect, no Streamlit; scikit-learn, onnx and matplotlib are imported only
when called.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .training_data import FloatArray, Skipped

OPSET = 17
IR_VERSION = 9


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
    unseen: Evaluation | None = None  # on the test photos (never trained on), when given
    untested_classes: list[str] = field(default_factory=list)  # one group only: not held out
    split: str = "burst"


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
        f"Validation accuracy **{ev.accuracy:.3f}** (split by {result.split}) vs majority "
        f"baseline {ev.baseline_accuracy:.3f} (always '{ev.baseline_label}'); macro F1 "
        f"{ev.macro_f1:.3f}.",
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
    if result.unseen is not None:
        u = result.unseen
        lines += [
            f"Unseen photos (never trained on, classified by the species stage's rule): accuracy "
            f"**{u.accuracy:.3f}** on {u.n_validation} photos vs baseline "
            f"{u.baseline_accuracy:.3f}; macro F1 {u.macro_f1:.3f}.",
            "",
        ]
    if result.untested_classes:
        lines.append(
            f"Not in the held-out set (a single {result.split}): "
            + ", ".join(result.untested_classes)
        )
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
