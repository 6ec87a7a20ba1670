"""One classification rule for training and inference: a head trained on camtrapR's 100x75
thumbnails (most without a box the detector is sure of) classifies every photo of the next
run, and its report gives the unseen photos' accuracy beside the split's."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from models_ml._types import BBox, Detection
from models_ml.classifier import WHOLE_FRAME, Target, classification_targets
from models_ml.training import LabelledImage, group_split, split_groups
from tests.conftest import query

DIR = "jniedballa__camtrapR/inst/pictures/sample_images_species_dir"
MD = "mdlite@1"


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's consoles read COLUMNS once, when flows.cli is first imported (by any test of
    the worker): lines are asserted whole, so they must not wrap."""
    from flows.cli import _app as cli_app

    monkeypatch.setattr(cli_app.console, "_width", 200)
    monkeypatch.setattr(cli_app.err, "_width", 200)


def _det(category: str, conf: float, model: str = MD) -> Detection:
    return Detection(category, category, conf, BBox(0.1, 0.1, 0.2, 0.2), model)


def test_the_rule_crops_sure_boxes_else_the_whole_frame() -> None:
    sure, unsure = _det("animal", 0.6), _det("animal", 0.08)
    assert classification_targets([unsure, sure], 0.2, MD) == [Target(sure.bbox, 1)]
    # nothing sure: the whole frame, for the best animal box (which stays uncounted)
    assert classification_targets([unsure], 0.2, MD) == [Target(WHOLE_FRAME, 0)]
    assert classification_targets([], 0.2, MD) == [Target(WHOLE_FRAME, None)]
    # another model's animal box is not the species stage's
    assert classification_targets([_det("animal", 0.9, "other@1")], 0.2, MD) == [
        Target(WHOLE_FRAME, None)
    ]
    # a person box does not change the rule (whether anything counts is the marts')
    assert classification_targets([_det("person", 0.7), unsure], 0.2, MD) == [
        Target(WHOLE_FRAME, 1)
    ]


def test_bursts_stay_on_one_side_of_the_split() -> None:
    t0 = datetime(2024, 5, 1, 3, 0)
    items, times = [], []
    visits = [("c1", "fox", 0), ("c1", "fox", 120), ("c2", "fox", 0)]
    visits += [("c1", "deer", 300), ("c3", "deer", 0), ("c3", "deer", 90)]
    for cam, label, start in visits:
        for k in range(3):  # a burst of three frames a second apart
            items.append(LabelledImage(Path(f"/cards/{cam}/{label}{start}_{k}.jpg"), label))
            times.append(t0 + timedelta(minutes=start, seconds=k))
    items.append(LabelledImage(Path("/cards/c9/notime.jpg"), "fox"))
    times.append(None)
    groups = split_groups(items, times, "burst", gap_s=1800)
    assert len(set(groups)) == 7  # c1 fox@0, c1 fox@120, c2, c1 deer, c3 x2, the untimed one
    labels = [i.label for i in items]
    train, val, single = group_split(labels, groups, 0.25, seed=0)
    assert single == []
    assert {labels[i] for i in val} == {"fox", "deer"} == {labels[i] for i in train}
    for g in set(groups):
        sides = {i in val for i, gi in enumerate(groups) if gi == g}
        assert len(sides) == 1, g  # a burst is never split
    by_site = split_groups(items, times, "site", 0)
    assert by_site[0] == "site:c1"


