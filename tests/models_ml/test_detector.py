"""YoloxDetector: decoders on handcrafted raw arrays (no ONNX), the session path on tiny
generated ONNX models, and the real models on real camera-trap photos."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from models_ml import Detection, PreprocessedImage, YoloxDetector, create_session, load_rgb
from models_ml.detector import MD_CLASS_NAMES, _grid, decode_yolox_raw
from models_ml.registry import ModelSpec, load_manifest
from tests.models_ml._onnx_factory import fixed_output_model, make_spec, raw_row

MANIFEST = load_manifest()
MDLITE = MANIFEST["mdlite_yolox_tiny"]
COCO = MANIFEST["yolox_nano_coco"]
COCO_ANCHORS = 52 * 52 + 26 * 26 + 13 * 13  # 3549 at 416x416


class StubSession:
    """Stands in for an onnxruntime session: returns ``output`` for every image."""

    def __init__(self, output: np.ndarray, input_name: str = "images") -> None:
        self.output = np.asarray(output, dtype=np.float32)
        self.input_name = input_name
        self.calls: list[tuple[int, ...]] = []

    def get_inputs(self) -> list[Any]:
        return [SimpleNamespace(name=self.input_name, shape=["N", 3, "H", "W"])]

    def get_outputs(self) -> list[Any]:
        return [SimpleNamespace(name="output", shape=["N", "A", self.output.shape[-1]])]

    def run(self, names: Sequence[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        x = feeds[self.input_name]
        self.calls.append(x.shape)
        return [np.repeat(self.output[None], x.shape[0], axis=0)]


def pre_for(size: tuple[int, int], orig: tuple[int, int], ratio: float) -> PreprocessedImage:
    w, h = size
    return PreprocessedImage(
        arr=np.zeros((3, h, w), np.float32), ratio=ratio, orig_width=orig[0], orig_height=orig[1]
    )


def as_tuples(dets: list[Detection]) -> list[tuple[Any, ...]]:
    return [
        (d.category, d.label, d.confidence, d.bbox.x, d.bbox.y, d.bbox.w, d.bbox.h, d.model)
        for d in dets
    ]


def assert_dets(dets: list[Detection], expected: list[tuple[Any, ...]]) -> None:
    got = as_tuples(dets)
    assert len(got) == len(expected), got
    for g, e in zip(got, expected, strict=True):
        assert g[:2] == e[:2]
        assert g[2:7] == pytest.approx(e[2:7], abs=1e-5)
        assert g[7] == e[7]


def mdlite_stub(rows: list[list[float]]) -> YoloxDetector:
    return YoloxDetector.from_spec(MDLITE, Path("unused"), session=StubSession(np.array(rows)))


# ---------------------------------------------------------------- yolox_decoded (no ONNX)


def test_yolox_decoded_postprocess_exact() -> None:
    det = mdlite_stub(
        [
            raw_row((320, 240, 200, 100), 0.9, [0.8]),  # 0.72: kept
            raw_row((322, 241, 200, 100), 0.9, [0.55]),  # duplicate, lower: NMS drops it
            raw_row((100, 100, 20, 20), 0.2, [0.2]),  # 0.04 < floor
            raw_row((320, 600, 40, 40), 0.9, [0.9]),  # in the bottom padding: no area left
            raw_row((40, 60, 40, 20), 0.3, [0.2]),  # 0.06: kept (floor 0.05)
        ]
    )
    # a 1280x960 photo letterboxed into 640x640 at ratio 0.5 (content 640x480)
    dets = det.postprocess(det.session.output, pre_for((640, 640), (1280, 960), 0.5), 0.05)
    mid = MDLITE.model_id
    assert_dets(
        dets,
        [
            ("animal", "animal", 0.72, 440 / 1280, 380 / 960, 400 / 1280, 200 / 960, mid),
            ("animal", "animal", 0.06, 40 / 1280, 100 / 960, 80 / 1280, 40 / 960, mid),
        ],
    )
    assert det.postprocess(det.session.output, pre_for((640, 640), (1280, 960), 0.5), 0.1)
    assert len(det.postprocess(det.session.output, pre_for((640, 640), (1280, 960), 0.5), 0.5)) == 1


def test_non_finite_rows_are_dropped() -> None:
    det = mdlite_stub(
        [raw_row((np.nan, 10, 10, 10), 0.9, [0.9]), raw_row((20, 20, 10, 10), 0.9, [0.9])]
    )
    dets = det.postprocess(det.session.output, pre_for((640, 640), (640, 640), 1.0))
    assert len(dets) == 1
    assert dets[0].bbox.x == pytest.approx(15 / 640)


def test_max_detections_caps_boxes_after_nms() -> None:
    rows = [
        raw_row((8 + 16 * (i % 40), 8 + 16 * (i // 40), 10, 10), 0.5 + i / 1000, [1.0])
        for i in range(150)
    ]
    det = mdlite_stub(rows)
    dets = det.postprocess(det.session.output, pre_for((640, 640), (640, 640), 1.0))
    assert len(dets) == 100
    confs = [d.confidence for d in dets]
    assert confs == sorted(confs, reverse=True)
    assert confs[0] == pytest.approx(0.649)


def test_preprocess_rgb_pad_0() -> None:
    det = mdlite_stub([raw_row((1, 1, 1, 1), 0, [0])])
    pre = det.preprocess(Image.new("RGB", (1280, 960), (10, 20, 30)))
    assert pre.arr.shape == (3, 640, 640)
    assert pre.arr.dtype == np.float32
    assert pre.arr.flags.c_contiguous
    assert (pre.ratio, pre.orig_width, pre.orig_height) == (0.5, 1280, 960)
    assert tuple(pre.arr[:, 0, 0]) == (10.0, 20.0, 30.0)
    assert tuple(pre.arr[:, 479, 639]) == (10.0, 20.0, 30.0)
    assert (pre.arr[:, 480:, :] == 0).all()


# ---------------------------------------------------------------- yolox_raw (no ONNX)


def test_raw_grid_order() -> None:
    grid, stride = _grid(416, 416, (8, 16, 32))
    assert grid.shape == (COCO_ANCHORS, 2)
    assert tuple(grid[1]) == (1, 0)  # x runs fastest
    assert tuple(grid[52]) == (0, 1)
    assert tuple(grid[2704]) == (0, 0) and stride[2704, 0] == 16  # first stride-16 cell
    assert tuple(grid[-1]) == (12, 12) and stride[-1, 0] == 32
    assert not grid.flags.writeable


def test_raw_decode_one_anchor_exactly() -> None:
    raw = np.zeros((COCO_ANCHORS, 85), np.float32)
    i = 52 * 52 + 7 * 26 + 5  # stride 16, cell x=5, y=7
    raw[i, :4] = (0.5, 0.25, math.log(2), math.log(3))
    out = decode_yolox_raw(raw, 416, 416, (8, 16, 32))
    np.testing.assert_allclose(out[i, :4], [88.0, 116.0, 32.0, 48.0], rtol=1e-6)
    assert raw[i, 0] == 0.5  # input untouched
    with pytest.raises(ValueError, match="anchors"):
        decode_yolox_raw(raw[:-1], 416, 416, (8, 16, 32))


def test_raw_decode_of_some_anchors_equals_those_rows_of_the_full_decode() -> None:
    """postprocess decodes only the rows above the floor: each on its own anchor's cell."""
    rng = np.random.default_rng(3)
    raw = rng.normal(0, 1, (COCO_ANCHORS, 85)).astype(np.float32)
    anchors = np.array([0, 7, 2704, 3000, COCO_ANCHORS - 1])
    full = decode_yolox_raw(raw, 416, 416, (8, 16, 32))
    some = decode_yolox_raw(raw[anchors], 416, 416, (8, 16, 32), anchors)
    np.testing.assert_array_equal(some, full[anchors])
    with pytest.raises(ValueError, match="out of range"):
        decode_yolox_raw(raw[:1], 416, 416, (8, 16, 32), np.array([COCO_ANCHORS]))
    with pytest.raises(ValueError, match="anchor indices"):
        decode_yolox_raw(raw[:2], 416, 416, (8, 16, 32), np.array([1]))


