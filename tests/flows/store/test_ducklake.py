"""Scale-out on DuckLake: workers in separate processes write one lake at once (catalog in a
real PostgreSQL on loopback, data in a folder or in S3 through moto); the marts builder copies
one snapshot. Every photo is stored exactly once, the marts equal those of one process into a
DuckDB file, and a worker killed with SIGKILL mid-run loses and duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from flows.store.ducklake import LAKE, LakeError, attach_lake
from tests._postgres import create_database, pg_bin, postgres_server
from tests.conftest import query
from tests.flows.store.test_scale_out import TRAPFLOW, _card, _env, _photos, _run_together

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(pg_bin() is None, reason="PostgreSQL is not installed (.ci/run does)"),
]

N_PHOTOS = 8
#: The marts compared between the lake's builder and one process into a DuckDB file.
MART_SQL = (
    "select category, label, sum(images) from marts.fct_daily_population group by 1, 2 "
    "order by 1, 2",
    "select count(*), count(distinct media_id) from marts.dim_media",
    "select count(*) from marts.fct_events",
    "select count(*) from raw.detections",
    "select count(*) from raw.classifications",
)


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    with postgres_server() as dsn:
        yield dsn


@pytest.fixture(scope="module")
def worker_env(pulled_models: Path, prefect_api: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TRAPFLOW_"))}
    env.update(TRAPFLOW_MODEL_DIR=str(pulled_models), TRAPFLOW_OCR_MODEL="",
               PREFECT_API_URL=prefect_api)  # fmt: skip
    return env


@pytest.fixture(scope="module")
def photos(camtrap_dir: Path) -> list[Path]:
    return _photos(camtrap_dir, N_PHOTOS)


@pytest.fixture(scope="module")
def single(
    photos: list[Path], worker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """One process ingesting every photo into a plain DuckDB file, marts built."""
    tmp = tmp_path_factory.mktemp("single")
    warehouse = tmp / "single.duckdb"
    card = _card(tmp / "card", photos)
    one = subprocess.run([TRAPFLOW, "run", "--source", str(card), "--warehouse", str(warehouse),
                          "--once"], env=_env(worker_env, tmp / "prefect"), capture_output=True,
                         text=True, timeout=400)  # fmt: skip
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    return warehouse


def _workers(
    tmp: Path, env: dict[str, str], lake: str, cards: list[Path]
) -> list[tuple[list[str], dict[str, str]]]:
    argv = [TRAPFLOW, "run", "--lake", lake, "--once", "--batch-size", "2"]
    return [
        ([*argv, "--source", str(card), "--warehouse", str(tmp / f"w{i}.duckdb")],
         _env(env, tmp / f"prefect-{i}"))
        for i, card in enumerate(cards)
    ]  # fmt: skip


def _build(tmp: Path, env: dict[str, str], lake: str) -> Path:
    builder = tmp / "builder.duckdb"
    marts = subprocess.run([TRAPFLOW, "marts", "--lake", lake, "--warehouse", str(builder)],
                           env=_env(env, tmp / "prefect-m"), capture_output=True, text=True,
                           timeout=300)  # fmt: skip
    assert marts.returncode == 0, marts.stdout[-3000:] + marts.stderr[-3000:]
    return builder


def _lake_count(lake: str, data_path: str | None, sql: str) -> int:
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    try:
        attach_lake(con, lake, data_path, read_only=True)
        row = con.execute(sql.replace("LAKE", LAKE)).fetchone()
    except (duckdb.Error, LakeError):
        return 0  # not created yet
    finally:
        con.close()
    return int(row[0]) if row else 0


def _assert_exactly_once(builder: Path, photos: list[Path], single: Path) -> None:
    import hashlib

    expected = {hashlib.sha256(p.read_bytes()).hexdigest() for p in photos}
    rows = query(builder, "select media_id, count(*) from raw.media group by 1")
    assert {m for m, _ in rows} == expected
    assert all(n == 1 for _, n in rows)
    for table, key in (("detections", "detection_id"), ("classifications", "classification_id"),
                       ("media_files", "source_uri, file_path")):  # fmt: skip
        dupes = query(builder, f"select count(*) from (select {key} from raw.{table} "
                               "group by all having count(*) > 1)")  # fmt: skip
        assert dupes == [(0,)], table
    for sql in MART_SQL:
        assert query(builder, sql) == query(single, sql), sql


def test_two_workers_on_postgres_store_every_photo_once(
    pg: str, worker_env: dict[str, str], photos: list[Path], single: Path, tmp_path: Path
) -> None:
    lake = f"ducklake:postgres:{create_database(pg, 'two')}"
    env = {**worker_env, "TRAPFLOW_LAKE_DATA_PATH": str(tmp_path / "data")}
    cards = [_card(tmp_path / "a", photos[:5]), _card(tmp_path / "b", photos[3:])]  # 2 shared
    _run_together(_workers(tmp_path, env, lake, cards))
    assert not (tmp_path / "w0.duckdb").exists()  # a worker without alerts opens no file
    builder = _build(tmp_path, env, lake)
    _assert_exactly_once(builder, photos, single)
    assert query(builder, "select status, count(*) from raw.runs group by 1") == [("completed", 2)]
    ((snapshot, media),) = query(builder, "select snapshot_id, media from raw.lake_snapshots")
    assert media == N_PHOTOS
    data_path = str(tmp_path / "data")
    at = f"select count(*) from LAKE.raw.media at (version => {snapshot})"
    assert _lake_count(lake, data_path, at) == N_PHOTOS  # the snapshot the build saw


def test_four_workers_with_data_in_s3(
    pg: str, worker_env: dict[str, str], photos: list[Path], single: Path, tmp_path: Path
) -> None:
    """Every photo on two of the four cards; the lake's Parquet files in a moto bucket."""
    from tests._servers import moto_s3

    lake = f"ducklake:postgres:{create_database(pg, 'four')}"
    with moto_s3() as endpoint:
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="lake")
        aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
        env = {**worker_env, **aws, "TRAPFLOW_LAKE_DATA_PATH": "s3://lake/trapflow/"}
        n = len(photos)
        cards = [_card(tmp_path / f"card{i}", [photos[(2 * i + j) % n] for j in range(4)])
                 for i in range(4)]  # fmt: skip
        _run_together(_workers(tmp_path, env, lake, cards))
        builder = _build(tmp_path, env, lake)
        keys = boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket="lake")
        assert any(o["Key"].endswith(".parquet") for o in keys.get("Contents", []))
    _assert_exactly_once(builder, photos, single)
    assert query(builder, "select status, count(*) from raw.runs group by 1") == [("completed", 4)]


