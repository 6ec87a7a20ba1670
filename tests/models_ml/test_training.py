"""Training a species head on the real sample photos whose species MANIFEST.csv knows.

One module fixture detects and embeds the camtrapR StationC species folders once (~24 images,
real MegadetectorLite + real embedder); every other test re-uses its embedding cache.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models_ml import registry
from models_ml import training as T
from models_ml.classifier import EmbeddingHeadClassifier, load_classifier
from models_ml.session import create_session

STATION = "jniedballa__camtrapR/inst/pictures/sample_images_species_dir/StationC/"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, model_mirror: Path) -> Path:
    folder = tmp_path_factory.mktemp("train-models")
    manifest = registry.load_manifest()
    for name in ("mdlite_yolox_tiny", T.EMBEDDER):
        registry.pull(manifest[name], folder, str(model_mirror))
    return folder


@pytest.fixture(scope="module")
def items(camtrap_dir: Path, manifest_rows: list[dict[str, str]]) -> list[T.LabelledImage]:
    """StationC's photos labelled with MANIFEST.csv's species (not the folder names)."""
    rows = [
        r
        for r in manifest_rows
        if r["path"].startswith(STATION) and r["species_or_label"] and r["kind"] == "image"
    ]
    per_class: dict[str, int] = {}
    out = []
    for r in rows:  # at most 6 per species keeps the one detector pass short
        label = r["species_or_label"]
        per_class[label] = per_class.get(label, 0) + 1
        if per_class[label] <= 6:
            out.append(T.LabelledImage(camtrap_dir / r["path"], label))
    assert len(out) >= 18
    return out


@pytest.fixture(scope="module")
def embedder(model_dir: Path) -> T.CropEmbedder:
    return T.CropEmbedder(model_dir, intra_op_threads=2)


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
    model_dir: Path,
    items: list[T.LabelledImage],
    embedder: T.CropEmbedder,
) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("trained")
    ticks: list[tuple[int, int]] = []
    result = T.train_head(
        items,
        model_dir=model_dir,
        out_root=out,
        embedder=embedder,
        progress=lambda done, total, _name: ticks.append((done, total)),
    )
    return {"result": result, "out": out, "ticks": ticks}


def test_head_beats_the_majority_baseline_on_held_out_images(trained: dict[str, Any]) -> None:
    result: T.TrainResult = trained["result"]
    ev = result.evaluation
    assert result.model_id == "species_head@1"
    assert set(result.labels) == {
        "Leopard Cat (Prionailurus bengalensis)",
        "Moonrat (Echinosorex gymnura)",
        "Mousedeer (Tragulus sp.)",
    }
    # the one Malay Civet is below the minimum: reported and left out, never trained on
    assert result.excluded_classes == {"Malay Civet (Viverra tangalunga)": 1}
    assert ev.n_validation >= 6 and ev.n_train >= 11 and ev.n_validation + ev.n_train == 18
    assert result.split == "burst" and result.untested_classes == []
    assert sum(c.support for c in ev.per_class) == ev.n_validation
    assert all(c.support >= 1 for c in ev.per_class)
    assert np.asarray(ev.confusion).sum() == ev.n_validation
    assert ev.baseline_accuracy < 0.6
    assert ev.accuracy > ev.baseline_accuracy
    # held-out images were never trained on
    report = json.loads((result.out_dir / "report.json").read_text())
    assert not set(report["train_images"]) & set(report["validation_images"])

    # nor a frame of a held-out burst: camtrapR names each photo Station__date__time(n)
    def shot(path: str) -> tuple[str, datetime]:
        _station, day, clock = Path(path).name.split("(")[0].split("__")
        return str(Path(path).parent), datetime.strptime(f"{day} {clock}", "%Y-%m-%d %H-%M-%S")

    for t_folder, t_at in map(shot, report["train_images"]):
        for v_folder, v_at in map(shot, report["validation_images"]):
            assert t_folder != v_folder or abs((t_at - v_at).total_seconds()) >= 1800
    assert (result.out_dir / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        "| label | precision | recall | F1 | support |"
        in (result.out_dir / "report.md").read_text()
    )
    # progress went from 0 to every image
    n = len(trained["ticks"]) - 1
    assert trained["ticks"][0] == (0, n) and trained["ticks"][-1] == (n, n) and n >= 18


def test_onnx_head_gives_the_sklearn_probabilities(
    trained: dict[str, Any], items: list[T.LabelledImage], embedder: T.CropEmbedder
) -> None:
    result: T.TrainResult = trained["result"]
    cache = T.EmbeddingCache(trained["out"] / "embeddings", embedder.cache_key)
    emb = T.embed_images(items, embedder, cache)
    assert emb.cache_hits == len(items)  # nothing recomputed
    session = create_session(result.head_path)
    assert [i.name for i in session.get_inputs()] == ["embedding"]
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    (onnx_probs,) = session.run(["probabilities"], {"embedding": emb.x})
    want = result.estimator.predict_proba(emb.x.astype(np.float64))
    np.testing.assert_allclose(onnx_probs, want, atol=1e-5)
    labels = (result.out_dir / "labels.txt").read_text().splitlines()
    assert labels == [str(c) for c in result.estimator.classes_]


def test_binary_head_exports_both_columns(
    tmp_path: Path, trained: dict[str, Any], items: list[T.LabelledImage], embedder: T.CropEmbedder
) -> None:
    cache = T.EmbeddingCache(trained["out"] / "embeddings", embedder.cache_key)
    emb = T.embed_images(items, embedder, cache)
    y = [i.label for i in emb.items]
    two = [k for k, lab in enumerate(y) if lab.startswith(("Leopard", "Mousedeer"))]
    model = T.fit_head(emb.x[two], [y[k] for k in two])
    path = T.export_head_onnx(model, tmp_path / "head.onnx")
    (probs,) = create_session(path).run(["probabilities"], {"embedding": emb.x})
    assert probs.shape == (len(emb.x), 2)
    np.testing.assert_allclose(probs, model.predict_proba(emb.x.astype(np.float64)), atol=1e-5)


def test_retraining_adds_a_version_from_the_cache_and_the_classifier_uses_it(
    trained: dict[str, Any],
    model_dir: Path,
    items: list[T.LabelledImage],
    embedder: T.CropEmbedder,
    camtrap_dir: Path,
) -> None:
    first: T.TrainResult = trained["result"]
    # the same photos, labels and settings: the registered head is that head; nothing added
    with pytest.raises(T.AlreadyTrained, match="species_head@1"):
        T.train_head(items, model_dir=model_dir, out_root=trained["out"], embedder=embedder)
    assert not (trained["out"] / "species_head" / "v2").exists()
    second = T.train_head(
        items, model_dir=model_dir, out_root=trained["out"], embedder=embedder,
        config=T.TrainingConfig(seed=1),
    )  # fmt: skip
    assert second.model_id == "species_head@2"
    assert second.cache_hits == len(items)
    assert first.head_path.is_file()  # version 1 stays where it was
    assert T.latest_trained(model_dir) == "species_head"
    manifest = registry.load_manifest(user_models=T.trained_models(model_dir))
    spec = manifest["species_head"]
    assert spec.model_id == "species_head@2"
    assert registry.verify(spec, spec.files_dir(model_dir)).ok
    clf = load_classifier(spec, manifest, model_dir)
    assert isinstance(clf, EmbeddingHeadClassifier)
    assert list(clf.labels) == second.labels
    from PIL import Image

    img = Image.open(camtrap_dir / STATION / "TRA/StationC__2009-04-11__21-44-00(1).JPG")
    (preds,) = clf.classify(img.convert("RGB"), [T.WHOLE_FRAME], top_k=3)
    assert preds[0].label == "Mousedeer (Tragulus sp.)"


def test_unset_species_model_defaults_to_the_newest_trained_head(
    trained: dict[str, Any], model_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from flows.settings import load_settings

    monkeypatch.chdir(tmp_path)  # no trapflow.toml here
    monkeypatch.delenv("TRAPFLOW_SPECIES_MODEL", raising=False)
    monkeypatch.delenv("TRAPFLOW_CONFIG", raising=False)
    assert load_settings(model_dir=model_dir).species_model == "species_head"
    assert load_settings(model_dir=model_dir, species_model="").species_model == ""
    assert load_settings(model_dir=tmp_path / "none").species_model is None


def test_one_class_only_is_a_clear_error(
    tmp_path: Path, model_dir: Path, items: list[T.LabelledImage], embedder: T.CropEmbedder
) -> None:
    moonrats = [i for i in items if i.label.startswith("Moonrat")]
    with pytest.raises(T.TrainingDataError, match="at least two species"):
        T.train_head(moonrats, model_dir=model_dir, out_root=tmp_path, embedder=embedder)
    assert not (model_dir / "trained" / "species_head" / "v3").exists()


def test_empty_folder_and_bad_csv_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "data" / "fox").mkdir(parents=True)
    (tmp_path / "data" / "fox" / "notes.txt").write_text("no images here")
    with pytest.raises(T.TrainingDataError, match="no images found"):
        T.images_from_folders(tmp_path / "data")
    with pytest.raises(T.TrainingDataError, match="not a folder"):
        T.images_from_folders(tmp_path / "missing")
    bad = tmp_path / "bad.csv"
    bad.write_text("image,species_id\na.jpg,1\n")
    with pytest.raises(T.TrainingDataError, match="needs a file column"):
        T.images_from_csv(bad)
    good = tmp_path / "labels.csv"
    good.write_text("file,label\nfox/a.jpg,red fox\nfox/b.jpg,\n/abs/c.jpg,badger\n")
    got = T.images_from_csv(good)
    assert [(str(i.path), i.label) for i in got] == [
        (str(tmp_path / "fox/a.jpg"), "red fox"),
        ("/abs/c.jpg", "badger"),
    ]


def test_unreadable_images_are_skipped_with_a_reason_or_stop_with_a_clear_error(
    tmp_path: Path,
    model_dir: Path,
    trained: dict[str, Any],
    items: list[T.LabelledImage],
    embedder: T.CropEmbedder,
) -> None:
    data = tmp_path / "data"
    for label in ("fox", "badger"):
        (data / label).mkdir(parents=True)
        (data / label / "empty.jpg").write_bytes(b"")
        (data / label / "text.jpg").write_text("not a photo")
    junk = T.images_from_folders(data)
    with pytest.raises(T.TrainingDataError, match="none of the images could be used"):
        T.train_head(
            junk,
            model_dir=model_dir,
            out_root=tmp_path / "out",
            embedder=embedder,
            config=T.TrainingConfig(min_per_class=2),
        )
    # among good images, a bad one is reported and the rest trains
    truncated = data / "fox" / "truncated.jpg"
    truncated.write_bytes(items[0].path.read_bytes()[:600])
    mixed = [*items, T.LabelledImage(truncated, items[0].label)]
    cache = T.EmbeddingCache(trained["out"] / "embeddings", embedder.cache_key)
    emb = T.embed_images(mixed, embedder, cache)
    reasons = {Path(s.path).name: s.reason for s in emb.skipped}
    assert reasons["truncated.jpg"].startswith("not a usable image")
    assert len(emb.items) == len(items)


def test_balance_reports_small_classes_and_caps_large_ones() -> None:
    labels = ["a"] * 12 + ["b"] * 5 + ["c"] * 2
    keep, excluded, subsampled = T.balance(labels, min_per_class=3, max_per_class=8, seed=1)
    assert excluded == {"c": 2} and subsampled == {"a": 12}
    kept = [labels[i] for i in keep]
    assert kept.count("a") == 8 and kept.count("b") == 5 and "c" not in kept
    train, val = T.stratified_split(kept, 0.25, seed=1)
    assert not set(train) & set(val)
    assert {kept[i] for i in val} == {"a", "b"} == {kept[i] for i in train}
