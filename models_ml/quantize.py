"""INT8 detectors made here: onnxruntime's static quantisation, calibrated on your photos.

``trapflow models quantize mdlite_yolox_tiny`` (``flows/cli/models.py``) calls
:func:`quantize_detector`: the FP32 model's activation ranges are measured on calibration
photos preprocessed exactly as the detector does in a run (:func:`calibration_tensor`: open,
draft-decode to the model input, letterbox to float32 planes), then onnxruntime writes an INT8
copy next to the registry's models (``<model_dir>/int8/<name>.onnx``). It is never committed
nor downloaded: each machine makes its own. :func:`register_int8` records it, with its
SHA-256, in the registry of locally made models (``<model_dir>/trained/registry.toml``,
``models_ml.training.register_model``), which the pipeline merges into its registry like a
``[models.<name>]`` entry of trapflow.toml; ``animal_model = "mdlite_yolox_tiny_int8"`` picks it.

The calibration split (:func:`is_calibration`) is a hash of the photo's path, so it is the same
on every machine and for every subset of photos: a photo calibrates when the first byte of the
SHA-256 of its path (relative to the photo folder, ``/``-separated, as in the sample's
MANIFEST.csv) is below 256 / ``CALIBRATION_ONE_IN``. The others are held out: the agreement
figures (:func:`agreement`, ``bench/int8.py``) are measured only on them.

What is quantised (measured in ``bench/int8.py``, docs/models.md "INT8 detectors"): the QDQ
format, per-channel weights, every node except the box decoding after the head's last
convolutions (:func:`decode_tail`). The decoded output mixes pixel coordinates (0-640) and
probabilities (0-1) in one tensor, so one INT8 scale for it would flatten every score.

Pure library: no Prefect, no Streamlit; ``onnxruntime.quantization`` (and ``onnx``) are
imported only when quantising.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._boxes import box_iou
from ._imageops import ImageRejected, load_rgb
from ._types import Detection
from .registry import ModelSpec, sha256_file

__all__ = [
    "CALIBRATION_ONE_IN",
    "INT8_DIR",
    "Agreement",
    "Int8Model",
    "agreement",
    "calibration_photos",
    "calibration_tensor",
    "decode_tail",
    "int8_name",
    "int8_table",
    "is_calibration",
    "quantize_detector",
    "register_int8",
    "split_photos",
]

#: One photo in this many calibrates (by the hash of its path); the rest are held out.
CALIBRATION_ONE_IN = 4
#: Where the INT8 copies go, under the model folder.
INT8_DIR = "int8"
#: The formats and options :func:`quantize_detector` accepts (docs/models.md has the measures).
FORMATS = ("qdq", "qoperator")
EXCLUDES = ("none", "tail", "tail+convs", "tail+stem")
CALIBRATIONS = ("minmax", "percentile", "entropy")


def is_calibration(path: str) -> bool:
    """Whether the photo at ``path`` (relative, ``/``-separated) is a calibration photo."""
    digest = hashlib.sha256(path.replace("\\", "/").encode("utf-8")).digest()
    return digest[0] < 256 // CALIBRATION_ONE_IN


def split_photos(paths: Iterable[str]) -> tuple[list[str], list[str]]:
    """(calibration, held-out) photos, each in the given order."""
    calibration: list[str] = []
    held_out: list[str] = []
    for path in paths:
        (calibration if is_calibration(path) else held_out).append(path)
    return calibration, held_out


#: Photo files calibration may read (the decodable still formats).
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp"})


def calibration_photos(folder: Path, limit: int = 0) -> list[Path]:
    """The calibration photos under ``folder`` (:func:`is_calibration` of each path relative
    to it), in path order; at most ``limit`` when it is set."""
    folder = Path(folder)
    rel = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file()
    )
    chosen = [folder / p for p in split_photos(rel)[0]]
    return chosen[:limit] if limit else chosen


def int8_name(model: str) -> str:
    """The registered name of ``model``'s INT8 copy."""
    return f"{model}_int8"


def calibration_tensor(spec: ModelSpec, data: bytes) -> np.ndarray | None:
    """``[3, H, W]`` float32: one photo as the detector's input in a run, or None when it does
    not decode (the run would quarantine it)."""
    from ._imageops import letterbox_planes

    try:
        rgb = load_rgb(data, draft_size=spec.input.size)
    except ImageRejected:
        return None
    inp = spec.input
    arr, _, _ = letterbox_planes(
        np.asarray(rgb, dtype=np.uint8), inp.size, inp.pad_value, inp.placement, inp.channels
    )
    if inp.scale == "0-1":
        arr *= np.float32(1 / 255)
    return arr