def coco_raw() -> np.ndarray:
    raw = np.zeros((COCO_ANCHORS, 85), np.float32)
    dog = 52 * 52 + 7 * 26 + 5  # stride 16, cell (5, 7)
    raw[dog, :5] = (0.5, 0.25, math.log(2), math.log(3), 0.9)
    raw[dog, 5 + 16] = 0.8  # dog
    person = 52 * 52 + 26 * 26 + 9 * 13 + 12  # stride 32, cell (12, 9)
    raw[person, :5] = (0.0, 0.0, 0.0, 0.0, 0.95)
    raw[person, 5 + 0] = 0.9
    car = 3 * 52 + 10  # stride 8, cell (10, 3)
    raw[car, :5] = (0.5, 0.5, math.log(4), math.log(2), 0.6)
    raw[car, 5 + 2] = 0.5
    raw[0, 4] = 1.0
    raw[0, 5 + 56] = 1.0  # chair: not in any group, dropped
    return raw


def coco_expected(model: str) -> list[tuple[Any, ...]]:
    # 832x624 photo letterboxed into 416x416 at ratio 0.5
    return [
        ("person", "person", 0.855, 736 / 832, 544 / 624, 64 / 832, 64 / 624, model),
        ("animal", "dog", 0.72, 144 / 832, 184 / 624, 64 / 832, 96 / 624, model),
        ("vehicle", "car", 0.3, 136 / 832, 40 / 624, 64 / 832, 32 / 624, model),
    ]


