"""YOLOX-family object detectors run with onnxruntime: preprocess -> predict -> postprocess.

One class covers every detector in the manifest; ``spec.output.decoder`` picks the layout:

* ``yolox_decoded``: ``[N, A, 5 + C]`` with cx, cy, w, h already in input pixels, then
  objectness and class scores (sigmoided). MegadetectorLite.
* ``yolov5``: the same layout as exported by YOLOv5 (MegaDetector v5); without labels in the
  spec the classes are MegaDetector's 0 animal, 1 person, 2 vehicle.
* ``yolov8``: ultralytics exports (MegaDetector v6 YOLOv9/YOLOv10-c): ``[N, 4 + C, A]``
  with cx, cy, w, h in input pixels and class scores, no objectness (taken as 1).
* ``yolox_raw``: the raw YOLOX head ``[N, A, 5 + C]``; boxes are decoded here over the
  stride-8/16/32 grids (``xy = (xy + grid) * stride``, ``wh = exp(wh) * stride``).

Score = objectness x best class score; per-class NMS; at most ``max_detections`` boxes per
image; boxes are normalised to the image that was passed in (display orientation).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from ._boxes import batched_nms, cxcywh_to_xyxy, to_normalised_xywh
from ._imageops import letterbox_planes
from ._types import CATEGORY_IDS, BBox, Detection, PreprocessedImage
from .errors import ModelConfigError
from .registry import ModelSpec
from .session import create_session

#: MegaDetector v5/v6 class order (model output index -> class name = category).
MD_CLASS_NAMES: tuple[str, ...] = ("animal", "person", "vehicle")

DECODERS = frozenset({"yolox_decoded", "yolox_raw", "yolov5", "yolov8"})
DEFAULT_CONF_FLOOR = 0.05
DEFAULT_MAX_DETECTIONS = 100
_MAX_LOG_WH = 50.0  # exp() input cap for raw-head widths/heights (float32 overflows at ~88)

FloatArray = npt.NDArray[np.float32]


@lru_cache(maxsize=16)
def _grid(width: int, height: int, strides: tuple[int, ...]) -> tuple[FloatArray, FloatArray]:
    """Per-anchor grid cell (x, y) and stride of a raw YOLOX head at this input size.

    Anchors run over the strides in order, each grid row by row (index = y * grid_w + x).
    The arrays are read-only because they are shared between threads.
    """
    cells: list[FloatArray] = []
    steps: list[FloatArray] = []
    for stride in strides:
        gw, gh = width // stride, height // stride
        ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32))
        steps.append(np.full((gw * gh, 1), stride, dtype=np.float32))
    grid, stride_col = np.concatenate(cells), np.concatenate(steps)
    grid.flags.writeable = False
    stride_col.flags.writeable = False
    return grid, stride_col


def decode_yolox_raw(
    raw: FloatArray,
    width: int,
    height: int,
    strides: Sequence[int],
    anchors: npt.NDArray[np.intp] | None = None,
) -> FloatArray:
    """Decode the box columns of a raw YOLOX head ``[A, 5 + C]`` (``raw`` is not modified).

    Returns a copy with cx, cy, w, h in input pixels; the score columns are unchanged.
    ``anchors``: ``raw`` holds only these rows of the head (their anchor indices).
    """
    grid, stride = _grid(width, height, tuple(strides))
    if anchors is None:
        _check_anchor_count(raw.shape[0], width, height, strides)
    else:
        if anchors.size and (anchors.min() < 0 or anchors.max() >= grid.shape[0]):
            raise ValueError(f"anchor index out of range for {grid.shape[0]} anchors")
        if raw.shape[0] != anchors.shape[0]:
            raise ValueError(f"{raw.shape[0]} rows but {anchors.shape[0]} anchor indices")
        grid, stride = grid[anchors], stride[anchors]
    out = np.array(raw, dtype=np.float32, copy=True)
    out[:, 0:2] = (out[:, 0:2] + grid) * stride
    out[:, 2:4] = np.exp(np.minimum(out[:, 2:4], _MAX_LOG_WH)) * stride
    return out


def _check_anchor_count(rows: int, width: int, height: int, strides: Sequence[int]) -> None:
    expected = _grid(width, height, tuple(strides))[0].shape[0]
    if rows != expected:
        raise ValueError(
            f"raw head has {rows} anchors but a {width}x{height} input with strides "
            f"{tuple(strides)} gives {expected}"
        )


class YoloxDetector:
    """A YOLOX/YOLOv5-layout detector over one onnxruntime session (thread-safe, reusable).

    Build it with :meth:`from_spec`; the constructor does no I/O. ``class_categories[i]`` is
    the MegaDetector category (animal/person/vehicle) of model class ``i``, or None to drop it.
    """

    def __init__(
        self,
        spec: ModelSpec,
        session: Any,
        class_names: Sequence[str],
        class_categories: Sequence[str | None],
        *,
        max_detections: int = DEFAULT_MAX_DETECTIONS,
        max_batch: int = 8,
    ) -> None:
        if spec.output.decoder not in DECODERS:
            raise ValueError(
                f"{spec.name}: decoder {spec.output.decoder!r} is not a detector decoder "
                f"({', '.join(sorted(DECODERS))})"
            )
        if len(class_names) != len(class_categories):
            raise ValueError(
                f"{len(class_names)} class names but {len(class_categories)} categories"
            )
        unknown = {c for c in class_categories if c is not None and c not in CATEGORY_IDS}
        if unknown:
            raise ValueError(f"unknown categories {sorted(unknown)}; use {sorted(CATEGORY_IDS)}")
        if spec.input.channels not in ("RGB", "BGR") or spec.input.scale not in ("0-255", "0-1"):
            raise ValueError(
                f"{spec.name}: detector input must be RGB/BGR, 0-255 or 0-1, got "
                f"{spec.input.channels} {spec.input.scale}"
            )
        self.spec = spec
        self.session = session
        self.class_names: tuple[str, ...] = tuple(class_names)
        self.class_categories: tuple[str | None, ...] = tuple(class_categories)
        self.max_detections = max_detections
        self.max_batch = max(1, max_batch)
        self._kept_classes = np.array([c is not None for c in class_categories], dtype=bool)
        self._input_name = spec.input.name or _only(session.get_inputs(), spec.name, "input")
        self._output_name = spec.output.name or _only(session.get_outputs(), spec.name, "output")
        self._check_session()

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_spec(
        cls,
        spec: ModelSpec,
        model_dir: Path,
        *,
        session: Any = None,
        intra_op_threads: int | None = None,
        providers: Sequence[str] | None = None,
        class_names: Sequence[str] | None = None,
        groups: Mapping[str, Sequence[int]] | None = None,
        max_detections: int = DEFAULT_MAX_DETECTIONS,
    ) -> YoloxDetector:
        """Create the detector for ``spec`` with its files under ``model_dir`` (mirror layout).

        Class names come from ``class_names``, else ``spec.labels``, else ``spec.labels_file``,
        else (``yolov5`` only) MegaDetector's. The class -> category map comes from ``groups``
        (category -> class indices; others are dropped), else ``spec.groups_file`` (JSON of
        the same shape), else ``spec.categories`` (class name -> category), else MegaDetector's
        identity for ``yolov5``. ``session`` reuses an existing onnxruntime session.
        """
        model_dir = Path(model_dir)
        names = _class_names(spec, model_dir, class_names)
        categories = _class_categories(spec, model_dir, names, groups)
        if session is None:
            session = create_session(
                model_dir / spec.file, providers=providers, intra_op_threads=intra_op_threads
            )
        return cls(spec, session, names, categories, max_detections=max_detections)

    def _check_session(self) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        spec = self.spec
        if self._input_name not in inputs or self._output_name not in outputs:
            raise ValueError(
                f"{spec.name}: the model has inputs {sorted(inputs)} and outputs "
                f"{sorted(outputs)}; the manifest expects input {self._input_name!r}, "
                f"output {self._output_name!r}"
            )
        shape = outputs[self._output_name].shape
        if spec.output.decoder == "yolov8":
            cols, expected = (shape[1] if len(shape) == 3 else None), 4 + len(self.class_names)
        else:
            cols, expected = shape[-1], 5 + len(self.class_names)
        if isinstance(cols, int) and cols != expected:
            raise ValueError(
                f"{spec.name}: output has {cols} columns per anchor, expected {expected} for "
                f"{len(self.class_names)} classes ({spec.output.decoder}); check the decoder "
                "and the labels"
            )
        dims = inputs[self._input_name].shape  # [N, 3, H, W]; names where dynamic
        fixed = (dims[3], dims[2]) if len(dims) == 4 else ()  # (W, H)
        if all(isinstance(d, int) for d in fixed) and fixed and fixed != spec.input.size:
            width, height = fixed
            raise ModelConfigError(
                f"{spec.name}: the model takes {width}x{height} images but its entry says "
                f"{spec.input.size[0]}x{spec.input.size[1]}; set size = [{width}, {height}] "
                f"under [models.{spec.name}] in trapflow.toml"
            )

    # ----------------------------------------------------------------- properties
    @property
    def model_id(self) -> str:
        return self.spec.model_id

    @property
    def input_size(self) -> tuple[int, int]:
        """Model input (width, height)."""
        return self.spec.input.size

    # ----------------------------------------------------------------- the three verbs
    def preprocess(self, img: Image.Image | npt.NDArray[np.uint8]) -> PreprocessedImage:
        """Letterbox an RGB image (or its ``[H, W, 3]`` uint8 pixels) to the model input:
        float32 ``[3, H, W]``, 0-255 or 0-1."""
        inp = self.spec.input
        arr, ratio, (pad_x, pad_y) = letterbox_planes(
            img, inp.size, inp.pad_value, inp.placement, inp.channels
        )
        if inp.scale == "0-1":
            arr *= np.float32(1 / 255)
        height, width = (img.height, img.width) if isinstance(img, Image.Image) else img.shape[:2]
        return PreprocessedImage(
            arr=arr,
            ratio=ratio,
            orig_width=width,
            orig_height=height,
            pad_x=pad_x,
            pad_y=pad_y,
        )

    def predict(self, batch: Sequence[PreprocessedImage]) -> list[FloatArray]:
        """Run the model; one raw ``[A, 5 + C]`` array per image (batched when the model allows)."""
        step = self.max_batch if self.spec.input.dynamic_batch else 1
        results: list[FloatArray] = []
        for start in range(0, len(batch), step):
            chunk = batch[start : start + step]
            x = chunk[0].arr[np.newaxis] if len(chunk) == 1 else np.stack([p.arr for p in chunk])
            (out,) = self.session.run([self._output_name], {self._input_name: x})
            results.extend(np.asarray(out, dtype=np.float32))
        return results

    def postprocess(
        self, raw: FloatArray, pre: PreprocessedImage, conf_floor: float = DEFAULT_CONF_FLOOR
    ) -> list[Detection]:
        """Decode, score, NMS and normalise one image's raw output into detections.

        Every box with score >= ``conf_floor`` in a mapped class survives (thresholds are
        applied downstream), highest first, at most ``max_detections``. Class scores are
        probabilities (<= 1), so rows whose objectness is below the floor are skipped first.
        """
        raw = np.asarray(raw, dtype=np.float32)
        if raw.ndim == 3 and raw.shape[0] == 1:
            raw = raw[0]
        n_classes = len(self.class_names)
        if self.spec.output.decoder == "yolov8" and raw.ndim == 2 and raw.shape[0] == 4 + n_classes:
            # [4 + C, A] -> the YOLOv5 layout [A, 5 + C] with objectness 1
            raw = np.concatenate(
                [raw[:4].T, np.ones((raw.shape[1], 1), np.float32), raw[4:].T], axis=1
            )
        if raw.ndim != 2 or raw.shape[1] != 5 + n_classes:
            raise ValueError(
                f"{self.spec.name}: raw output shape {raw.shape}, expected [A, {5 + n_classes}]"
            )
        if self.spec.output.decoder == "yolox_raw":
            _, height, width = pre.arr.shape
            _check_anchor_count(raw.shape[0], width, height, self.spec.output.strides)
        # score = objectness x class probability <= objectness: most rows go before the argmax
        anchors = np.flatnonzero(~(raw[:, 4] < conf_floor))  # NaN kept: dropped below
        raw = raw[anchors]
        if self.spec.output.decoder == "yolox_raw":
            raw = decode_yolox_raw(raw, width, height, self.spec.output.strides, anchors)
        class_idx = np.argmax(raw[:, 5:], axis=1)
        scores = raw[:, 4] * raw[np.arange(raw.shape[0]), 5 + class_idx]
        keep = (scores >= conf_floor) & self._kept_classes[class_idx]
        keep &= np.isfinite(raw[:, :5]).all(axis=1) & np.isfinite(scores)
        boxes = cxcywh_to_xyxy(raw[keep, 0:4])
        if pre.pad_x or pre.pad_y:
            boxes = boxes - np.array([pre.pad_x, pre.pad_y, pre.pad_x, pre.pad_y])
        scores, class_idx = scores[keep], class_idx[keep]
        order = batched_nms(boxes, scores, class_idx, self.spec.output.nms_iou)
        order = order[: self.max_detections]
        xywh, kept = to_normalised_xywh(boxes[order], pre.ratio, pre.orig_width, pre.orig_height)
        detections = []
        for (x, y, w, h), i in zip(xywh.tolist(), order[kept].tolist(), strict=True):
            c = int(class_idx[i])
            detections.append(
                Detection(
                    category=self.class_categories[c] or "",  # unmapped classes filtered above
                    label=self.class_names[c],
                    confidence=float(scores[i]),
                    bbox=BBox(x, y, w, h),
                    model=self.spec.model_id,
                )
            )
        return detections

    def detect(self, img: Image.Image, conf_floor: float = DEFAULT_CONF_FLOOR) -> list[Detection]:
        """preprocess -> predict -> postprocess for one RGB image."""
        pre = self.preprocess(img)
        return self.postprocess(self.predict([pre])[0], pre, conf_floor)

    def detect_batch(
        self, images: Sequence[Image.Image], conf_floor: float = DEFAULT_CONF_FLOOR
    ) -> list[list[Detection]]:
        """:meth:`detect` for several images, batched when the model has a dynamic batch."""
        pres = [self.preprocess(img) for img in images]
        raws = self.predict(pres)
        return [self.postprocess(r, p, conf_floor) for r, p in zip(raws, pres, strict=True)]

    def __repr__(self) -> str:
        w, h = self.input_size
        return f"YoloxDetector({self.model_id}, {w}x{h}, {self.spec.output.decoder})"


def _only(args: Sequence[Any], name: str, what: str) -> str:
    if len(args) != 1:
        raise ValueError(
            f"{name}: the model has {len(args)} {what}s ({[a.name for a in args]}); name the "
            f"one to use with {what}_name in its [models.{name}] entry"
        )
    return str(args[0].name)


def _class_names(spec: ModelSpec, model_dir: Path, given: Sequence[str] | None) -> tuple[str, ...]:
    if given is not None:
        return tuple(given)
    if spec.labels:
        return spec.labels
    if spec.labels_file:
        path = model_dir / spec.labels_file
        lines = path.read_text(encoding="utf-8").splitlines()
        return tuple(line.strip() for line in lines if line.strip())
    if spec.output.decoder in ("yolov5", "yolov8"):
        return MD_CLASS_NAMES
    raise ModelConfigError(
        f"{spec.name}: no class names: add labels = [...] or labels_file under "
        f"[models.{spec.name}] in trapflow.toml (or pass class_names=)"
    )


def _class_categories(
    spec: ModelSpec,
    model_dir: Path,
    names: Sequence[str],
    groups: Mapping[str, Sequence[int]] | None,
) -> tuple[str | None, ...]:
    if groups is None and spec.groups_file:
        data = json.loads((model_dir / spec.groups_file).read_text(encoding="utf-8"))
        groups = {k: v for k, v in data.items() if k in CATEGORY_IDS}
    if groups is not None:
        categories: list[str | None] = [None] * len(names)
        for category, indices in groups.items():
            if category not in CATEGORY_IDS:
                raise ValueError(f"unknown category {category!r} in groups")
            for i in indices:
                if not 0 <= int(i) < len(names):
                    raise ValueError(f"class index {i} out of range for {len(names)} classes")
                if categories[int(i)] is not None:
                    raise ValueError(f"class {names[int(i)]!r} is in two groups")
                categories[int(i)] = category
        return tuple(categories)
    if spec.categories:
        return tuple(spec.categories.get(name) for name in names)
    if spec.output.decoder in ("yolov5", "yolov8") and tuple(names) == MD_CLASS_NAMES:
        return MD_CLASS_NAMES
    raise ModelConfigError(
        f'{spec.name}: no class -> category map: add categories = {{ animal = "animal" }} '
        f"(model class -> animal, person or vehicle) or groups_file under [models.{spec.name}] "
        "in trapflow.toml (or pass groups=)"
    )


def class_map(spec: ModelSpec, model_dir: Path) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
    """The class names and their categories that :meth:`YoloxDetector.from_spec` resolves for
    ``spec`` (files under ``model_dir``), without loading the model: a cheap check of an entry
    before a run. Raises :class:`ModelConfigError` when the entry lacks either."""
    names = _class_names(spec, model_dir, None)
    return names, _class_categories(spec, model_dir, names, None)