def test_two_workers_on_one_sqlite_catalog_with_lake_data_path(
    worker_env: dict[str, str], photos: list[Path], single: Path, tmp_path: Path
) -> None:
    """One machine, no PostgreSQL: two processes share a SQLite catalog in a folder that does
    not exist yet, the Parquet files go where --lake-data-path says (a name with a space), and
    a busy catalog only delays a commit: every photo once, the same marts."""
    lake = f"ducklake:sqlite:{tmp_path / 'new catalog' / 'lake.sqlite'}"
    data = tmp_path / "lake data"
    cards = [_card(tmp_path / "a", photos[:6]), _card(tmp_path / "b", photos[2:])]  # 4 shared
    flag = ["--lake-data-path", str(data)]
    _run_together([([*argv, *flag], env) for argv, env in _workers(tmp_path, worker_env, lake,
                                                                   cards)])  # fmt: skip
    builder = tmp_path / "builder.duckdb"
    marts = subprocess.run([TRAPFLOW, "marts", "--lake", lake, *flag, "--warehouse", str(builder)],
                           env=_env(worker_env, tmp_path / "prefect-m"), capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert marts.returncode == 0, marts.stdout[-3000:] + marts.stderr[-3000:]
    _assert_exactly_once(builder, photos, single)
    assert query(builder, "select status, count(*) from raw.runs group by 1") == [("completed", 2)]
    assert list(data.rglob("*.parquet"))  # the builder flushed the inlined rows there
    assert not (tmp_path / "new catalog" / "lake.sqlite.files").exists()  # not the default


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(
    pg: str, worker_env: dict[str, str], photos: list[Path], single: Path, tmp_path: Path
) -> None:
    lake = f"ducklake:postgres:{create_database(pg, 'kill')}"
    data_path = str(tmp_path / "data")
    env = {**worker_env, "TRAPFLOW_LAKE_DATA_PATH": data_path}
    card = _card(tmp_path / "card", photos)
    ((argv, run_env),) = _workers(tmp_path, env, lake, [card])
    proc = subprocess.Popen(argv, env=run_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while True:  # the worker is stopped while the lake is counted, so it cannot finish meanwhile
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGSTOP)
        if _lake_count(lake, data_path, "select count(*) from LAKE.raw.media") >= 2:
            break
        os.killpg(proc.pid, signal.SIGCONT)
        assert proc.poll() is None and time.monotonic() < deadline, "no batch was committed"
    os.killpg(proc.pid, signal.SIGKILL)  # the next batch is being read, detected or committed
    proc.wait(timeout=30)
    stored = _lake_count(lake, data_path, "select count(*) from LAKE.raw.media")
    assert 2 <= stored < N_PHOTOS and stored % 2 == 0  # whole batches only

    _run_together([(argv, run_env)])  # the rerun does the rest
    builder = _build(tmp_path, env, lake)
    _assert_exactly_once(builder, photos, single)
    statuses = query(builder, "select status, count(*) from raw.runs group by 1 order by 1")
    assert statuses == [("completed", 1), ("running", 1)]  # the killed run's record stays open


def test_a_transaction_killed_before_commit_leaves_nothing(pg: str, tmp_path: Path) -> None:
    """SIGKILL with a batch's rows written but not committed: the lake has none of them."""
    lake = f"ducklake:postgres:{create_database(pg, 'atomic')}"
    data_path = str(tmp_path / "data")
    script = textwrap.dedent(f"""
        import os, signal
        from flows.store.ducklake import DuckLakeStore, insert_absent
        from tests.flows.store.test_store import _batch
        store = DuckLakeStore({str(tmp_path / "w.duckdb")!r}, {lake!r}, {data_path!r})
        row = _batch()["media"][0]
        with store._lake() as con:
            con.execute("begin transaction")
            insert_absent(con, "media", [{{**row, "media_id": f"m{{i}}"}} for i in range(500)])
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert _lake_count(lake, data_path, "select count(*) from LAKE.raw.media") == 0


def test_a_ducklake_worker_alerts_on_its_own_run(
    prefect_harness: None, trapflow_env: dict[str, str], camtrap_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A worker's alert rules read the lake through views in its own DuckDB file (its outbox):
    the person is alerted within the run, and a second poll sends nothing."""
    from flows.ingest import ingest
    from flows.store.ducklake import close_lakes
    from tests._servers import json_sink

    card = tmp_path / "card" / "Ruaha" / "cam07"
    card.mkdir(parents=True)
    for name in ("human.jpg", "blank.jpg"):
        (card / name).write_bytes((camtrap_dir / "google__cameratrapai/test_data" / name)
                                  .read_bytes())  # fmt: skip
    lake, outbox = f"ducklake:sqlite:{tmp_path / 'lake.sqlite'}", tmp_path / "worker.duckdb"
    try:
        with json_sink() as sink:
            monkeypatch.setenv("TRAPFLOW_ALERT_URLS", f"json://127.0.0.1:{sink.port}/lake")
            for _ in range(2):
                summary = ingest(source=str(tmp_path / "card"), warehouse=str(outbox),
                                 lake=lake, layout="{site}/{camera}/...")  # fmt: skip
            received = sink.wait_for(1)
    finally:
        close_lakes()
    assert summary.stats.images == 0  # the second poll: nothing new
    assert [r["title"] for r in received] == ["Person at site Ruaha, camera cam07"]
    assert query(outbox, "select count(*), count(distinct media_id) from alerts.outbox") == [(1, 1)]
    assert _lake_count(lake, None, "select count(*) from LAKE.raw.media") == 2