def test_yolox_raw_postprocess_exact_with_real_coco_groups(model_mirror: Path) -> None:
    det = YoloxDetector.from_spec(COCO, model_mirror, session=StubSession(coco_raw()))
    assert det.class_names[16] == "dog"
    assert det.class_categories[56] is None
    dets = det.postprocess(coco_raw(), pre_for((416, 416), (832, 624), 0.5), 0.05)
    assert_dets(dets, coco_expected(COCO.model_id))


def test_preprocess_bgr_pad_114(model_mirror: Path) -> None:
    det = YoloxDetector.from_spec(COCO, model_mirror, session=StubSession(coco_raw()))
    pre = det.preprocess(Image.new("RGB", (832, 624), (10, 20, 30)))
    assert pre.arr.shape == (3, 416, 416)
    assert pre.ratio == 0.5
    assert tuple(pre.arr[:, 0, 0]) == (30.0, 20.0, 10.0)  # BGR
    assert (pre.arr[:, 312:, :] == 114).all()


# ---------------------------------------------------------------- yolov5 / MegaDetector layout


def test_yolov5_alias_uses_megadetector_classes() -> None:
    rows = [
        raw_row((16, 16, 8, 8), 0.9, [0.1, 0.9, 0.0]),
        raw_row((48, 16, 8, 8), 0.8, [0.0, 0.1, 0.5]),
        raw_row((16, 48, 8, 8), 0.5, [0.6, 0.0, 0.0]),
    ]
    spec = make_spec("md", decoder="yolov5", size=(64, 64))
    det = YoloxDetector.from_spec(spec, Path("unused"), session=StubSession(np.array(rows)))
    assert det.class_names == MD_CLASS_NAMES
    dets = det.postprocess(det.session.output, pre_for((64, 64), (64, 64), 1.0))
    assert_dets(
        dets,
        [
            ("person", "person", 0.81, 0.1875, 0.1875, 0.125, 0.125, "md@0"),
            ("vehicle", "vehicle", 0.4, 0.6875, 0.1875, 0.125, 0.125, "md@0"),
            ("animal", "animal", 0.3, 0.1875, 0.6875, 0.125, 0.125, "md@0"),
        ],
    )


# ---------------------------------------------------------------- configuration errors


def test_output_columns_must_match_classes() -> None:
    spec = make_spec(decoder="yolov5")
    with pytest.raises(ValueError, match="columns"):
        YoloxDetector.from_spec(spec, Path("x"), session=StubSession(np.zeros((4, 7))))


