"""Species stage: a generated head over the real embedder, a user crop classifier, geofencing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models_ml import registry
from models_ml._types import BBox
from models_ml.classifier import (
    EmbeddingHeadClassifier,
    OnnxCropClassifier,
    Prediction,
    crop_batch,
    load_classifier,
    top_k,
)
from models_ml.geofence import Geofence, GeofenceError, fence
from tests.models_ml._onnx_factory import channel_mean_classifier, head_model

EMBEDDER = "mobilenetv2_imagenet_features"
WHOLE = BBox(0.0, 0.0, 1.0, 1.0)


@pytest.fixture(scope="module")
def embedder_dir(tmp_path_factory: pytest.TempPathFactory, model_mirror: Path) -> Path:
    model_dir = tmp_path_factory.mktemp("emb")
    registry.pull(registry.load_manifest()[EMBEDDER], model_dir, str(model_mirror))
    return model_dir


def _sample(camtrap_dir: Path, rel: str) -> Image.Image:
    return Image.open(camtrap_dir / rel).convert("RGB")


SAMPLES = (
    "agentmorris__MegaDetector/images/idaho-camera-traps.jpg",  # cougar in snow
    "agentmorris__MegaDetector/images/channel-islands-thumb.jpg",  # IR island fox
)


def _head_spec(tmp: Path, labels: tuple[str, ...]) -> registry.ModelSpec:
    (tmp / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    return registry.user_spec(
        "species_head",
        {
            "file": str(tmp / "head.onnx"),
            "sha256": "0" * 64,
            "decoder": "embedding_head",
            "labels_file": str(tmp / "labels.txt"),
            "version": "t1",
        },
    )


def test_head_over_real_embedder_maps_known_crops_to_their_labels(
    tmp_path: Path, embedder_dir: Path, camtrap_dir: Path
) -> None:
    manifest = registry.load_manifest()
    images = [_sample(camtrap_dir, rel) for rel in SAMPLES]
    spec = _head_spec(tmp_path, ("cougar", "island fox", "other"))
    # Embed the two crops with the real embedder, then make a head whose rows are those
    # embeddings (cosine similarity x 20): each crop must come out as its own label.
    head_model(tmp_path / "head.onnx", np.zeros((3, 1280), np.float32))
    clf = load_classifier(spec, {**manifest, spec.name: spec}, embedder_dir)
    assert isinstance(clf, EmbeddingHeadClassifier)
    emb = np.concatenate([clf.embed(clf.preprocess(img, [WHOLE])) for img in images])
    assert emb.shape == (2, 1280)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    weights = np.concatenate([emb * 20, np.zeros((1, 1280), np.float32)])
    head_model(tmp_path / "head.onnx", weights)
    clf = load_classifier(spec, {**manifest, spec.name: spec}, embedder_dir)
    got = [clf.classify(img, [WHOLE], top_k=2)[0] for img in images]
    assert [p[0].label for p in got] == ["cougar", "island fox"]
    assert all(p[0].rank == 1 and p[1].rank == 2 for p in got)
    assert all(p[0].probability > 0.9 > p[1].probability for p in got)
    assert clf.model_id == "species_head@t1"


def test_head_label_count_must_match(tmp_path: Path, embedder_dir: Path) -> None:
    spec = _head_spec(tmp_path, ("a", "b"))
    head_model(tmp_path / "head.onnx", np.zeros((3, 1280), np.float32))
    with pytest.raises(ValueError, match="3 classes but its label file has 2"):
        load_classifier(spec, registry.load_manifest() | {spec.name: spec}, embedder_dir)


def test_user_crop_classifier_softmax_over_label_file(tmp_path: Path) -> None:
    channel_mean_classifier(tmp_path / "clf.onnx", size=(32, 32))
    (tmp_path / "labels.txt").write_text("red\ngreen\nblue\n", encoding="utf-8")
    spec = registry.user_spec(
        "rgb",
        {
            "file": str(tmp_path / "clf.onnx"),
            "sha256": "a" * 64,
            "decoder": "softmax",
            "labels_file": "labels.txt",
            "size": [32, 32],
            "scale": "0-1",
        },
    )
    clf = load_classifier(spec, {}, Path("/nonexistent"))
    assert isinstance(clf, OnnxCropClassifier)
    img = Image.new("RGB", (90, 30))
    img.paste((255, 0, 0), (0, 0, 30, 30))
    img.paste((0, 255, 0), (30, 0, 60, 30))
    img.paste((0, 0, 255), (60, 0, 90, 30))
    thirds = [BBox(i / 3, 0.0, 1 / 3, 1.0) for i in range(3)]
    preds = clf.classify(img, thirds, top_k=3)
    assert [p[0].label for p in preds] == ["red", "green", "blue"]
    assert all(abs(sum(x.probability for x in p) - 1.0) < 1e-5 for p in preds)
    assert clf.classify(img, []) == []


def test_crop_batch_scaling_and_channel_order() -> None:
    img = Image.new("RGB", (10, 10), (255, 128, 0))
    inp = registry.InputSpec(name="x", size=(4, 4), channels="BGR", scale="0-1")
    arr = crop_batch(img, [WHOLE], inp)
    assert arr.shape == (1, 3, 4, 4) and arr.dtype == np.float32
    np.testing.assert_allclose(arr[0, :, 0, 0], [0.0, 128 / 255, 1.0], atol=1e-6)
    imagenet = registry.InputSpec(
        name="x", size=(4, 4), channels="RGB", scale="imagenet",
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
    )  # fmt: skip
    out = crop_batch(img, [WHOLE, WHOLE], imagenet)
    assert out.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(out[1, 0, 0, 0], (1.0 - 0.485) / 0.229, rtol=1e-5)


def test_top_k_orders_and_clips() -> None:
    probs = np.array([[0.1, 0.7, 0.2]], np.float32)
    assert top_k(probs, ["a", "b", "c"], 5)[0] == [
        Prediction("b", pytest.approx(0.7), 1),
        Prediction("c", pytest.approx(0.2), 2),
        Prediction("a", pytest.approx(0.1), 3),
    ]


# ------------------------------------------------------------------------------ geofence

PREDS = [Prediction("Lion", 0.6, 1), Prediction("red fox", 0.3, 2), Prediction("wolf", 0.1, 3)]


def test_fence_rolls_up_a_top_label_outside_the_list() -> None:
    out = fence(PREDS, frozenset({"red fox"}))
    assert [(f.label, f.rank, f.geofence_status) for f in out] == [
        ("animal", 1, "rolled_up"),
        ("Lion", 2, "rolled_up"),
        ("red fox", 3, "allowed"),
        ("wolf", 4, "rolled_up"),
    ]
    assert out[0].probability == 0.6


def test_fence_keeps_allowed_top_label_and_marks_no_list() -> None:
    allowed = fence(PREDS, frozenset({"lion", "wolf"}))  # case-insensitive
    assert [(f.label, f.geofence_status) for f in allowed] == [
        ("Lion", "allowed"), ("red fox", "rolled_up"), ("wolf", "allowed"),
    ]  # fmt: skip
    assert {f.geofence_status for f in fence(PREDS, None)} == {"no_list"}


def test_geofence_file_sites_and_default(tmp_path: Path) -> None:
    path = tmp_path / "geofence.toml"
    path.write_text('default = ["Wolf"]\n[sites]\nnorth = ["lion"]\n', encoding="utf-8")
    fence_ = Geofence.from_file(path)
    assert fence_.allowed("north") == frozenset({"lion"})
    assert fence_.allowed("elsewhere") == frozenset({"wolf"})
    assert fence_.apply("north", PREDS)[0].geofence_status == "allowed"
    assert fence_.apply("south", PREDS)[0].label == "animal"
    no_default = Geofence.from_mapping({"north": ["lion"]})
    assert no_default.apply("south", PREDS)[0].geofence_status == "no_list"


def test_geofence_file_errors_say_what_to_fix(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[sites]\nnorth = "lion"\n', encoding="utf-8")
    with pytest.raises(GeofenceError, match="north"):
        Geofence.from_file(bad)
    with pytest.raises(GeofenceError, match="cannot read"):
        Geofence.from_file(tmp_path / "missing.toml")
