"""Tiny generated ONNX models and specs for the detector tests (built into tmp_path at test time).

Each model ignores its pixels and returns a fixed tensor of the exact layout the real model
gives (``[N, A, 5 + C]``), repeated over the batch, so the whole session path can be checked
against hand-computed detections.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models_ml.registry import InputSpec, ModelSpec, OutputSpec

OPSET = 17
IR_VERSION = 9


def fixed_output_model(
    path: Path,
    output: np.ndarray,
    *,
    size: tuple[int, int],
    dynamic_batch: bool = True,
    input_name: str = "images",
    output_name: str = "output",
) -> Path:
    """Write a model ``images [N,3,H,W] -> output [N, A, K]`` that returns ``output`` per image.

    ``output`` is ``[A, K]`` (or ``[1, A, K]``). With ``dynamic_batch`` False the input and
    output batch dimension is fixed at 1, like the YOLOX-nano export.
    """
    table = np.asarray(output, dtype=np.float32).reshape(1, *np.asarray(output).shape[-2:])
    anchors, cols = table.shape[1:]
    width, height = size
    batch: str | int = "N" if dynamic_batch else 1
    nodes = [
        helper.make_node("Shape", [input_name], ["batch"], start=0, end=1),
        helper.make_node("Concat", ["batch", "rest"], ["out_shape"], axis=0),
        helper.make_node("Expand", ["table", "out_shape"], [output_name]),
    ]
    graph = helper.make_graph(
        nodes,
        "fixed_output",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, 3, height, width])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, anchors, cols])],
        initializer=[
            numpy_helper.from_array(table, "table"),
            numpy_helper.from_array(np.array([anchors, cols], dtype=np.int64), "rest"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="trapflow-tests"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def make_spec(
    name: str = "tiny",
    *,
    decoder: str = "yolov5",
    size: tuple[int, int] = (64, 64),
    channels: str = "RGB",
    pad_value: int = 0,
    dynamic_batch: bool = True,
    file: str | None = None,
    labels: tuple[str, ...] = (),
    labels_file: str | None = None,
    groups_file: str | None = None,
    categories: dict[str, str] | None = None,
    nms_iou: float = 0.45,
    version: str = "0",
) -> ModelSpec:
    """A detector :class:`ModelSpec` like the manifest's, for a generated model."""
    return ModelSpec(
        name=name,
        version=version,
        kind="detector",
        file=file or f"{name}/{name}.onnx",
        sha256="0" * 64,
        size=0,
        licence="test",
        input=InputSpec(
            name="images",
            size=size,
            channels=channels,
            scale="0-255",
            pad_value=pad_value,
            dynamic_batch=dynamic_batch,
        ),
        output=OutputSpec(name="output", decoder=decoder, nms_iou=nms_iou),
        labels=labels,
        labels_file=labels_file,
        groups_file=groups_file,
        categories=dict(categories or {}),
    )


def raw_row(
    box: tuple[float, float, float, float], obj: float, classes: list[float]
) -> list[float]:
    """One anchor row: cx, cy, w, h, objectness, class scores."""
    return [*box, obj, *classes]


def head_model(path: Path, weights: np.ndarray, bias: np.ndarray | None = None) -> Path:
    """A species head: ``embedding [N, D] -> probabilities [N, C] = softmax(x @ W.T + b)``.

    ``weights`` is ``[C, D]`` (one row per label), the agreed head format (docs/models.md).
    """
    from models_ml.training import write_head_onnx

    w = np.asarray(weights, dtype=np.float32)
    b = np.zeros(w.shape[0], np.float32) if bias is None else np.asarray(bias, np.float32)
    return write_head_onnx(w, b, path, producer="trapflow-tests")


def channel_mean_classifier(path: Path, size: tuple[int, int] = (32, 32)) -> Path:
    """A crop classifier ``input [N,3,H,W] -> logits [N,3]``: 10 x the mean of each channel.

    With 0-1 scaling a red crop gives the highest logit for class 0, green 1, blue 2.
    """
    width, height = size
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["mean"], axes=[2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "ten"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "channel_mean",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, height, width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        initializer=[
            numpy_helper.from_array(np.array(10.0, dtype=np.float32), "ten"),
        ],
    )
    return _save(graph, path)


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="trapflow-tests"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


# MegaDetector v5 and v6 ONNX exports with known boxes (tests/flows/pipeline/test_user_detectors.py)

#: MegaDetector's classes in output order; raw.detections stores them as category ids 1, 2, 3.
MD_CLASSES = ("animal", "person", "vehicle")


def mdv5_table(
    rows: list[tuple[tuple[float, float, float, float], float, list[float]]],
    *,
    empty_anchors: int = 0,
) -> np.ndarray:
    """MegaDetector v5's YOLOv5 layout ``[A, 5 + 3]``: cx, cy, w, h in input pixels,
    objectness, then the animal/person/vehicle probabilities; ``empty_anchors`` zero rows."""
    table = [raw_row(box, obj, classes) for box, obj, classes in rows]
    table += [[0.0] * (5 + len(MD_CLASSES))] * empty_anchors
    return np.array(table, np.float32)


def mdv6_table(
    rows: list[tuple[tuple[float, float, float, float], list[float]]],
    *,
    empty_anchors: int = 0,
) -> np.ndarray:
    """MegaDetector v6's ultralytics (YOLOv8/v9/v10) layout ``[4 + 3, A]``: one column per
    anchor, cx, cy, w, h in input pixels then the class scores, no objectness."""
    table = [[*box, *scores] for box, scores in rows]
    table += [[0.0] * (4 + len(MD_CLASSES))] * empty_anchors
    return np.array(table, np.float32).T.copy()


def megadetector_onnx(path: Path, table: np.ndarray, *, size: tuple[int, int]) -> Path:
    """An export as YOLOv5's and ultralytics' ``export.py`` write it: input ``images``
    ``[1, 3, H, W]``, output ``output0`` ``[1, ...table.shape]``, fixed batch of one."""
    return fixed_output_model(
        path, table, size=size, dynamic_batch=False, input_name="images", output_name="output0"
    )
