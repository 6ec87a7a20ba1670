"""A user's own MegaDetector v5 and v6 exports, registered in trapflow.toml, count in the marts.

Each detector is a tiny generated ONNX file in the real export's layout (v5: YOLOv5's
``[1, A, 5 + 3]``; v6: ultralytics' ``[1, 4 + 3, A]``) that returns the same known boxes for
every photo, in input pixels of the registry's default size for its decoder (1280 / 640,
centred letterbox). Registered as docs/models.md says, v5 as ``animal_model`` and v6 as
``general_model``, and run by the ingest flow with a real dbt build on five real sample
photos, the marts must hold exactly what the boxes give by hand. Each model returns, per photo:

* an animal box at 0.9025 (v5) / 0.9 (v6) and one at 0.1, a person box at 0.81 / 0.8 and a
  vehicle box at 0.3; the animal model's boxes are kept for animal only, the general model's
  for every category (its animals are a second opinion, stored, never counted);
* counted (dbt's rules, thresholds 0.25 / 0.5 / 0.5): v5's animal at 0.9025 and v6's person at
  0.8, so every photo has one animal and one person, no vehicle;
* events: three photos at site ``mike_folder`` on three different days (three events) and a
  burst of two photos one second apart at site ``SDZG 2`` (one event of two images), for the
  label ``animal`` and for ``person`` alike.

A run with one MegaDetector for everything (``animal_model = general_model``) is
tests/models_ml/test_user_models.py::test_one_megadetector_for_every_category_stores_each_box_once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from models_ml import registry
from tests.conftest import copy_samples, query
from tests.models_ml._onnx_factory import mdv5_table, mdv6_table, megadetector_onnx

pytestmark = pytest.mark.slow

PHOTOS = {  # path under the sample data -> site (the parent folder)
    "agentmorris__MegaDetector/images/mike_folder/beaver_20241016221147_46.jpg": "mike_folder",
    "agentmorris__MegaDetector/images/mike_folder/caper_20241018010155_23.jpg": "mike_folder",
    "agentmorris__MegaDetector/images/mike_folder/heron_20241018021216_268.jpg": "mike_folder",
    "conservationtechlab__animl-r/examples/test_data/Peru/S90/SDZG 2/EK000012.JPG": "SDZG 2",
    "conservationtechlab__animl-r/examples/test_data/Peru/S90/SDZG 2/EK000013.JPG": "SDZG 2",
}
# by hand from the photos' EXIF times (30 min independence window): images per event
IMAGES_PER_EVENT = {"SDZG 2": [2], "mike_folder": [1, 1, 1]}

# The known boxes, (cx, cy, w, h) as fractions of the square input: the canvas' centre is the
# photo's centre with the centred letterbox.
ANIMAL, ANIMAL_LOW = (0.5, 0.5, 0.2, 0.1), (0.78, 0.55, 0.06, 0.06)
PERSON, VEHICLE = (0.25, 0.5, 0.1, 0.2), (0.75, 0.5, 0.1, 0.1)
V5_SIZE, V6_SIZE = 1280, 640  # the registry's defaults for decoders yolov5 and yolov8
V5_ROWS = [  # objectness, then the animal / person / vehicle probabilities
    (ANIMAL, 0.95, [0.95, 0.03, 0.02]),  # animal 0.9025
    (ANIMAL_LOW, 0.4, [0.25, 0.0, 0.0]),  # animal 0.1
    (PERSON, 0.9, [0.05, 0.9, 0.05]),  # person 0.81
    (VEHICLE, 0.6, [0.0, 0.0, 0.5]),  # vehicle 0.3
]
V6_ROWS = [  # class scores, no objectness
    (ANIMAL, [0.9, 0.0, 0.0]),
    (ANIMAL_LOW, [0.1, 0.0, 0.0]),
    (PERSON, [0.0, 0.8, 0.0]),
    (VEHICLE, [0.0, 0.0, 0.3]),
]
STORED = [  # one photo's rows in raw.detections: model, category, category id, confidence
    ("my_mdv5", "animal", 1, 0.1), ("my_mdv5", "animal", 1, 0.9025),
    ("my_mdv6", "animal", 1, 0.1), ("my_mdv6", "animal", 1, 0.9),
    ("my_mdv6", "person", 2, 0.8), ("my_mdv6", "vehicle", 3, 0.3),
]  # fmt: skip
COUNTED = [("my_mdv5", "animal", 0.9025), ("my_mdv6", "person", 0.8)]


def _px(box: tuple[float, float, float, float], size: int) -> tuple[float, float, float, float]:
    cx, cy, w, h = box
    return cx * size, cy * size, w * size, h * size


def _user_models(folder: Path) -> dict[str, dict[str, str]]:
    """Write both exports; their [models.<name>] tables as in docs/models.md."""
    v5 = megadetector_onnx(
        folder / "md_v5a.0.0.onnx",
        mdv5_table([(_px(b, V5_SIZE), obj, p) for b, obj, p in V5_ROWS], empty_anchors=60),
        size=(V5_SIZE, V5_SIZE),
    )
    v6 = megadetector_onnx(
        folder / "mdv6-yolov9-c.onnx",
        mdv6_table([(_px(b, V6_SIZE), p) for b, p in V6_ROWS], empty_anchors=60),
        size=(V6_SIZE, V6_SIZE),
    )
    return {
        name: {"file": str(path), "sha256": registry.sha256_file(path, cached=False),
               "decoder": decoder, "version": "test"}
        for name, path, decoder in (("my_mdv5", v5, "yolov5"), ("my_mdv6", v6, "yolov8"))
    }  # fmt: skip


def _toml(models: dict[str, dict[str, str]]) -> str:
    lines = [
        'animal_model = "my_mdv5"',
        'general_model = "my_mdv6"',
        'person_cue_model = ""',  # no second opinion on people: only the known boxes count
        'ocr_model = ""',
        'species_model = ""',
    ]
    for name, table in models.items():
        lines += ["", f"[models.{name}]"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def user_run(
    prefect_harness: None, camtrap_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """One ingest of the photos with the two exports as the user's detectors."""
    from flows.ingest import ingest

    root = tmp_path_factory.mktemp("user-detectors")
    config = root / "trapflow.toml"
    config.write_text(_toml(_user_models(root / "my models")), encoding="utf-8")
    copy_samples(camtrap_dir, root / "card", list(PHOTOS))
    with pytest.MonkeyPatch.context() as mp:
        for key in ("ANIMAL_MODEL", "GENERAL_MODEL", "GENERAL_CATEGORIES", "PERSON_CUE_MODEL",
                    "SPECIES_MODEL", "OCR_MODEL", "MODELS", "DETECTION_THRESHOLDS"):  # fmt: skip
            mp.delenv(f"TRAPFLOW_{key}", raising=False)
        mp.setenv("TRAPFLOW_CONFIG", str(config))
        mp.setenv("TRAPFLOW_HOME", str(root / ".trapflow"))
        mp.setenv("TRAPFLOW_MODEL_DIR", str(root / "models"))
        warehouse = root / "warehouse.duckdb"
        summary = ingest(source=str(root / "card"), warehouse=str(warehouse))
        yield {"warehouse": warehouse, "summary": summary}


