""" "Train now" end to end on the sample run: the labels people gave (the sample's camtrapR XMP
tags, then reviews written as the Label page writes them) -> crops embedded once and cached
-> a head fitted from the cache, registered, its report in the warehouse -> every stored
photo re-labelled from cached embeddings -> marts rebuilt with the labels counted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import query


@pytest.fixture()
def labelled(
    sample_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    trapflow_env: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    """A copy of the sample warehouse and of the model folder (a head trained here must not
    become the species model of other tests)."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy2(sample_run["warehouse"], warehouse)
    model_dir = tmp_path / "models"
    shutil.copytree(trapflow_env["TRAPFLOW_MODEL_DIR"], model_dir)
    monkeypatch.setenv("TRAPFLOW_MODEL_DIR", str(model_dir))
    from flows.settings import load_settings
    from flows.store import open_store

    settings = load_settings(warehouse=warehouse)
    return {"warehouse": warehouse, "model_dir": model_dir, "settings": settings,
            "store": open_store(settings)}  # fmt: skip


def test_embed_stored_caches_every_photo_once_with_its_sketch(labelled: dict[str, Any]) -> None:
    from flows.pipeline.embed import embed_stored
    from models_ml.similarity import sketch

    wh = labelled["warehouse"]
    assert query(wh, "select count(*) from raw.crop_embeddings")[0][0] == 0  # no head ran
    first = embed_stored(labelled["settings"], labelled["store"])
    images = query(wh, "select count(*) from raw.media where media_type = 'image'")[0][0]
    assert first.photos + len(first.unreadable) == images
    assert first.crops >= first.photos
    again = embed_stored(labelled["settings"], labelled["store"])
    assert (again.photos, again.crops) == (0, 0)  # a second run adds nothing
    # the stored sketch is models_ml.similarity's projection of the stored embedding
    emb, stored = query(wh, "select embedding, sketch from raw.crop_embeddings limit 1")[0]
    assert np.allclose(sketch(np.asarray([emb]))[0], np.asarray(stored), atol=1e-6)
    # an older row without a sketch gets it on the next call
    with labelled["store"].writing() as con:
        con.execute("update raw.crop_embeddings set sketch = null")
    assert embed_stored(labelled["settings"], labelled["store"]).sketched == first.crops
    assert query(wh, "select count(*) from raw.crop_embeddings where sketch is null")[0][0] == 0


def test_train_now_trains_from_the_cache_relabels_and_counts(
    labelled: dict[str, Any], prefect_harness: None
) -> None:
    from dashboard import reviews
    from flows.train_now import train_now_flow

    wh, progress = labelled["warehouse"], labelled["warehouse"].with_suffix(".progress.json")
    labelled_photos = query(wh, "select count(distinct media_id) from marts.fct_training_crops")
    assert labelled_photos[0][0] == 41  # the sample's camtrapR species tags (XMP)

    done = train_now_flow(str(wh), str(progress))
    assert done["trained"] and done["model_id"] == "species_head@1"
    assert done["embedded_photos"] == 41  # nothing was cached: the labelled photos, once
    images = query(wh, "select count(*) from raw.media where media_type = 'image'")[0][0]
    assert done["relabelled_photos"] >= images - 2  # every readable stored photo
    state = json.loads(progress.read_text())
    assert state["status"] == "finished" and state["percent"] == 100.0
    # its report, in the warehouse for the Label page
    ((model_id, labels, per_class, n_train, n_val),) = query(
        wh, "select model_id, labels, per_class, n_train, n_validation "
        "from marts.fct_head_reports where is_latest",
    )  # fmt: skip
    assert model_id == "species_head@1"
    assert {"Leopard Cat", "Mouse Deer", "Moonrat"} <= set(labels)
    assert n_train + n_val == 35  # 18 + 11 + 6; fewer than 5 labelled photos: left out
    assert {c["label"] for c in json.loads(per_class)} == set(labels)
    # the head's labels are in the marts (the whole-frame thumbnails included)
    counted = dict(query(wh, "select label, count(*) from marts.fct_detections "
                             "where label_source = 'classifier' group by label"))  # fmt: skip
    assert counted and set(counted) <= set(labels)

    # the same labels: not trained again, nothing re-labelled
    again = train_now_flow(str(wh), str(progress))
    assert (again["trained"], again["model_id"], again["relabelled_photos"]) == (
        False, "species_head@1", 0,
    )  # fmt: skip

    # reviews as the Label page writes them (one per box) -> a new head that knows them
    boxes = query(wh, "select media_id, detection_id from marts.fct_label_queue "
                      "order by queue_rank limit 6")  # fmt: skip
    reviews.write_reviews(
        str(wh), [reviews.Review(m, d, "animal", "Sun Bear") for m, d in boxes], reviewer="t"
    )
    third = train_now_flow(str(wh), str(progress))
    assert third["trained"] and third["model_id"] == "species_head@2"
    assert third["from_cache"] == third["relabelled_photos"] > 0  # no photo read again
    reports = query(wh, "select model_id from marts.fct_head_reports order by report_rank")
    assert [r[0] for r in reports] == ["species_head@2", "species_head@1"]
    latest = query(wh, "select labels from marts.fct_head_reports where is_latest")[0][0]
    assert "Sun Bear" in latest
    counted = query(wh, "select sum(events) from marts.fct_daily_population "
                        "where label = 'Sun Bear'")[0][0]  # fmt: skip
    assert counted and counted > 0


def test_train_now_without_labels_says_what_to_do(labelled: dict[str, Any]) -> None:
    from flows.errors import UserError
    from flows.pipeline.train_now import train_now

    with labelled["store"].writing() as con:
        con.execute("delete from raw.media_labels")
    with pytest.raises(UserError, match="label some on the Label page"):
        train_now(labelled["settings"], labelled["store"])


def test_embed_and_train_now_commands(labelled: dict[str, Any], tmp_path: Path) -> None:
    """`trapflow embed` caches, rebuilds the marts so every box can be grouped, and adds
    nothing the second time; `trapflow train-now` on a folder with no warehouse is one line."""
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    wh = str(labelled["warehouse"])
    first = runner.invoke(app, ["embed", "--warehouse", wh])
    assert first.exit_code == 0, first.output
    assert "crops of" in first.output and "marts rebuilt" in first.output
    searchable = query(labelled["warehouse"], "select count(sketch), count(*) from "
                                              "marts.fct_label_crops")[0]  # fmt: skip
    assert searchable[0] == searchable[1] > 0  # every animal box can be grouped now
    again = runner.invoke(app, ["embed", "--warehouse", wh])
    assert again.exit_code == 0 and ": 0 crops of 0 photos" in again.output, again.output
    missing = runner.invoke(app, ["train-now", "--warehouse", str(tmp_path / "none.duckdb")])
    assert missing.exit_code != 0
    assert "no warehouse at" in missing.output and "Traceback" not in missing.output