def test_input_name_must_match() -> None:
    with pytest.raises(ValueError, match="inputs"):
        YoloxDetector.from_spec(
            MDLITE, Path("x"), session=StubSession(np.zeros((4, 6)), input_name="x")
        )


@pytest.mark.parametrize(
    ("groups", "match"),
    [
        ({"bird": [0]}, "category"),
        ({"animal": [5]}, "out of range"),
        ({"animal": [0], "person": [0]}, "two groups"),
    ],
)
def test_bad_groups(groups: dict[str, list[int]], match: str) -> None:
    spec = make_spec(decoder="yolox_decoded", labels=("a", "b"))
    with pytest.raises(ValueError, match=match):
        YoloxDetector.from_spec(
            spec, Path("x"), session=StubSession(np.zeros((4, 7))), groups=groups
        )


def test_not_a_detector_decoder_or_no_classes() -> None:
    with pytest.raises(ValueError, match="decoder"):
        YoloxDetector(
            make_spec(decoder="softmax"), StubSession(np.zeros((4, 6))), ["a"], ["animal"]
        )
    with pytest.raises(ValueError, match="class names"):
        YoloxDetector.from_spec(
            make_spec(decoder="yolox_decoded"), Path("x"), session=StubSession(np.zeros((4, 6)))
        )


# ---------------------------------------------------------------- session path (generated ONNX)


def test_create_session_options(tmp_path: Path) -> None:
    path = fixed_output_model(tmp_path / "m.onnx", np.zeros((2, 8)), size=(32, 32))
    session = create_session(path, intra_op_threads=1)
    assert session.get_providers() == ["CPUExecutionProvider"]
    options = session.get_session_options()
    assert (options.inter_op_num_threads, options.intra_op_num_threads) == (1, 1)
    assert options.log_severity_level == 3
    with pytest.raises(FileNotFoundError):
        create_session(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="not available"):
        create_session(path, providers=["NoSuchExecutionProvider"])
    with pytest.raises(ValueError, match="intra_op_threads"):
        create_session(path, intra_op_threads=-1)


def test_yolov5_layout_end_to_end_with_dynamic_batch(tmp_path: Path) -> None:
    rows = [
        raw_row((16, 16, 8, 8), 0.9, [0.1, 0.9, 0.0]),
        raw_row((48, 8, 16, 16), 0.9, [1.0, 0.0, 0.0]),
    ]
    spec = make_spec("md", decoder="yolov5", size=(64, 64))
    fixed_output_model(tmp_path / spec.file, np.array(rows), size=(64, 64))
    det = YoloxDetector.from_spec(spec, tmp_path)
    # 128x64 photo: ratio 0.5, content 64x32; the person box is in the photo, the animal too
    dets = det.detect(Image.new("RGB", (128, 64)))
    assert_dets(
        dets,
        [
            ("animal", "animal", 0.9, 40 / 64, 0.0, 16 / 64, 16 / 32, "md@0"),
            ("person", "person", 0.81, 12 / 64, 12 / 32, 8 / 64, 8 / 32, "md@0"),
        ],
    )
    batch = det.detect_batch([Image.new("RGB", (128, 64)), Image.new("RGB", (64, 64))] * 2)
    assert len(batch) == 4
    assert as_tuples(batch[0]) == as_tuples(dets)
    assert batch[1][1].bbox.y == pytest.approx(12 / 64)