@pytest.mark.slow
def test_a_head_from_thumbnails_classifies_every_photo_of_the_next_run(
    prefect_harness, trapflow_env, camtrap_dir, tmp_path, monkeypatch
):
    from flows.cli import app
    from flows.ingest import ingest

    model_dir = tmp_path / "models"
    shutil.copytree(trapflow_env["TRAPFLOW_MODEL_DIR"], model_dir)
    monkeypatch.setenv("TRAPFLOW_MODEL_DIR", str(model_dir))
    monkeypatch.chdir(tmp_path)
    root = camtrap_dir / DIR

    def write(name: str, stations: tuple[str, ...], keep: set[str]) -> Path:
        out = tmp_path / name
        with out.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["file", "label"])
            for station in stations:
                for photo in sorted((root / station).rglob("*.JPG")):
                    if photo.parent.name in keep:
                        w.writerow([photo, photo.parent.name])
        return out

    train = write("train.csv", ("StationA", "StationC"), {"PBE", "EGY", "TRA"})
    unseen = write("unseen.csv", ("StationB",), {"PBE"})
    res = CliRunner().invoke(
        app,
        ["train", "--csv", str(train), "--test-csv", str(unseen), "--min-per-class", "3"],
        env={"COLUMNS": "200"},
    )
    assert res.exit_code == 0, res.output
    assert "(split by burst)" in res.output and "unseen photos: accuracy" in res.output
    report = json.loads((model_dir / "trained/species_head/v1/report.json").read_text())
    assert report["split"] == "burst"
    assert report["unseen_evaluation"]["n_validation"] == 8  # StationB's 8 leopard cats
    assert 0.0 <= report["unseen_evaluation"]["accuracy"] <= 1.0

    # the next run: StationB's thumbnails (night IR, 100x75), none seen in training
    src = tmp_path / "cards"
    shutil.copytree(root / "StationB", src / "StationB")
    wh = tmp_path / "w.duckdb"
    ingest(source=str(src), warehouse=str(wh))
    media = query(wh, "select count(*) from raw.media")[0][0]
    classified = query(
        wh,
        "select count(distinct media_id) from raw.classifications where model_name = "
        "'species_head' and rank = 1",
    )[0][0]
    assert media == 12 and classified == media  # every photo, not only those with a sure box
    whole = query(
        wh,
        "select count(*) from raw.detections where model_name = 'species_head' "
        "and bbox_w = 1 and bbox_h = 1",
    )[0][0]
    sure = query(
        wh,
        "select count(distinct media_id) from raw.detections where category = 'animal' "
        "and model_name = 'mdlite_yolox_tiny' and confidence >= 0.2",
    )[0][0]
    assert sure < media  # the old rule would have left these photos without a species
    assert whole <= media - sure  # own boxes only where the detector found no animal at all
    # confidence 0: no detector found anything there (the Review page does not draw it)
    assert query(
        wh,
        "select coalesce(max(confidence), 0) from raw.detections where model_name = 'species_head'",
    ) == [(0.0,)]
    # no counting rule counts the classifier's own box
    own = query(
        wh,
        "select count(*), count(*) filter (where is_counted) from marts.fct_detections "
        "where model_name = 'species_head'",
    )
    assert own == [(whole, 0)]


