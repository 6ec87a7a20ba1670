"""DetectorEnsemble: category routing on tiny generated models, then the real pair."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models_ml import DetectorEnsemble, load_manifest, load_rgb
from models_ml.registry import ModelSpec
from tests.models_ml._onnx_factory import fixed_output_model, make_spec, raw_row


@pytest.fixture
def tiny_models(tmp_path: Path) -> dict[str, ModelSpec]:
    """An animal-only model (64x64) and an MD-layout general model (96x32) on disk."""
    animal = make_spec(
        "animalnet",
        decoder="yolox_decoded",
        size=(64, 64),
        labels=("animal",),
        categories={"animal": "animal"},
    )
    general = make_spec("general", decoder="yolov5", size=(96, 32), version="2")
    fixed_output_model(
        tmp_path / animal.file, np.array([raw_row((16, 16, 8, 8), 0.9, [0.9])]), size=(64, 64)
    )
    fixed_output_model(
        tmp_path / general.file,
        np.array(
            [
                raw_row((8, 8, 8, 8), 1.0, [0.0, 0.7, 0.0]),  # person
                raw_row((40, 8, 8, 8), 1.0, [0.0, 0.0, 0.6]),  # vehicle
                raw_row((72, 8, 8, 8), 1.0, [0.5, 0.0, 0.0]),  # animal (second opinion)
            ]
        ),
        size=(96, 32),
    )
    classifier = dataclasses.replace(animal, name="clf", kind="classifier")
    return {"animalnet": animal, "general": general, "clf": classifier}


def summary(ensemble: DetectorEnsemble, img: Image.Image) -> list[tuple[str, str, float]]:
    return [(d.model, d.category, round(d.confidence, 3)) for d in ensemble.detect(img)]


def test_default_routing(tiny_models: dict[str, ModelSpec], tmp_path: Path) -> None:
    ens = DetectorEnsemble.from_models_dir(
        tmp_path, tiny_models, animal_model="animalnet", general_model="general"
    )
    assert ens.model_ids == ("animalnet@0", "general@2")
    assert ens.draft_size == (96, 64)
    assert summary(ens, Image.new("RGB", (288, 96))) == [
        ("animalnet@0", "animal", 0.81),
        ("general@2", "person", 0.7),
        ("general@2", "vehicle", 0.6),
        ("general@2", "animal", 0.5),
    ]


def test_general_model_without_animal_second_opinion(
    tiny_models: dict[str, ModelSpec], tmp_path: Path
) -> None:
    ens = DetectorEnsemble.from_models_dir(
        tmp_path,
        tiny_models,
        animal_model="animalnet",
        general_model="general",
        general_categories=("person", "vehicle"),
    )
    cats = [c for _, c, _ in summary(ens, Image.new("RGB", (288, 96)))]
    assert cats == ["animal", "person", "vehicle"]


def test_animal_model_alone(tiny_models: dict[str, ModelSpec], tmp_path: Path) -> None:
    ens = DetectorEnsemble.from_models_dir(
        tmp_path, tiny_models, animal_model="animalnet", general_model=None
    )
    assert ens.model_ids == ("animalnet@0",)
    assert ens.draft_size == (64, 64)
    assert summary(ens, Image.new("RGB", (288, 96))) == [("animalnet@0", "animal", 0.81)]


def test_configuration_errors(tiny_models: dict[str, ModelSpec], tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="nope"):
        DetectorEnsemble.from_models_dir(tmp_path, tiny_models, animal_model="nope")
    with pytest.raises(ValueError, match="classifier"):
        DetectorEnsemble.from_models_dir(tmp_path, tiny_models, animal_model="clf")
    with pytest.raises(ValueError, match="subset"):
        DetectorEnsemble.from_models_dir(
            tmp_path,
            tiny_models,
            animal_model="animalnet",
            general_model="general",
            general_categories=("bird",),
        )
    with pytest.raises(ValueError, match="at least one"):
        DetectorEnsemble([])


# ---------------------------------------------------------------- the real pair


@pytest.fixture(scope="module")
def ensemble(model_mirror: Path) -> DetectorEnsemble:
    return DetectorEnsemble.from_models_dir(model_mirror)


@pytest.mark.slow
def test_real_ensemble_identity(ensemble: DetectorEnsemble) -> None:
    manifest = load_manifest()
    assert ensemble.model_ids == (
        manifest["mdlite_yolox_tiny"].model_id,
        manifest["yolox_nano_coco"].model_id,
    )
    assert ensemble.draft_size == (640, 640)


@pytest.mark.slow
def test_real_ensemble_animal_and_person(ensemble: DetectorEnsemble, camtrap_dir: Path) -> None:
    path = (
        camtrap_dir
        / "conservationtechlab__animl-r/examples/test_data/Southwest/New Data/MDF102.jpg"
    )
    dets = ensemble.detect(load_rgb(path.read_bytes(), draft_size=ensemble.draft_size))
    mdlite_id, coco_id = ensemble.model_ids
    assert {d.category for d in dets if d.model == mdlite_id} == {"animal"}
    people = [d for d in dets if d.category == "person"]
    assert people and people[0].model == coco_id and people[0].confidence >= 0.5
    for d in dets:
        assert 0 <= d.bbox.x <= 1 and 0 <= d.bbox.y <= 1
        assert d.bbox.x + d.bbox.w <= 1 + 1e-9 and d.bbox.y + d.bbox.h <= 1 + 1e-9


@pytest.mark.slow
def test_real_coco_animals_are_a_second_opinion(
    ensemble: DetectorEnsemble, camtrap_dir: Path
) -> None:
    path = camtrap_dir / "google__cameratrapai/test_data/african_elephants.jpg"
    dets = ensemble.detect(load_rgb(path.read_bytes(), draft_size=ensemble.draft_size))
    coco_animals = [d for d in dets if d.model == ensemble.model_ids[1] and d.category == "animal"]
    assert coco_animals and coco_animals[0].label == "elephant"
    assert coco_animals[0].confidence >= 0.5


@pytest.mark.slow
def test_real_ensemble_is_thread_safe(ensemble: DetectorEnsemble, camtrap_dir: Path) -> None:
    base = camtrap_dir / "drivendataorg__zamba/tests/assets/images/ena24_small"
    images = [
        load_rgb(p.read_bytes(), draft_size=ensemble.draft_size)
        for p in sorted(base.glob("*.jpg"))[:4]
    ]
    sequential = [ensemble.detect(img) for img in images]
    with ThreadPoolExecutor(max_workers=2) as pool:
        concurrent = list(pool.map(ensemble.detect, images * 2))
    assert concurrent == sequential * 2
