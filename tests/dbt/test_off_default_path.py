"""Off the default path, the same numbers (issue 16): the real detector under another name, and
MegaDetector JSON imported from another tool, count in the marts exactly as the default path does.

Real photos, the real MegadetectorLite, real ingest flow, real dbt build, real DuckDB files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flows.cli import app
from models_ml import registry
from tests.conftest import copy_samples, query

pytestmark = pytest.mark.slow  # three real ingests / dbt builds (~80 s of CPU on 2 cores)

PERU = "conservationtechlab__animl-r/examples/test_data/Peru/S90"
PHOTOS = [  # EXIF times; sites from the folders (with spaces): 'SDZG 1', 'SDZG 2', 'New Data'
    f"{PERU}/SDZG 1/EK000001.JPG",
    f"{PERU}/SDZG 2/EK000012.JPG",
    f"{PERU}/SDZG 2/EK000013.JPG",
    f"{PERU}/SDZG 2/EK000014.JPG",
    "conservationtechlab__animl-r/examples/test_data/Southwest/New Data/MDF101.jpg",
    "conservationtechlab__animl-r/examples/test_data/Southwest/New Data/MDF102.jpg",
    # no animal box at the threshold: has_animal false
    "jniedballa__camtrapR/inst/pictures/sample_images_species_dir/StationB/PBE/"
    "StationB__2009-04-05__00-11-00(1).JPG",
]
DEFAULT_DETECTOR = "mdlite_yolox_tiny"

EVENTS = """
    select site_id, camera_id, category, label, event_started_at, event_ended_at, images, max_count
    from marts.fct_events where category = 'animal' order by all"""
DAILY = """
    select captured_on, site_id, category, label, events, max_count, sum_max_count, images,
           detections, trap_nights, rai
    from marts.fct_daily_population where category = 'animal' order by all"""
MEDIA = "select media_id, has_animal from marts.dim_media order by all"


def _marts(warehouse: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {name: query(warehouse, sql) for name, sql in
            (("events", EVENTS), ("daily", DAILY), ("media", MEDIA))}  # fmt: skip


def _ingest(source: Path, warehouse: Path) -> None:
    from flows.ingest import ingest

    ingest(source=str(source), warehouse=str(warehouse))


@pytest.fixture(scope="module")
def card(camtrap_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small card: seven photos at four sites."""
    root = tmp_path_factory.mktemp("card")
    copy_samples(camtrap_dir, root, PHOTOS)
    return root


@pytest.fixture(scope="module")
def default_run(
    prefect_harness: None, trapflow_env: dict[str, str], card: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:  # fmt: skip
    """The default path: the card ingested with the registry's animal detector."""
    warehouse = tmp_path_factory.mktemp("default") / "warehouse.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRAPFLOW_CONFIG", str(warehouse.parent / "no-config.toml"))
        _ingest(card, warehouse)
    return warehouse


def test_default_path_counts_the_card(default_run: Path) -> None:
    """The baseline the other paths are compared with is not empty."""
    marts = _marts(default_run)
    assert marts["events"] and marts["daily"]
    flags = [has_animal for _, has_animal in marts["media"]]
    assert len(flags) == len(PHOTOS) and any(flags) and not all(flags)


def test_own_detector_under_another_name_gives_the_same_marts(
    default_run: Path, card: Path, trapflow_env: dict[str, str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """docs/models.md's path for every MegaDetector user: the same model file registered as
    [models.my_md] with animal_model = "my_md" gives the marts of the default path."""
    spec = registry.load_manifest()[DEFAULT_DETECTOR]
    model_file = Path(trapflow_env["TRAPFLOW_MODEL_DIR"]) / spec.file
    config = tmp_path / "trapflow.toml"
    config.write_text(
        'animal_model = "my_md"\n\n'
        "[models.my_md]\n"
        f"file = {json.dumps(str(model_file))}\n"
        f'sha256 = "{registry.sha256_file(model_file)}"\n'
        'decoder = "yolox_decoded"\n'
        'labels = ["animal"]\n'
        'categories = { animal = "animal" }\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("TRAPFLOW_CONFIG", str(config))
    warehouse = tmp_path / "mine.duckdb"
    _ingest(card, warehouse)

    boxes = query(
        warehouse,
        "select model_name, count(*) from raw.detections where category = 'animal' "
        "and confidence >= 0.25 and model_name in ('my_md', ?) group by all",
        [DEFAULT_DETECTOR],
    )
    default_boxes = query(
        default_run,
        "select count(*) from raw.detections where category = 'animal' and confidence >= 0.25 "
        "and model_name = ?",
        [DEFAULT_DETECTOR],
    )
    assert boxes == [("my_md", default_boxes[0][0])]  # the same boxes, under the user's name
    assert _marts(warehouse) == _marts(default_run)


def test_imported_megadetector_json_counts_with_its_model_configured(
    default_run: Path, card: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/formats.md: boxes another tool wrote (detector md_v5a.0.0) count after
    TRAPFLOW_ANIMAL_MODEL=md_v5a.0.0, exactly as the same boxes do on the default path."""
    monkeypatch.setenv("TRAPFLOW_CONFIG", str(tmp_path / "no-config.toml"))
    runner = CliRunner()
    exported = tmp_path / "trapflow.json"
    res = runner.invoke(
        app, ["export", "mdjson", "--out", str(exported), "--warehouse", str(default_run)]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(exported.read_text(encoding="utf-8"))
    # as MegaDetector itself writes it: its own detector name, no trapflow model map
    doc["info"]["detector"] = "md_v5a.0.0.pt"
    doc["info"]["detector_metadata"] = {"megadetector_version": "v5a.0.0"}
    for image in doc["images"]:
        image["detections"] = [d for d in image["detections"] if d["category"] == "1"]
    foreign = tmp_path / "md.json"
    foreign.write_text(json.dumps(doc), encoding="utf-8")

    warehouse = tmp_path / "imported.duckdb"
    args = ["--warehouse", str(warehouse)]
    res = runner.invoke(app, ["import", "mdjson", str(foreign), "--source", str(card), *args])
    assert res.exit_code == 0, res.output
    assert query(warehouse, "select distinct model_name from raw.detections") == [("md_v5a.0.0",)]

    monkeypatch.setenv("TRAPFLOW_ANIMAL_MODEL", "md_v5a.0.0")
    res = runner.invoke(app, ["marts", *args])
    assert res.exit_code == 0, res.output

    imported, default = _marts(warehouse), _marts(default_run)
    assert imported["events"], "imported boxes gave no events"
    assert imported["events"] == default["events"]
    assert imported == default
