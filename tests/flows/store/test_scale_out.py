"""Scale-out: ingest workers writing Parquet to one lake at once, one marts builder after."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import query

pytestmark = pytest.mark.slow

TRAPFLOW = str(Path(sys.executable).parent / "trapflow")
FOLDER = "jniedballa__camtrapR/inst/pictures/sample_images_species_dir"


def _photos(camtrap_dir: Path, n: int) -> list[Path]:
    """n photos with distinct bytes (the species folders hold some byte-identical copies)."""
    seen: dict[str, Path] = {}
    for photo in sorted((camtrap_dir / FOLDER).rglob("*.JPG")):
        seen.setdefault(hashlib.sha256(photo.read_bytes()).hexdigest(), photo)
    return list(seen.values())[:n]


def _card(root: Path, photos: list[Path]) -> Path:
    for photo in photos:
        target = root / photo.parent.name / f"{photo.parent.parent.name}_{photo.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(photo.read_bytes())
    return root


def _env(base: dict[str, str], home: Path) -> dict[str, str]:
    return {**base, "PREFECT_HOME": str(home)}


def _run_together(commands: list[tuple[list[str], dict[str, str]]]) -> None:
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for argv, env in commands]  # fmt: skip
    outputs = [p.communicate(timeout=400)[0] for p in procs]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]


@pytest.fixture(scope="module")
def worker_env(pulled_models: Path, prefect_api: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TRAPFLOW_"))}
    env.update(TRAPFLOW_MODEL_DIR=str(pulled_models), TRAPFLOW_OCR_MODEL="",
               PREFECT_API_URL=prefect_api)  # fmt: skip
    return env


def test_two_workers_at_once_count_every_image_once(worker_env, camtrap_dir, tmp_path):
    """Disjoint and overlapping at once: 5 photos only in A, 5 only in B, 4 in both."""
    overlap = 4
    photos = _photos(camtrap_dir, 14)
    half = (len(photos) + overlap) // 2
    a = _card(tmp_path / "card-a", photos[:half])
    b = _card(tmp_path / "card-b", photos[half - overlap :])
    lake = tmp_path / "lake"
    worker = [TRAPFLOW, "run", "--lake", str(lake), "--once", "--batch-size", "2"]
    _run_together([
        ([*worker, "--source", str(a), "--warehouse", str(tmp_path / "a.duckdb")],
         _env(worker_env, tmp_path / "prefect-a")),
        ([*worker, "--source", str(b), "--warehouse", str(tmp_path / "b.duckdb")],
         _env(worker_env, tmp_path / "prefect-b")),
    ])  # fmt: skip
    assert not (tmp_path / "a.duckdb").exists()  # workers never open a DuckDB file
    assert len(list((lake / "media").glob("*.parquet"))) >= 4  # one file per batch per worker

    wh = tmp_path / "lakehouse.duckdb"
    marts = subprocess.run([TRAPFLOW, "marts", "--lake", str(lake), "--warehouse", str(wh)],
                           env=_env(worker_env, tmp_path / "prefect-m"), capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert marts.returncode == 0, marts.stdout[-3000:] + marts.stderr[-3000:]

    expected = {hashlib.sha256(p.read_bytes()).hexdigest() for p in photos}
    rows = query(wh, "select media_id, count(*) from raw.media group by 1")
    assert {m for m, _ in rows} == expected
    assert all(n == 1 for _, n in rows)
    assert (
        query(wh, "select count(*) - count(distinct detection_id) from raw.detections")[0][0] == 0
    )
    runs = query(wh, "select status, count(*) from raw.runs group by 1")
    assert runs == [("completed", 2)]

    # the marts equal those of one process ingesting the same photos into a plain warehouse
    single = tmp_path / "single.duckdb"
    union = _card(tmp_path / "card-all", photos)
    one = subprocess.run([TRAPFLOW, "run", "--source", str(union), "--warehouse", str(single),
                          "--once"], env=_env(worker_env, tmp_path / "prefect-s"),
                         capture_output=True, text=True, timeout=400)  # fmt: skip
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    sql = ("select category, label, sum(images) from marts.fct_daily_population "
           "group by 1, 2 order by 1, 2")  # fmt: skip
    assert query(wh, sql) == query(single, sql)
    assert query(wh, "select count(*) from raw.detections") == query(
        single, "select count(*) from raw.detections"
    )


def test_a_lake_worker_alerts_on_its_own_run(
    prefect_harness, trapflow_env, camtrap_dir, tmp_path, monkeypatch
):
    """A scale-out worker evaluates the alert rules on the rows it wrote to the lake (its
    outbox in its own DuckDB file) and delivers within the run; a second poll sends nothing."""
    from flows.ingest import ingest
    from tests._servers import json_sink

    card = tmp_path / "card" / "Ruaha" / "cam07"
    card.mkdir(parents=True)
    human = camtrap_dir / "google__cameratrapai/test_data/human.jpg"
    (card / "human.jpg").write_bytes(human.read_bytes())
    (card / "empty.jpg").write_bytes(
        (camtrap_dir / "google__cameratrapai/test_data/blank.jpg").read_bytes()
    )
    lake, outbox = tmp_path / "lake", tmp_path / "worker.duckdb"
    with json_sink() as sink:
        monkeypatch.setenv("TRAPFLOW_ALERT_URLS", f"json://127.0.0.1:{sink.port}/lake")
        for _ in range(2):
            summary = ingest(source=str(tmp_path / "card"), warehouse=str(outbox), lake=str(lake),
                             layout="{site}/{camera}/...")  # fmt: skip
        received = sink.wait_for(1)
    assert summary.stats.images == 0  # the second poll: nothing new
    assert [r["title"] for r in received] == ["Person at site Ruaha, camera cam07"]
    assert list((lake / "media").glob("*.parquet"))  # the rows went to the lake
    assert query(outbox, "select count(*), count(distinct media_id) from alerts.outbox") == [(1, 1)]