@pytest.mark.slow
def test_train_from_the_warehouse_s_labels_relabels_the_stored_photos_at_its_sites(
    prefect_harness, trapflow_env, camtrap_dir, tmp_path, monkeypatch
):
    """The loop make demo runs: a run brings in camtrapR's species tags (XMP) as human
    labels, `train --warehouse --relabel` fits a head on them and labels the photos the
    warehouse already holds, at the sites it was trained on only; again, it adds nothing."""
    from flows.cli import app
    from flows.ingest import ingest

    model_dir = tmp_path / "models"
    shutil.copytree(trapflow_env["TRAPFLOW_MODEL_DIR"], model_dir)
    monkeypatch.setenv("TRAPFLOW_MODEL_DIR", str(model_dir))
    monkeypatch.chdir(tmp_path)
    pictures = camtrap_dir / "jniedballa__camtrapR/inst/pictures"
    src = tmp_path / "cards"
    for station in ("StationA", "StationC"):
        shutil.copytree(pictures / "sample_images_species_tag" / station, src / station)
    for photo in (pictures / "sample_images_species_dir" / "StationA").rglob("*.JPG"):
        shutil.copy2(photo, src / "StationA" / f"untagged_{photo.name}")  # no labels
    far = src / "idaho" / "cougar.jpg"
    far.parent.mkdir()
    shutil.copy2(camtrap_dir / "agentmorris__MegaDetector/images/idaho-camera-traps.jpg", far)
    wh = tmp_path / "w.duckdb"
    ingest(source=str(src), warehouse=str(wh))

    cmd = ["train", "--warehouse", str(wh), "--relabel", "--min-per-class", "3"]
    res = CliRunner().invoke(app, cmd, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "photos re-labelled" in res.output and "marts rebuilt" in res.output
    fence = (model_dir / "trained/species_head/v1/sites.toml").read_text()
    assert '"StationA" = [' in fence and '"StationC" = [' in fence and "idaho" not in fence
    stored = query(wh, "select count(*) from raw.media")[0][0]
    classified = query(
        wh, "select count(distinct media_id) from raw.classifications where rank = 1"
    )[0][0]
    assert classified == stored  # every stored photo, by the rule
    far_rows = query(
        wh,
        "select c.label, c.geofence_status from raw.classifications c join raw.media m "
        "using (media_id) where m.site_id = 'idaho' and c.rank = 1",
    )
    assert far_rows and all(r == ("animal", "rolled_up") for r in far_rows)
    head_labels = set(
        (model_dir / "trained/species_head/v1/labels.txt").read_text().split("\n")
    ) - {""}
    untagged = query(
        wh,
        "select c.label, c.geofence_status from raw.classifications c join raw.media m "
        "using (media_id) where m.file_name like 'untagged_%' and c.rank = 1",
    )
    assert len(untagged) >= 5 and all(
        lab in head_labels and st == "allowed" for lab, st in untagged
    )
    n_tagged = sum(1 for p in src.rglob("*.JPG") if not p.name.startswith("untagged_"))
    origins = dict(
        query(wh, "select label_origin, count(*) from marts.fct_label_reviews group by 1")
    )
    assert origins == {"xmp": n_tagged}  # the tags, as human labels, untouched by the head

    before = query(wh, "select count(*) from raw.classifications")
    again = CliRunner().invoke(app, cmd, env={"COLUMNS": "200"})
    assert again.exit_code == 0, again.output
    assert "nothing new to train on" in again.output and "0 photos re-labelled" in again.output
    assert query(wh, "select count(*) from raw.classifications") == before

    # a second head labels the stored photos from the cached crop embeddings: no photo is
    # read (the cards are gone), and the labels are the ones the pixels give
    cached = query(wh, "select count(distinct media_id) from raw.crop_embeddings")[0][0]
    assert cached == stored
    keep = tmp_path / "kept"
    shutil.move(src, keep)
    cmd2 = ["train", "--warehouse", str(wh), "--min-per-class", "3", "--seed", "1"]
    assert CliRunner().invoke(app, cmd2, env={"COLUMNS": "200"}).exit_code != 0  # files gone
    shutil.move(keep, src)
    assert CliRunner().invoke(app, cmd2, env={"COLUMNS": "200"}).exit_code == 0
    shutil.move(src, keep)
    res = CliRunner().invoke(app, ["relabel", "--warehouse", str(wh)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert f"{stored} photos re-labelled ({stored} from cached embeddings" in res.output
    shutil.move(keep, src)
    from models_ml import registry
    from models_ml.classifier import load_classifier
    from models_ml.training import trained_models

    manifest = registry.load_manifest(user_models=trained_models(model_dir))
    head = load_classifier(manifest["species_head"], manifest, model_dir)
    assert head.model_id == "species_head@2"
    unsure = query(  # thumbnails without a sure box: classified on their whole frame
        wh,
        "select m.file_path from raw.media m where m.file_name like 'untagged_%' and not exists ("
        "select 1 from raw.detections d where d.media_id = m.media_id and d.category = 'animal' "
        "and d.model_name = 'mdlite_yolox_tiny' and d.confidence >= 0.2) order by 1 limit 1",
    )
    assert unsure
    photo = src / unsure[0][0]
    row = query(
        wh,
        "select c.label, c.probability from raw.classifications c join raw.media m "
        "using (media_id) where m.file_path = ? and c.model_version = '2' and c.rank = 1",
        [unsure[0][0]],
    )
    assert len(row) == 1
    from models_ml._imageops import decode_rgb, open_image
    from models_ml.classifier import WHOLE_FRAME

    img = decode_rgb(open_image(photo.read_bytes(), max_pixels=10**8), draft_size=(416, 416))
    ((top, *_),) = head.classify(img, [WHOLE_FRAME], top_k=1)
    assert top.label == row[0][0] and top.probability == pytest.approx(row[0][1], abs=1e-5)
