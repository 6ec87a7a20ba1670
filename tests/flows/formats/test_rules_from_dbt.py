"""The exports take what counts from the relations dbt builds, not from raw rows.

A small real ingest (a person photo and a few animals, real models, real dbt) shared by the
module; each test works on its own copy of the warehouse and changes only reviews, which the
marts' views read live.
"""

from __future__ import annotations

import csv
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from flows.formats import camtrapdp, images
from flows.formats import exports as _exports
from flows.settings import Settings
from flows.store.warehouse import open_file
from tests.conftest import copy_samples, query

PERSON = "conservationtechlab__animl-py/examples/Southwest/B012_2021-05-27_human.jpg"
ANIMALS = [  # burrowing owls the detector boxes well above its threshold
    "conservationtechlab__animl-py/examples/BUOW/RCNX0863.JPG",
    "conservationtechlab__animl-py/examples/BUOW/mnt_newnas_buow_CamTrapOriginals_CamTraps--"
    "BUOW_2021_MAP_Otay_Lonestar_LS52_R38_N_20210604-0617_R38_100RECNX_IMG_2225.JPG",
]
DEFAULTS = Settings()


@pytest.fixture(scope="module")
def small_run(
    prefect_harness: None,
    trapflow_env: dict[str, str],
    camtrap_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    from flows.ingest import ingest

    card = tmp_path_factory.mktemp("card")
    copy_samples(camtrap_dir, card, [PERSON, *ANIMALS])
    warehouse = tmp_path_factory.mktemp("small") / "w.duckdb"
    ingest(source=str(card), warehouse=str(warehouse))
    return warehouse


@pytest.fixture()
def warehouse(small_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "w.duckdb"
    shutil.copy2(small_run, copy)
    return copy


def _review(warehouse: Path, rows: list[tuple[Any, ...]]) -> None:
    """(media_id, detection_id, category, label, is_false_positive, reviewer, reviewed_at)"""
    with open_file(warehouse) as con:
        for i, row in enumerate(rows):
            con.execute(
                "insert into review.labels (label_id, media_id, detection_id, category, label, "
                "is_false_positive, reviewer, reviewed_at) values (?, ?, ?, ?, ?, ?, ?, ?)",
                [f"l{i}", *row],
            )


@pytest.mark.slow  # a small real ingest for the module
def test_image_export_blurs_a_box_a_reviewer_calls_a_person(
    warehouse: Path, tmp_path: Path
) -> None:
    """The detector said animal, the reviewer said person: the box is blurred (marts'
    fct_detections, the box as it stands now), not only the boxes a detector called person."""
    animal = ANIMALS[0]
    box = query(
        warehouse,
        "select d.detection_id, d.media_id from raw.detections d join raw.media m "
        "using (media_id) where m.file_path = ? and d.category = 'animal' "
        "order by d.confidence desc limit 1",
        [animal],
    )
    assert box, "the sample has an animal box"
    detection_id, media_id = box[0]
    before = images.export_images(warehouse, tmp_path / "before", blur=True)
    _review(
        warehouse,
        [(media_id, detection_id, "person", "person", False, "ranger.ann", datetime(2026, 1, 1))],
    )
    after = images.export_images(warehouse, tmp_path / "after", blur=True)
    with after.manifest.open(encoding="utf-8", newline="") as fh:
        rows = {r["source_path"]: r for r in csv.DictReader(fh)}
    with before.manifest.open(encoding="utf-8", newline="") as fh:
        was = {r["source_path"]: r for r in csv.DictReader(fh)}
    assert int(rows[animal]["people_blurred"]) == int(was[animal]["people_blurred"]) + 1
    assert rows[animal]["action"] == "blurred"
    assert int(rows[PERSON]["people_blurred"]) >= 1  # the detector's people, as before


@pytest.mark.slow  # a small real ingest for the module
def test_camtrapdp_names_the_reviewer_whose_label_is_in_force(
    warehouse: Path, tmp_path: Path
) -> None:
    """Two reviewers labelled one image; the later label is in force (marts.fct_label_reviews),
    so classifiedBy names that reviewer only."""
    media_id = query(
        warehouse,
        "select m.media_id from raw.media m join intermediate.int_observations_per_image o "
        "using (media_id) where m.file_path = ? and o.category = 'animal'",
        [ANIMALS[1]],
    )
    assert media_id, "the owl is counted as an animal"
    (media,) = media_id[0]
    _review(
        warehouse,
        [
            (media, None, "animal", "screech owl", False, "old.reviewer", datetime(2025, 1, 1)),
            (media, None, "animal", "burrowing owl", False, "ranger.ann", datetime(2026, 1, 1)),
        ],
    )
    with open_file(warehouse) as con:  # what the next build resolves (as in
        con.execute(  # test_exports: the per-image table updated to keep the test fast)
            "update intermediate.int_observations_per_image set label = 'burrowing owl', "
            "label_source = 'review', max_confidence = null "
            "where media_id = ? and category = 'animal'",
            [media],
        )
    out = tmp_path / "dp"
    camtrapdp.export_camtrapdp(
        warehouse, out, animal_model=DEFAULTS.animal_model,
        general_model=DEFAULTS.general_model, sensitive=(),
    )  # fmt: skip
    with (out / "observations.csv").open(encoding="utf-8", newline="") as fh:
        reviewed = [o for o in csv.DictReader(fh) if o["mediaID"] == media]
    assert [(o["scientificName"], o["classificationMethod"]) for o in reviewed] == [
        ("burrowing owl", "human")
    ]
    assert reviewed[0]["classifiedBy"] == "ranger.ann"


def test_formats_modules_stay_small_and_the_old_names_stay() -> None:
    """exports.py gathers the formats' names; no formats module is over 600 lines."""
    folder = Path(_exports.__file__).parent
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in folder.glob("*.py")}
    assert max(sizes.values()) <= 600, sizes
    for name in _exports.__all__:
        assert getattr(_exports, name) is not None
