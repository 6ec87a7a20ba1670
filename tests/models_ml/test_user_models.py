"""Models users register by path + SHA-256 (MegaDetector v5/v6 ONNX exports) and their decoders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models_ml import registry
from models_ml._imageops import letterbox_offset
from models_ml.detector import YoloxDetector
from models_ml.ensemble import DetectorEnsemble, is_blank
from tests.models_ml._onnx_factory import fixed_output_model, raw_row


def _sha(path: Path) -> str:
    return registry.sha256_file(path, cached=False)


def test_mdv5_export_registered_by_path_detects_with_centred_letterbox(tmp_path: Path) -> None:
    # A 128x64 photo in a 64x64 YOLOv5 input: ratio 0.5, centred -> 16 px padding on top.
    # One person box at input (32, 32) 16x16 -> original x 48..80, y 16..48 of 128x64.
    onnx_path = fixed_output_model(
        tmp_path / "md_v5a.onnx",
        np.array([raw_row((32, 32, 16, 16), 0.9, [0.1, 0.9, 0.0])]),
        size=(64, 64),
        dynamic_batch=False,
        output_name="output0",
    )
    table = {"file": str(onnx_path), "sha256": _sha(onnx_path), "decoder": "yolov5",
             "size": [64, 64], "version": "5a"}  # fmt: skip
    manifest = registry.load_manifest(user_models={"my_mdv5": table})
    spec = manifest["my_mdv5"]
    assert spec.location == str(tmp_path) and spec.input.placement == "center"
    assert registry.verify(spec, spec.files_dir(Path("/unused"))).ok
    # as the general model (person/vehicle) beside an animal model that finds nothing
    ens = DetectorEnsemble.from_models_dir(
        Path("/unused"), manifest, animal_model="my_mdv5", general_model="my_mdv5",
        general_categories=("person",),
    )  # fmt: skip
    (det,) = ens.detect(Image.new("RGB", (128, 64)))
    assert (det.category, det.label, det.model) == ("person", "person", "my_mdv5@5a")
    assert det.confidence == pytest.approx(0.81)
    assert (det.bbox.x, det.bbox.y, det.bbox.w, det.bbox.h) == pytest.approx(
        (48 / 128, 16 / 64, 32 / 128, 32 / 64)
    )


def test_yolov8_layout_of_mdv6_exports(tmp_path: Path) -> None:
    # [N, 4 + C, A]: two anchors, no objectness.
    table = np.array(
        [[16, 48], [16, 48], [8, 8], [8, 8], [0.7, 0.0], [0.0, 0.0], [0.0, 0.6]], np.float32
    ).T  # fixed_output_model takes [A, K]; the model returns it as [1, A, K] -> transpose back
    path = tmp_path / "mdv6.onnx"
    fixed_output_model(path, table.T[None].reshape(1, 7, 2), size=(64, 64), dynamic_batch=False)
    spec = registry.user_spec(
        "mdv6",
        {"file": str(path), "sha256": _sha(path), "decoder": "yolov8", "size": [64, 64],
         "placement": "top-left", "scale": "0-255"},
    )  # fmt: skip
    det = YoloxDetector.from_spec(spec, tmp_path)
    found = det.detect(Image.new("RGB", (64, 64)))
    assert [(d.category, round(d.confidence, 3)) for d in found] == [
        ("animal", 0.7), ("vehicle", 0.6),
    ]  # fmt: skip
    assert found[0].bbox.x == pytest.approx(12 / 64)


def test_scale_0_1_and_centre_padding() -> None:
    canvas, ratio, pad = letterbox_offset(Image.new("RGB", (100, 50), (255, 0, 0)), (20, 20), 114,
                                          "center")  # fmt: skip
    assert ratio == 0.2 and pad == (0, 5)
    assert tuple(canvas[0, 0]) == (114, 114, 114) and tuple(canvas[10, 10]) == (255, 0, 0)


def test_registration_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(registry.ModelError, match="missing sha256"):
        registry.user_spec("x", {"file": "/m.onnx", "decoder": "yolov5"})
    with pytest.raises(registry.ModelError, match="decoder must be one of"):
        registry.user_spec("x", {"file": "/m.onnx", "sha256": "0" * 64, "decoder": "yolo"})
    with pytest.raises(registry.ModelError, match="absolute"):
        registry.user_spec("x", {"file": "m.onnx", "sha256": "0" * 64, "decoder": "yolov5"})
    with pytest.raises(registry.ModelError, match="name of a registry model"):
        registry.load_manifest(user_models={"yolox_nano_coco": {}})
    wrong = registry.user_spec(
        "x", {"file": str(tmp_path / "m.onnx"), "sha256": "0" * 64, "decoder": "yolov5"}
    )
    (tmp_path / "m.onnx").write_bytes(b"not this")
    wrong = registry.user_spec(
        "x", {"file": str(tmp_path / "m.onnx"), "sha256": "0" * 64, "decoder": "yolov5"}
    )
    result = registry.verify(wrong, wrong.files_dir(Path("/unused")))
    assert not result.ok and "sha256" in result.detail


def test_is_blank_uses_per_category_thresholds() -> None:
    from models_ml._types import BBox, Detection

    d = Detection("animal", "animal", 0.2, BBox(0, 0, 1, 1), "m@1")
    assert is_blank([], {"animal": 0.25})
    assert is_blank([d], {"animal": 0.25})
    assert not is_blank([d], {"animal": 0.1})


def test_one_megadetector_for_every_category_stores_each_box_once(tmp_path: Path) -> None:
    # animal_model = general_model = "my_mdv5" (docs/models.md): one run of the model, kept for
    # animal and the general categories, so its animal box is not stored (and counted) twice
    from tests.models_ml._onnx_factory import mdv5_table, megadetector_onnx

    path = megadetector_onnx(
        tmp_path / "md.onnx",
        mdv5_table([((32, 32, 16, 16), 1.0, [0.9, 0.0, 0.0]), ((8, 8, 8, 8), 1.0, [0, 0.8, 0])]),
        size=(64, 64),
    )
    table = {"file": str(path), "sha256": _sha(path), "decoder": "yolov5", "size": [64, 64]}
    manifest = registry.load_manifest(user_models={"my_mdv5": table})
    ens = DetectorEnsemble.from_models_dir(
        Path("/unused"), manifest, animal_model="my_mdv5", general_model="my_mdv5"
    )
    assert len(ens.detectors) == 1
    found = [(d.category, round(d.confidence, 3)) for d in ens.detect(Image.new("RGB", (64, 64)))]
    assert found == [("animal", 0.9), ("person", 0.8)]


def test_an_export_of_another_input_size_says_which_size_to_set(tmp_path: Path) -> None:
    # a 640 px MegaDetector v5 export registered without size (the yolov5 default is 1280)
    from models_ml.errors import ModelConfigError
    from tests.models_ml._onnx_factory import mdv5_table, megadetector_onnx

    path = megadetector_onnx(
        tmp_path / "md.onnx", mdv5_table([((8, 8, 8, 8), 1.0, [0.9, 0, 0])]), size=(640, 480)
    )
    spec = registry.user_spec(
        "my_mdv5", {"file": str(path), "sha256": _sha(path), "decoder": "yolov5"}
    )
    with pytest.raises(ModelConfigError, match=r"takes 640x480 images .* set size = \[640, 480\]"):
        YoloxDetector.from_spec(spec, tmp_path)
