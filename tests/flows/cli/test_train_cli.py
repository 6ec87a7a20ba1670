"""``trapflow train``: reviewed labels from a real warehouse, the command's output and errors."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.pipeline.training import gather_images, reviewed_labels
from flows.store.warehouse import open_file
from models_ml.training import TrainingDataError, latest_trained

STATION = "jniedballa__camtrapR/inst/pictures/sample_images_species_dir/StationC/"


def _review(warehouse: Path, per_folder: int = 4) -> dict[str, str]:
    """Label some StationC images as a reviewer would (two species), plus a false positive."""
    labelled: dict[str, str] = {}
    with open_file(warehouse) as con:
        rows = con.execute(
            "select media_id, file_path from raw.media where file_path like ? order by file_path",
            [STATION + "%"],
        ).fetchall()
        counts: dict[str, int] = {}
        for media_id, path in rows:
            folder = path.split("/")[-2]
            if folder not in ("EGY", "PBE"):
                continue
            counts[folder] = counts.get(folder, 0) + 1
            if counts[folder] > per_folder:
                fp = counts[folder] == per_folder + 1
                con.execute(
                    "insert into review.labels values (uuid(), ?, null, 'animal', ?, ?, null, "
                    "'tester', ?, null)",
                    [media_id, "wrong" if fp else None, fp, datetime(2026, 1, 1)],
                )
                continue
            label = {"EGY": "moonrat", "PBE": "leopard cat"}[folder]
            # an older, superseded label first: only the latest review counts
            for when, lab in ((datetime(2025, 1, 1), "civet"), (datetime(2026, 1, 1), label)):
                con.execute(
                    "insert into review.labels values (uuid(), ?, null, 'animal', ?, false, "
                    "null, 'tester', ?, null)",
                    [media_id, lab, when],
                )
            labelled[path] = label
    return labelled


@pytest.fixture()
def reviewed_warehouse(sample_run: dict[str, Any], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    warehouse = tmp_path / "reviewed.duckdb"
    shutil.copy2(sample_run["warehouse"], warehouse)
    return warehouse, _review(warehouse)


def test_reviewed_labels_come_from_the_latest_review(
    reviewed_warehouse: tuple[Path, dict[str, str]], camtrap_dir: Path
) -> None:
    warehouse, labelled = reviewed_warehouse
    items = reviewed_labels(warehouse)
    got = {str(i.path.relative_to(camtrap_dir)): i.label for i in items if i.origin == "review"}
    assert got == labelled and len(got) == 8
    # the sample's camtrapR species tags (XMP) came in with the run: labels too
    imported = [i for i in items if i.origin == "import:xmp"]
    assert len(imported) == 41 and all("species_tag" in str(i.path) for i in imported)


def test_train_command_on_reviewed_labels_registers_the_head(
    reviewed_warehouse: tuple[Path, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    trapflow_env: dict[str, str],
) -> None:
    warehouse, _ = reviewed_warehouse
    model_dir = tmp_path / "models"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRAPFLOW_MODEL_DIR", str(model_dir))
    res = CliRunner().invoke(
        app,
        ["train", "--warehouse", str(warehouse), "--min-per-class", "3", "--val-fraction", "0.4"],
    )
    assert res.exit_code == 0, res.output
    assert "species_head@1" in res.output and "majority baseline" in res.output
    assert "leopard cat" in res.output and "moonrat" in res.output
    assert latest_trained(model_dir) == "species_head"
    assert (model_dir / "trained" / "species_head" / "v1" / "confusion.png").is_file()


def test_train_command_errors_say_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRAPFLOW_MODEL_DIR", str(tmp_path / "models"))
    runner = CliRunner()
    res = runner.invoke(app, ["train"])
    assert res.exit_code == 1
    assert "nothing to train on" in res.output and "--data" in res.output
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "empty")])
    assert res.exit_code == 1 and "no images found" in res.output
    only = tmp_path / "one" / "fox"
    only.mkdir(parents=True)
    for k in range(6):
        (only / f"{k}.jpg").write_bytes(b"\xff\xd8 not really")
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "one")])
    assert res.exit_code == 1 and "at least two species" in res.output
    assert "Traceback" not in res.output
    with pytest.raises(TrainingDataError, match="not found"):
        gather_images(None, None, tmp_path / "missing.duckdb")


def test_reviewed_labels_follow_the_review_in_force(
    reviewed_warehouse: tuple[Path, dict[str, str]], camtrap_dir: Path
) -> None:
    """dbt says which review wins (marts.fct_label_reviews): an image whose latest review marks
    it a false positive is left out, though an older review named a species."""
    warehouse, labelled = reviewed_warehouse
    retracted = sorted(labelled)[0]
    with open_file(warehouse) as con:
        row = con.execute("select media_id from raw.media where file_path = ?", [retracted])
        media_id = (row.fetchone() or ("",))[0]
        con.execute(
            "insert into review.labels values (uuid(), ?, null, 'animal', null, true, null, "
            "'tester', ?, null)",
            [media_id, datetime(2026, 2, 1)],
        )
    got = {
        str(i.path.relative_to(camtrap_dir)): i.label
        for i in reviewed_labels(warehouse)
        if i.origin == "review"
    }
    assert retracted not in got
    assert got == {p: lab for p, lab in labelled.items() if p != retracted}


def test_reviews_without_marts_say_to_build_them(tmp_path: Path) -> None:
    """Which review is in force is dbt's: reviews in a warehouse dbt never built ask for
    'trapflow marts'; a warehouse without reviews has none to train on."""
    from flows.store import warehouse as _warehouse

    warehouse = tmp_path / "w.duckdb"
    with _warehouse.connect(warehouse) as con:
        _warehouse.ensure_schema(con)
    assert reviewed_labels(warehouse) == []
    with pytest.raises(TrainingDataError, match="no reviewed species labels"):
        gather_images(None, None, warehouse)
    with _warehouse.connect(warehouse) as con:
        con.execute(
            "insert into review.labels values ('l1', 'm1', null, 'animal', 'fox', false, null, "
            "'tester', now(), null)"
        )
    with pytest.raises(TrainingDataError, match="run 'trapflow marts' first"):
        reviewed_labels(warehouse)


#: Two species the detector boxes well, photos of the samples (the camtrapR night photos
#: above rarely reach the animal threshold, so the species stage would not see them).
TRAINED_SPECIES = {
    "burrowing owl": ("conservationtechlab__animl-py/examples/BUOW", "*.JPG"),
    "african elephant": ("google__cameratrapai/test_data", "african_elephants*.jpg"),
}


def _species_photos(camtrap_dir: Path) -> dict[str, str]:
    """Relative path under the samples -> species (the truncated elephant left out)."""
    out = {}
    for label, (folder, pattern) in TRAINED_SPECIES.items():
        for src in sorted((camtrap_dir / folder).glob(pattern)):
            if "truncated" not in src.name:
                out[str(src.relative_to(camtrap_dir))] = label
    return out


@pytest.mark.slow  # trains a head, ingests 10 photos, builds the marts (1-3 min)
def test_a_trained_head_s_labels_reach_the_marts_and_the_exports(
    prefect_harness: None,
    pulled_models: Path,
    camtrap_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    trapflow_env: dict[str, str],
) -> None:
    """``trapflow train`` on two folders of species, then a run over the same photos: the
    head's labels are what the marts count (fct_daily_population) and what the exports say
    (MegaDetector JSON classifications, Camtrap DP scientificName and classifiedBy, CSV)."""
    from flows.formats import exports as _exports
    from flows.ingest import ingest
    from flows.settings import load_settings
    from tests.conftest import copy_samples, query

    truth = _species_photos(camtrap_dir)
    species = set(truth.values())
    labelled = tmp_path / "labelled"
    for rel, label in truth.items():
        (labelled / label).mkdir(parents=True, exist_ok=True)
        shutil.copy2(camtrap_dir / rel, labelled / label / Path(rel).name)
    model_dir = tmp_path / "models"  # of its own: the session's model folder gets no head
    shutil.copytree(pulled_models, model_dir)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRAPFLOW_MODEL_DIR", str(model_dir))
    res = CliRunner().invoke(
        app, ["train", "--data", str(labelled), "--min-per-class", "3", "--val-fraction", "0.4"]
    )
    assert res.exit_code == 0, res.output
    assert latest_trained(model_dir) == "species_head"

    card = tmp_path / "card"
    copy_samples(camtrap_dir, card, sorted(truth))
    warehouse = tmp_path / "w.duckdb"
    ingest(source=str(card), warehouse=str(warehouse))
    settings = load_settings(warehouse=warehouse)
    assert settings.species_model == "species_head"

    # the marts count the head's labels (the detector's 'animal' only where it is unsure)
    population = {
        str(r[0]).lower()
        for r in query(
            warehouse,
            "select distinct label from marts.fct_daily_population where category = 'animal'",
        )
    }
    assert species <= population, population
    assert population <= species | {"animal"}
    per_image = dict(
        query(
            warehouse,
            "select m.file_path, lower(o.label) from intermediate.int_observations_per_image o "
            "join marts.dim_media m using (media_id) where o.category = 'animal' "
            "and o.label_source = 'classifier'",
        )
    )
    assert per_image and all(truth[path] == label for path, label in per_image.items())

    # MegaDetector JSON: the head is the classifier, its labels the categories
    doc = _exports.mdjson_results(
        warehouse, animal_model=settings.animal_model, general_model=settings.general_model,
        typical_threshold=settings.detection_thresholds["animal"],
        conservative_threshold=settings.inference_floor,
    )  # fmt: skip
    assert doc["info"]["classifier"] == "species_head@1"
    assert set(doc["classification_categories"].values()) == species
    names = doc["classification_categories"]
    top = {
        im["file"]: names[det["classifications"][0][0]]
        for im in doc["images"]
        for det in im["detections"] or []
        if det.get("classifications")
    }
    assert set(top) >= set(per_image)

    # Camtrap DP: the labels are the scientific names, classified by the head
    out = tmp_path / "dp"
    _exports.export_camtrapdp(
        warehouse, out, animal_model=settings.animal_model,
        general_model=settings.general_model, sensitive=(),
        missing_location=(1.0, 117.0, 1000.0),
    )  # fmt: skip
    with (out / "observations.csv").open(encoding="utf-8", newline="") as fh:
        observations = list(csv.DictReader(fh))
    named = [o for o in observations if o["scientificName"]]
    assert {o["scientificName"].lower() for o in named} == species
    media_level = [o for o in named if o["observationLevel"] == "media"]
    assert media_level and all(o["classifiedBy"] == "species_head@1" for o in media_level)
    assert {o["scientificName"].lower() for o in named if o["observationLevel"] == "event"}
    package = json.loads((out / "datapackage.json").read_text(encoding="utf-8"))
    assert {t["scientificName"].lower() for t in package["taxonomic"]} == species

    # CSV: the population mart as it stands
    paths = _exports.export_mart_csvs(warehouse, tmp_path / "csv")
    daily = next(p for p in paths if p.stem == "fct_daily_population")
    with daily.open(encoding="utf-8", newline="") as fh:
        assert species <= {r["label"].lower() for r in csv.DictReader(fh)}