class _Photos:
    """onnxruntime's CalibrationDataReader over photo files (one image per call)."""

    def __init__(self, spec: ModelSpec, files: Sequence[Path], input_name: str) -> None:
        self._spec, self._input = spec, input_name
        self._files = list(files)
        self.used = 0
        self._it: Iterator[dict[str, np.ndarray]] = self._feeds()

    def _feeds(self) -> Iterator[dict[str, np.ndarray]]:
        for file in self._files:
            arr = calibration_tensor(self._spec, Path(file).read_bytes())
            if arr is not None:
                self.used += 1
                yield {self._input: arr[np.newaxis]}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self.used = 0
        self._it = self._feeds()


def decode_tail(model: Any, include_last_convs: bool = False) -> list[str]:
    """Names of the nodes after the last convolutions (those with no Conv downstream): a
    YOLO head's box decoding and score layout. ``include_last_convs`` adds those convs."""
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    conv_below: dict[str, bool] = {}

    def has_conv_below(node: Any) -> bool:
        if node.name in conv_below:
            return conv_below[node.name]
        conv_below[node.name] = False  # a graph is acyclic; this guards the recursion only
        found = any(
            nxt.op_type == "Conv" or has_conv_below(nxt)
            for out in node.output
            for nxt in consumers.get(out, [])
        )
        conv_below[node.name] = found
        return found

    last_convs = [n for n in model.graph.node if n.op_type == "Conv" and not has_conv_below(n)]
    tail: list[str] = []
    seen: set[str] = set()
    stack = [out for conv in last_convs for out in conv.output]
    while stack:
        for nxt in consumers.get(stack.pop(), []):
            if nxt.name not in seen:
                seen.add(nxt.name)
                tail.append(nxt.name)
                stack.extend(nxt.output)
    if include_last_convs:
        tail += [c.name for c in last_convs]
    return tail


@dataclass(frozen=True)
class Int8Model:
    """An INT8 copy made by :func:`quantize_detector`."""

    path: Path
    sha256: str
    calibration_images: int
    quant_format: str
    per_channel: bool
    excluded_nodes: int