def test_the_known_boxes_are_stored(user_run: dict[str, Any]) -> None:
    assert user_run["summary"].stats.images == len(PHOTOS)
    rows = query(
        user_run["warehouse"],
        "select m.file_path, d.model_name, d.model_version, d.category, d.category_id, "
        "d.confidence, d.label from raw.detections d join raw.media m using (media_id)",
    )
    assert {(r[2], r[3]) == ("test", r[6]) for r in rows} == {True}  # MegaDetector's labels
    per_photo: dict[str, list[tuple[Any, ...]]] = {}
    for path, model, _, category, category_id, confidence, _ in rows:
        per_photo.setdefault(path, []).append((model, category, int(category_id), confidence))
    assert len(per_photo) == len(PHOTOS)
    for boxes in per_photo.values():
        assert sorted(boxes) == [(*r[:3], pytest.approx(r[3], abs=1e-5)) for r in STORED]


def test_boxes_are_placed_by_the_centred_letterbox(user_run: dict[str, Any]) -> None:
    # the animal box is the canvas' centre, 0.2 of the input wide: in a landscape photo it is
    # the photo's centre, 0.2 of its width and 0.1 x width / height of its height
    rows = query(
        user_run["warehouse"],
        "select m.width, m.height, d.bbox_x, d.bbox_y, d.bbox_w, d.bbox_h from raw.detections d "
        "join raw.media m using (media_id) where d.category = 'animal' and d.confidence > 0.5",
    )
    assert len(rows) == 2 * len(PHOTOS)
    for width, height, x, y, w, h in rows:
        assert [x + w / 2, y + h / 2, w] == pytest.approx([0.5, 0.5, 0.2], abs=0.01)
        assert h == pytest.approx(0.1 * width / height, abs=0.01)


def test_only_the_configured_detectors_boxes_count(user_run: dict[str, Any]) -> None:
    rows = query(
        user_run["warehouse"],
        "select media_id, model_name, category, confidence from marts.fct_detections "
        "where is_counted order by all",
    )
    per_photo: dict[str, list[tuple[Any, ...]]] = {}
    for media_id, *counted in rows:
        per_photo.setdefault(media_id, []).append(tuple(counted))
    assert len(per_photo) == len(PHOTOS)
    for counted in per_photo.values():
        assert counted == [(m, c, pytest.approx(p, abs=1e-5)) for m, c, p in COUNTED]


def test_dim_media_flags_and_counts(user_run: dict[str, Any]) -> None:
    rows = query(
        user_run["warehouse"],
        "select site_id, has_animal, has_person, has_vehicle, n_animals, n_persons, n_vehicles "
        "from marts.dim_media",
    )
    assert sorted(r[0] for r in rows) == sorted(PHOTOS.values())
    assert {r[1:] for r in rows} == {(True, True, False, 1, 1, 0)}  # the vehicle at 0.3 < 0.5


@pytest.mark.parametrize(("category", "label", "is_human"),
                         [("animal", "animal", False), ("person", "person", True)])  # fmt: skip
def test_events_and_daily_population_carry_the_known_counts(
    user_run: dict[str, Any], category: str, label: str, is_human: bool
) -> None:
    warehouse = user_run["warehouse"]
    events = query(
        warehouse,
        "select site_id, label, is_human, max_count, images from marts.fct_events "
        "where category = ? order by site_id, event_started_at",
        [category],
    )
    assert {r[1:4] for r in events} == {(label, is_human, 1)}
    per_site: dict[str, list[int]] = {}
    for site, *_, images in events:
        per_site.setdefault(site, []).append(images)
    assert per_site == IMAGES_PER_EVENT
    daily = query(
        warehouse,
        "select site_id, label, sum(events), sum(images) from marts.fct_daily_population "
        "where category = ? group by all order by all",
        [category],
    )
    assert daily == [(site, label, len(n), sum(n)) for site, n in IMAGES_PER_EVENT.items()]


def test_the_run_record_names_the_user_detectors(user_run: dict[str, Any]) -> None:
    assert user_run["summary"].models == ["my_mdv5@test", "my_mdv6@test"]
    ((versions,),) = query(user_run["warehouse"], "select model_versions from raw.runs")
    assert versions == "my_mdv5@test, my_mdv6@test"
