"""flows.pipeline.process without Prefect: the species stage with geofencing, idempotent re-runs,
repeat-detection flags and user-registered models, on real photos and the real detectors."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flows.pipeline.discovery import list_source
from flows.pipeline.models import ModelsUnavailableError
from flows.pipeline.process import (
    batch_context,
    ensure_pipeline_models,
    flag_repeats,
    process_batch,
)
from flows.settings import load_settings
from flows.store import warehouse as _warehouse
from models_ml import registry
from models_ml.repeats import RepeatParams
from tests.conftest import query
from tests.models_ml._onnx_factory import head_model

COUGAR = "agentmorris__MegaDetector/images/idaho-camera-traps.jpg"


@pytest.fixture(scope="module")
def models(pulled_models: Path, model_mirror: Path) -> Path:
    spec = registry.load_manifest()["mobilenetv2_imagenet_features"]
    registry.pull(spec, pulled_models, str(model_mirror))
    return pulled_models


def _head(tmp: Path) -> dict[str, object]:
    """A species head that always says cougar > fox > deer (bias only)."""
    path = head_model(tmp / "head" / "head.onnx", np.zeros((3, 1280)), np.array([3.0, 1.0, 0.0]))
    (tmp / "head" / "labels.txt").write_text("cougar\nfox\ndeer\n", encoding="utf-8")
    return {"file": str(path), "sha256": registry.sha256_file(path), "decoder": "embedding_head",
            "labels_file": "labels.txt", "version": "t"}  # fmt: skip


def _run(settings: object, model_dir: Path, src: Path, run_id: str) -> object:
    ctx = batch_context(settings, model_dir, str(src), run_id)  # type: ignore[arg-type]
    with _warehouse.connect(ctx.warehouse) as con:
        _warehouse.ensure_schema(con)
    return process_batch(ctx, list(list_source(str(src), ("jpg",)).media))


def test_species_stage_with_geofence_and_idempotent_rerun(
    tmp_path: Path, models: Path, camtrap_dir: Path
) -> None:
    src = tmp_path / "src"
    photo = Image.open(camtrap_dir / COUGAR)
    for q, site in enumerate(("north", "south", "east")):
        (src / site).mkdir(parents=True)
        photo.save(src / site / f"{site}.jpg", quality=90 - q)  # distinct files
    (tmp_path / "geofence.toml").write_text(
        '[sites]\nnorth = ["cougar", "fox"]\nsouth = ["deer"]\n', encoding="utf-8"
    )
    settings = load_settings(
        warehouse=str(tmp_path / "w.duckdb"), model_dir=str(models), person_cue_model="",
        species_model="my_head", models={"my_head": _head(tmp_path)},
        geofence_file=str(tmp_path / "geofence.toml"),
    )  # fmt: skip
    model_dir = ensure_pipeline_models(settings)
    stats = _run(settings, model_dir, src, "r1")
    assert stats.images == 3 and stats.classifications > 0  # type: ignore[attr-defined]
    wh = settings.warehouse_path
    rows = query(
        wh,
        "select m.site_id, c.rank, c.label, c.geofence_status, c.model_name, c.model_version "
        "from raw.classifications c join raw.media m using (media_id) "
        "join raw.detections d using (detection_id) "
        "where d.confidence = (select max(confidence) from raw.detections x "
        "  where x.media_id = d.media_id and x.model_name = 'mdlite_yolox_tiny') "
        "order by 1, 2",
    )
    by_site: dict[str, list[tuple[object, ...]]] = {}
    for site, *rest in rows:
        by_site.setdefault(site, []).append(tuple(rest))
    assert by_site["north"] == [
        (1, "cougar", "allowed", "my_head", "t"),
        (2, "fox", "allowed", "my_head", "t"),
        (3, "deer", "rolled_up", "my_head", "t"),
    ]
    assert [r[1:3] for r in by_site["south"]] == [
        ("animal", "rolled_up"), ("cougar", "rolled_up"), ("fox", "rolled_up"), ("deer", "allowed"),
    ]  # fmt: skip
    assert {r[2] for r in by_site["east"]} == {"no_list"}
    # only animal boxes of the animal model at or above the crop threshold are classified
    assert query(
        wh,
        "select count(*) from raw.classifications c join raw.detections d using (detection_id) "
        "where d.model_name <> 'mdlite_yolox_tiny' or d.confidence < 0.2",
    ) == [(0,)]
    before = query(
        wh, "select count(*), count(distinct classification_id) from raw.classifications"
    )
    assert before[0][0] == before[0][1]
    again = _run(settings, model_dir, src, "r2")
    assert again.images == 0 and again.duplicates == 3  # type: ignore[attr-defined]
    assert query(wh, "select count(*) from raw.classifications") == [(before[0][0],)]


def test_repeat_detections_are_flagged_incrementally_and_idempotently(
    tmp_path: Path, models: Path, camtrap_dir: Path
) -> None:
    src = tmp_path / "src" / "cam1"
    src.mkdir(parents=True)
    photo = Image.open(camtrap_dir / COUGAR)
    for q in (95, 90):  # the same scene twice, as different files: the box recurs
        photo.save(src / f"q{q}.jpg", quality=q)
    settings = load_settings(
        warehouse=str(tmp_path / "w.duckdb"), model_dir=str(models), person_cue_model=""
    )
    model_dir = ensure_pipeline_models(settings)
    params = RepeatParams(min_occurrences=3, max_box_area=1.0)
    _run(settings, model_dir, src.parent, "r1")
    wh = settings.warehouse_path
    assert flag_repeats(wh, "r1", params) == 0  # two images: below N = 3
    photo.save(src / "q85.jpg", quality=85)
    _run(settings, model_dir, src.parent, "r2")
    flagged = flag_repeats(wh, "r2", params)
    assert flagged >= 3
    rows = query(
        wh,
        "select f.cluster_id, f.occurrences, count(distinct d.media_id), count(*) "
        "from raw.detection_flags f join raw.detections d using (detection_id) "
        "where f.flag = 'repeat_detection' group by 1, 2",
    )
    assert rows and all(occ == 3 and images == 3 for _, occ, images, _ in rows)
    snapshot = query(wh, "select detection_id, cluster_id from raw.detection_flags order by 1")
    assert flag_repeats(wh, "r2", params) == flagged  # idempotent
    assert query(wh, "select detection_id, cluster_id from raw.detection_flags order by 1") == (
        snapshot
    )
    # nothing is deleted from the boxes; a stricter N removes the flags again
    assert query(wh, "select count(*) from raw.detections")[0][0] > flagged
    assert flag_repeats(wh, "r2", RepeatParams(min_occurrences=4, max_box_area=1.0)) == 0
    assert query(wh, "select count(*) from raw.detection_flags") == [(0,)]


def test_user_model_with_a_wrong_sha256_is_refused(tmp_path: Path, models: Path) -> None:
    path = head_model(tmp_path / "h.onnx", np.zeros((2, 1280)))
    (tmp_path / "labels.txt").write_text("a\nb\n", encoding="utf-8")
    table = {"file": str(path), "sha256": "f" * 64, "decoder": "embedding_head",
             "labels_file": "labels.txt"}  # fmt: skip
    settings = load_settings(
        warehouse=str(tmp_path / "w.duckdb"), model_dir=str(models), person_cue_model="",
        species_model="mine", models={"mine": table},
    )  # fmt: skip
    with pytest.raises(ModelsUnavailableError, match=r"sha256 .* under \[models.mine\]"):
        ensure_pipeline_models(settings)
    unknown = load_settings(model_dir=str(models), species_model=f"x{uuid.uuid4().hex[:6]}")
    with pytest.raises(ModelsUnavailableError, match=r"register your own under \[models"):
        ensure_pipeline_models(unknown)


def test_batches_pipeline_copies_across_batches_and_load_order(
    tmp_path: Path, pulled_models: Path, camtrap_dir: Path
) -> None:
    """process_batches: batches overlap in time but each is one transaction, yielded in order;
    a copy of a photo in a later batch is a duplicate even before the earlier batch is loaded."""
    from flows.pipeline.process import process_batches

    src = tmp_path / "src"
    src.mkdir()
    data = (camtrap_dir / COUGAR).read_bytes()
    for name in ("a1.jpg", "a2.jpg", "b1.jpg"):  # a2 and b1: copies of a1
        (src / name).write_bytes(data)
    Image.open(camtrap_dir / COUGAR).save(src / "a3.jpg", quality=70)  # a distinct image
    settings = load_settings(
        warehouse=str(tmp_path / "w.duckdb"), model_dir=str(pulled_models), ocr_model=""
    )
    ctx = batch_context(settings, ensure_pipeline_models(settings), str(src), "pipe")
    with _warehouse.connect(ctx.warehouse) as con:
        _warehouse.ensure_schema(con)
    files = {f.path: f for f in list_source(str(src), ("jpg",)).media}
    batches = [[files["a1.jpg"], files["a3.jpg"]], [files["a2.jpg"]], [files["b1.jpg"]]]
    seen = []
    for stats in process_batches(ctx, batches):
        seen.append((stats.files, stats.images, stats.duplicates))
        # the batch is committed when it is yielded (the next one may still be detecting)
        with _warehouse.connect(ctx.warehouse) as con:  # same config as the pipeline's
            row = con.execute("select count(*) from raw.media_files").fetchone()
        assert row is not None and row[0] == sum(s[0] for s in seen)
    assert seen == [(2, 2, 0), (1, 0, 1), (1, 0, 1)]
    assert query(ctx.warehouse, "select count(*) from raw.media")[0][0] == 2
    statuses = query(
        ctx.warehouse, "select file_path, status from raw.media_files order by file_path"
    )
    assert statuses == [
        ("a1.jpg", "ingested"), ("a2.jpg", "duplicate"), ("a3.jpg", "ingested"),
        ("b1.jpg", "duplicate"),
    ]  # fmt: skip


def test_inference_threads_give_the_rows_of_one_thread(
    tmp_path: Path, pulled_models: Path, camtrap_dir: Path, manifest_rows: list[dict[str, str]]
) -> None:
    """Three inference threads (jobs of two photos, three batches, finished out of order)
    store exactly the rows one thread stores: same media, same boxes, same problems."""
    from flows.pipeline.discovery import chunked
    from flows.pipeline.process import process_batches

    photos = [r["path"] for r in manifest_rows if r["file_type"] == "JPEG"][:12]
    src = tmp_path / "src"
    for rel in photos:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes((camtrap_dir / rel).read_bytes())
    files = list(list_source(str(src), ("jpg", "jpeg")).media)
    tables = []
    for workers in (1, 3):
        settings = load_settings(
            warehouse=str(tmp_path / f"w{workers}.duckdb"), model_dir=str(pulled_models),
            ocr_model="", inference_workers=workers, intra_op_threads=1,
        )  # fmt: skip
        ctx = batch_context(settings, ensure_pipeline_models(settings), str(src), "same")
        assert ctx.inference_workers == workers
        ctx = replace(ctx, infer_batch=2)
        with _warehouse.connect(ctx.warehouse) as con:
            _warehouse.ensure_schema(con)
        done = list(process_batches(ctx, chunked(files, 5)))
        assert [s.files for s in done] == [5, 5, 2]
        tables.append([
            query(ctx.warehouse, "select media_id, file_path, captured_at, site_id "
                  "from raw.media order by media_id"),
            query(ctx.warehouse, "select detection_id, category, label, confidence, bbox_x, "
                  "bbox_y, bbox_w, bbox_h from raw.detections order by detection_id"),
            query(ctx.warehouse, "select file_path, reason from raw.quarantine order by all"),
        ])  # fmt: skip
    assert len(tables[0][0]) == len(files) and len(tables[0][1]) > len(files)
    assert tables[1] == tables[0]


@pytest.mark.parametrize(
    ("cores", "workers", "threads", "expected"),
    [(1, 0, 0, (1, 1)), (2, 0, 0, (2, 1)), (4, 0, 0, (2, 2)), (16, 0, 0, (4, 4)),
     (16, 1, 0, (1, 16)), (8, 0, 3, (2, 3))],
)  # fmt: skip
def test_inference_layout(
    monkeypatch: pytest.MonkeyPatch, cores: int, workers: int, threads: int, expected: tuple
) -> None:
    """Auto: two model calls side by side on small machines, cores / 4 on big ones, and the
    cores shared out between them; explicit settings win."""
    import os

    from flows.pipeline.process import inference_layout

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert inference_layout(workers, threads) == expected


def test_coarse_groups_species_stage_labels_boxes_with_its_own_model_name(
    tmp_path: Path, models: Path, camtrap_dir: Path
) -> None:
    """The opt-in ImageNet roll-up (species_model = 'imagenet_coarse_groups'): every animal
    box gets group labels whose probabilities add up to one, stored under its own name."""
    from models_ml.classifier import group_matrix

    src = tmp_path / "src" / "idaho"
    src.mkdir(parents=True)
    Image.open(camtrap_dir / COUGAR).save(src / "cougar.jpg", quality=92)
    settings = load_settings(
        warehouse=str(tmp_path / "w.duckdb"), model_dir=str(models), person_cue_model="",
        species_model="imagenet_coarse_groups",
    )  # fmt: skip
    model_dir = ensure_pipeline_models(settings)
    _run(settings, model_dir, tmp_path / "src", "r1")
    rows = query(
        settings.warehouse_path,
        "select detection_id, model_name, label, probability from raw.classifications",
    )
    names, matrix = group_matrix()
    assert rows and {r[1] for r in rows} == {"imagenet_coarse_groups"}
    assert {r[2] for r in rows} <= set(names)
    assert (matrix.sum(axis=1) == 1).all() and names[-1] == "animal"
    labels = (models / "mobilenetv2_12_int8_imagenet/imagenet_labels.txt").read_text().split("\n")
    col = {name: j for j, name in enumerate(names)}
    known = {
        "red fox": "dogs and foxes", "cougar": "cats", "weasel": "mustelids", "hog": "pigs",
        "impala": "deer and antelopes", "mongoose": "animal", "tabby": "cats",
        "bald eagle": "birds", "brown bear": "bears", "beaver": "rodents and hares",
    }  # fmt: skip
    for imagenet, group in known.items():
        assert matrix[labels.index(imagenet), col[group]] == 1, imagenet


IR_NIGHT = "agentmorris__MegaDetector/images/channel-islands-thumb.jpg"  # Reconyx, 20:26 IR


@pytest.mark.parametrize("every_photo", [False, True])
def test_ingest_keeps_the_clock_evidence(
    tmp_path: Path, pulled_models: Path, camtrap_dir: Path, every_photo: bool
) -> None:
    """raw.media keeps what the clock checks compare: is_greyscale from the decoded photo (the
    IR night frame, not the colour day one), the file's wall time, and the info bar's printed
    time beside the EXIF time when ocr_every_photo is set (read: the same second here)."""
    src = tmp_path / "src"
    src.mkdir()
    for name, path in (("night.jpg", IR_NIGHT), ("day.jpg", COUGAR)):
        (src / name).write_bytes((camtrap_dir / path).read_bytes())
    settings = load_settings(
        warehouse=str(tmp_path / "w.duckdb"), model_dir=str(pulled_models),
        ocr_every_photo=every_photo,
    )  # fmt: skip
    _run(settings, ensure_pipeline_models(settings), src, "clock")
    rows = query(
        str(tmp_path / "w.duckdb"),
        "select file_name, timestamp_source, is_greyscale, ocr_captured_at = captured_at, "
        "ocr_captured_at is null, file_local_at is not null from raw.media order by file_name",
    )
    if every_photo:
        assert rows == [("day.jpg", "exif", False, True, False, True),
                        ("night.jpg", "exif", True, True, False, True)]  # fmt: skip
    else:
        assert rows == [("day.jpg", "exif", False, None, True, True),
                        ("night.jpg", "exif", True, None, True, True)]  # fmt: skip