def quantize_detector(
    spec: ModelSpec,
    model_dir: Path,
    calibration: Sequence[Path],
    out: Path | None = None,
    *,
    quant_format: str = "qdq",
    per_channel: bool = True,
    exclude: str = "tail",
    calibrate: str = "percentile",
) -> Int8Model:
    """Quantise the detector ``spec`` (its FP32 file under ``model_dir``) to INT8, calibrated
    on the photo files ``calibration``.

    ``calibrate``: each tensor's range from the 99.999th percentile of its values
    (``percentile``), their ``minmax`` or ``entropy``. ``exclude``: ``tail`` keeps the box
    decoding in float (:func:`decode_tail`), ``tail+convs`` the last convolutions too,
    ``tail+stem`` the first convolution too, ``none`` quantises everything. Writes ``out``
    (default ``<model_dir>/int8/<name>.onnx``)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if spec.kind != "detector":
        raise ValueError(f"{spec.name} is a {spec.kind}; only detectors are quantised")
    if quant_format not in FORMATS:
        raise ValueError(f"quant_format must be one of {FORMATS}, got {quant_format!r}")
    if exclude not in EXCLUDES:
        raise ValueError(f"exclude must be one of {EXCLUDES}, got {exclude!r}")
    if calibrate not in CALIBRATIONS:
        raise ValueError(f"calibrate must be one of {CALIBRATIONS}, got {calibrate!r}")
    source = spec.files_dir(model_dir) / spec.file
    out = Path(out) if out else Path(model_dir) / INT8_DIR / f"{int8_name(spec.name)}.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="trapflow-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        input_name = spec.input.name or model.graph.input[0].name
        excluded = [] if exclude == "none" else decode_tail(model, "convs" in exclude)
        if "stem" in exclude:  # the first convolution, on the 0-255 pixels
            excluded.append(next(n.name for n in model.graph.node if n.op_type == "Conv"))
        reader = _Photos(spec, calibration, input_name)
        partial = out.with_suffix(".part.onnx")
        quantize_static(
            str(prepared),
            str(partial),
            reader,
            quant_format=QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method={
                "minmax": CalibrationMethod.MinMax,
                "percentile": CalibrationMethod.Percentile,
                "entropy": CalibrationMethod.Entropy,
            }[calibrate],
            nodes_to_exclude=excluded,
            extra_options={"CalibTensorRangeSymmetric": False},
        )
        if reader.used == 0:
            partial.unlink(missing_ok=True)
            raise ValueError("no calibration photo could be decoded; give other photos")
        partial.replace(out)
    return Int8Model(
        path=out,
        sha256=sha256_file(out),
        calibration_images=reader.used,
        quant_format=quant_format,
        per_channel=per_channel,
        excluded_nodes=len(excluded),
    )


def int8_table(spec: ModelSpec, made: Int8Model) -> dict[str, Any]:
    """The ``[models.<name>]`` table (trapflow.toml's format) of ``spec``'s INT8 copy: the
    same input contract, decoder, labels and categories as the FP32 model."""
    inp, out = spec.input, spec.output
    return {
        "file": str(made.path.absolute()),
        "sha256": made.sha256,
        "decoder": out.decoder,
        "version": f"{spec.version}-int8-{made.sha256[:8]}",
        "licence": spec.licence,
        "description": (
            f"{spec.name} quantised to INT8 here ({made.quant_format}, per-channel "
            f"{made.per_channel}, {made.calibration_images} calibration photos)"
        ),
        "task": "int8",
        "source_model": spec.name,
        "input_name": inp.name,
        "output_name": out.name,
        "size": list(inp.size),
        "channels": inp.channels,
        "scale": inp.scale,
        "pad_value": inp.pad_value,
        "placement": inp.placement,
        "dynamic_batch": inp.dynamic_batch,
        "nms_iou": out.nms_iou,
        "labels": list(spec.labels),
        "categories": dict(spec.categories),
    }


def register_int8(model_dir: Path, spec: ModelSpec, made: Int8Model) -> str:
    """Record ``made`` (with its SHA-256) in the registry of models made here; its name."""
    from .training import register_model

    name = int8_name(spec.name)
    register_model(model_dir, name, int8_table(spec, made))
    return name


@dataclass(frozen=True)
class Agreement:
    """How far two detectors' counted boxes agree on the same photos."""

    reference_boxes: int  # boxes of the reference (FP32) at or above the threshold
    candidate_boxes: int  # the same for the candidate (INT8)
    reference_matched: int  # reference boxes with a candidate box of IoU >= iou, same category
    candidate_matched: int
    images: int
    images_same_counts: int  # photos with the same number of counted boxes per category

    @property
    def recall(self) -> float:
        """Fraction of the reference's boxes the candidate also has (1.0 when none)."""
        return self.reference_matched / self.reference_boxes if self.reference_boxes else 1.0

    @property
    def precision(self) -> float:
        """Fraction of the candidate's boxes the reference also has (1.0 when none)."""
        return self.candidate_matched / self.candidate_boxes if self.candidate_boxes else 1.0


def _xyxy(dets: Sequence[Detection]) -> np.ndarray:
    return np.array(
        [[d.bbox.x, d.bbox.y, d.bbox.x + d.bbox.w, d.bbox.y + d.bbox.h] for d in dets],
        dtype=np.float32,
    ).reshape(-1, 4)


def _matched(a: Sequence[Detection], b: Sequence[Detection], iou: float) -> int:
    """Boxes of ``a`` with a box of ``b`` of the same category at IoU >= ``iou``."""
    if not a or not b:
        return 0
    boxes_b = _xyxy(b)
    cats_b = np.array([d.category for d in b])
    hits = 0
    for det, box in zip(a, _xyxy(a), strict=True):
        same = cats_b == det.category
        hits += bool(same.any() and (box_iou(box, boxes_b[same]) >= iou).any())
    return hits


def agreement(
    reference: Sequence[Sequence[Detection]],
    candidate: Sequence[Sequence[Detection]],
    thresholds: dict[str, float],
    iou: float = 0.5,
) -> Agreement:
    """Per photo, the boxes of each list at or above their category's counting threshold
    (``thresholds``: category -> threshold, the marts' ``detection_thresholds``), matched both
    ways by IoU >= ``iou`` and the same category."""
    if len(reference) != len(candidate):
        raise ValueError(f"{len(reference)} reference photos but {len(candidate)} candidates")

    def counted(dets: Sequence[Detection]) -> list[Detection]:
        return [d for d in dets if d.confidence >= thresholds.get(d.category, 1.1)]

    ref_n = cand_n = ref_hit = cand_hit = same = 0
    for ref_all, cand_all in zip(reference, candidate, strict=True):
        ref, cand = counted(ref_all), counted(cand_all)
        ref_n += len(ref)
        cand_n += len(cand)
        ref_hit += _matched(ref, cand, iou)
        cand_hit += _matched(cand, ref, iou)
        same += sorted(d.category for d in ref) == sorted(d.category for d in cand)
    return Agreement(ref_n, cand_n, ref_hit, cand_hit, len(reference), same)