def test_yolox_raw_end_to_end_static_batch(tmp_path: Path) -> None:
    names = [f"class{i}" for i in range(80)]
    names[0], names[2], names[16], names[56] = "person", "car", "dog", "chair"
    spec = make_spec(
        "nano",
        decoder="yolox_raw",
        size=(416, 416),
        channels="BGR",
        pad_value=114,
        dynamic_batch=False,
        labels_file="nano/classes.txt",
        groups_file="nano/groups.json",
    )
    fixed_output_model(tmp_path / spec.file, coco_raw(), size=(416, 416), dynamic_batch=False)
    (tmp_path / "nano/classes.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    groups = {"comment": "x", "person": [0], "animal": [16], "vehicle": [2]}
    (tmp_path / "nano/groups.json").write_text(json.dumps(groups), encoding="utf-8")
    det = YoloxDetector.from_spec(spec, tmp_path)
    results = det.detect_batch([Image.new("RGB", (832, 624))] * 2)  # runs one by one
    for dets in results:
        assert_dets(dets, coco_expected("nano@0"))


# ---------------------------------------------------------------- real models, real photos


@pytest.fixture(scope="module")
def mdlite(model_mirror: Path) -> YoloxDetector:
    return YoloxDetector.from_spec(MDLITE, model_mirror)


@pytest.fixture(scope="module")
def coco(model_mirror: Path) -> YoloxDetector:
    return YoloxDetector.from_spec(COCO, model_mirror)


def photo(camtrap_dir: Path, path: str, spec: ModelSpec) -> Image.Image:
    return load_rgb((camtrap_dir / path).read_bytes(), draft_size=spec.input.size)


def assert_sane(dets: list[Detection]) -> None:
    for d in dets:
        b = d.bbox
        assert 0 <= b.x <= 1 and 0 <= b.y <= 1 and b.w > 0 and b.h > 0
        assert b.x + b.w <= 1 + 1e-9 and b.y + b.h <= 1 + 1e-9
        assert 0.05 <= d.confidence <= 1


@pytest.mark.slow
def test_mdlite_finds_the_idaho_cougar(mdlite: YoloxDetector, camtrap_dir: Path) -> None:
    dets = mdlite.detect(
        photo(camtrap_dir, "agentmorris__MegaDetector/images/idaho-camera-traps.jpg", MDLITE)
    )
    assert_sane(dets)
    best = dets[0]
    assert (best.category, best.label, best.model) == ("animal", "animal", MDLITE.model_id)
    assert best.confidence >= 0.5


@pytest.mark.slow
def test_mdlite_finds_an_animal_in_every_ena24_image(
    mdlite: YoloxDetector, camtrap_dir: Path, manifest_rows: list[dict[str, str]]
) -> None:
    paths = [
        r["path"]
        for r in manifest_rows
        if "/ena24_small/" in r["path"] and r["path"].endswith(".jpg")
    ]
    assert len(paths) >= 10
    best = []
    for path in paths:
        dets = mdlite.detect(photo(camtrap_dir, path, MDLITE))
        assert_sane(dets)
        best.append(max((d.confidence for d in dets), default=0.0))
    assert min(best) >= 0.2  # measured: lowest 0.27 (a skunk), zamba's threshold is 0.25
    assert sum(b >= 0.5 for b in best) >= len(best) - 2


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    [
        "conservationtechlab__animl-r/examples/test_data/Southwest/New Data/MDF102.jpg",
        "google__cameratrapai/test_data/human.jpg",
        "hiltonml__camera_trap_tools/example_data/SD_Card_Images/DSCF0003.JPG",
    ],
)
def test_coco_finds_people(coco: YoloxDetector, camtrap_dir: Path, path: str) -> None:
    dets = coco.detect(photo(camtrap_dir, path, COCO))
    assert_sane(dets)
    people = [d for d in dets if d.category == "person"]
    assert people and people[0].confidence >= 0.5  # measured 0.88 / 0.78 / 0.88
    assert people[0].label == "person"
    assert people[0].model == COCO.model_id


@pytest.mark.slow
def test_exif_orientation_gives_display_boxes(mdlite: YoloxDetector, camtrap_dir: Path) -> None:
    base = "google__cameratrapai/test_data/"
    plain = mdlite.detect(photo(camtrap_dir, base + "african_elephants.jpg", MDLITE), 0.5)
    rotated = mdlite.detect(
        photo(camtrap_dir, base + "african_elephants_with_exif_orientation.jpg", MDLITE), 0.5
    )
    assert len(plain) == len(rotated) >= 3

    def by_x(dets: list[Detection]) -> list[tuple[Any, ...]]:
        return sorted(t[3:7] for t in as_tuples(dets))

    for a, b in zip(by_x(plain), by_x(rotated), strict=True):
        assert a == pytest.approx(b, abs=0.01)
