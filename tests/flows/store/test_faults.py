"""Faults an operator meets: a warehouse locked by another process, a full disk."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import copy_samples, query

pytestmark = pytest.mark.slow

TRAPFLOW = str(Path(sys.executable).parent / "trapflow")
PHOTOS = ["google__cameratrapai/test_data/human.jpg",
          "agentmorris__MegaDetector/images/idaho-camera-traps.jpg"]  # fmt: skip


def test_a_locked_warehouse_is_waited_for_and_retried(
    pulled_models, prefect_api, camtrap_dir, tmp_path
):
    card = tmp_path / "card"
    copy_samples(camtrap_dir, card, PHOTOS)
    wh = tmp_path / "w.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TRAPFLOW_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_API_URL=prefect_api,
               TRAPFLOW_MODEL_DIR=str(pulled_models),
               TRAPFLOW_LOCK_WAIT_S="1", TRAPFLOW_OCR_MODEL="")  # fmt: skip
    # another process holds the write lock until the run has said so and backed off once
    holder = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
        "print('locked', flush=True); time.sleep(600)"), str(wh)],
        stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    started = time.monotonic()
    proc = subprocess.Popen([TRAPFLOW, "run", "--source", str(card), "--warehouse", str(wh),
                             "--once", "--no-marts"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Retry 1/3" in line:  # it said why and is waiting: let go of the lock
            holder.kill()
            break
    lines.extend(proc.stdout)
    proc.wait(timeout=300)
    run = subprocess.CompletedProcess(proc.args, proc.returncode, "".join(lines), "")
    holder.wait(timeout=30)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert "stayed locked by another process" in out  # said clearly, then retried
    assert "Retry 1/3" in out
    assert time.monotonic() - started > 2
    assert query(wh, "select count(*) from raw.media")[0][0] == 2


FULL_DISK = r"""
import resource, signal, sys
from pathlib import Path
from flows.settings import load_settings
from flows.pipeline.process import batch_context, ensure_pipeline_models, process_batch
from flows.pipeline.discovery import list_source

warehouse, source = Path(sys.argv[1]), sys.argv[2]
settings = load_settings(warehouse=warehouse, source=source, ocr_model="")
ctx = batch_context(settings, ensure_pipeline_models(settings), source, "full-disk-run")
files = list(list_source(source, settings.extensions).media)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
limit = 4096  # no file may grow past 4 kB: the write-ahead log cannot be written, "disk full"
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    process_batch(ctx, files)
except Exception as exc:
    print("FAILED:", type(exc).__name__, exc)
    sys.exit(3)
print("loaded")
"""


def test_a_full_disk_rolls_the_batch_back(trapflow_env, camtrap_dir, tmp_path):
    from flows.store.warehouse import connect, ensure_schema

    card = tmp_path / "card"
    copy_samples(camtrap_dir, card, PHOTOS)
    wh = tmp_path / "w.duckdb"
    with connect(wh) as con:
        ensure_schema(con)
        con.execute("checkpoint")
    proc = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(wh), str(card)],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )  # fmt: skip
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "FAILED" in proc.stdout
    # nothing half-written: the warehouse opens and holds none of the batch
    assert query(wh, "select count(*) from raw.media")[0][0] == 0
    assert query(wh, "select count(*) from raw.media_files")[0][0] == 0
    # with room again, the same batch goes through
    from flows.pipeline.discovery import list_source
    from flows.pipeline.process import batch_context, ensure_pipeline_models, process_batch
    from flows.settings import load_settings

    settings = load_settings(warehouse=wh, source=str(card), ocr_model="")
    ctx = batch_context(settings, ensure_pipeline_models(settings), str(card), "after")
    stats = process_batch(ctx, list(list_source(str(card), settings.extensions).media))
    assert stats.images == 2
    assert query(wh, "select count(*) from raw.media")[0][0] == 2


KILLED_IN_LOAD = r"""
import sys, time
from pathlib import Path
from flows.store import warehouse as _warehouse
from flows.settings import load_settings
from flows.pipeline.process import batch_context, ensure_pipeline_models, process_batches
from flows.pipeline.discovery import list_source

warehouse, source = Path(sys.argv[1]), sys.argv[2]
settings = load_settings(warehouse=warehouse, source=source, ocr_model="")
ctx = batch_context(settings, ensure_pipeline_models(settings), source, "killed-run")
files = sorted(list_source(source, settings.extensions).media, key=lambda f: f.path)
loads, media_counts, count = [0], [0], _warehouse._count
real_load = _warehouse.load_batch


def count_then_hang(con, name):
    # _count runs before and after each insert: the second batch's media rows went in, hang
    if name == "media" and loads[0] == 2:
        media_counts[0] += 1
        if media_counts[0] == 2:
            print("in-load", flush=True)
            time.sleep(600)
    return count(con, name)


def load_batch(*args, **kwargs):
    loads[0] += 1
    return real_load(*args, **kwargs)


_warehouse.load_batch, _warehouse._count = load_batch, count_then_hang
for stats in process_batches(ctx, [files[:2], files[2:]]):
    print("committed", stats.images, flush=True)
"""


def test_kill_9_during_the_load_loses_nothing_and_duplicates_nothing(
    trapflow_env, camtrap_dir, tmp_path
):
    """SIGKILL inside the second batch's transaction (its media rows written, not committed):
    the first batch stays, the second is gone whole, and the next run completes the card."""
    import signal

    from flows.pipeline.discovery import list_source
    from flows.pipeline.process import batch_context, ensure_pipeline_models, process_batches
    from flows.settings import load_settings
    from flows.store.warehouse import connect, ensure_schema

    card = tmp_path / "card"
    copy_samples(
        camtrap_dir, card, [*PHOTOS, "google__cameratrapai/test_data/american_black_bear.jpg"]
    )
    wh = tmp_path / "w.duckdb"
    with connect(wh) as con:
        ensure_schema(con)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_IN_LOAD, str(wh), str(card)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy(),
    )  # fmt: skip
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("in-load"):
            os.kill(proc.pid, signal.SIGKILL)  # mid-transaction, as if the power went
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(lines)[-3000:]
    assert "committed 2\n" in lines  # the first batch had been committed before the kill
    assert query(wh, "select count(*) from raw.media")[0][0] == 2
    assert query(wh, "select count(*) from raw.media_files")[0][0] == 2

    settings = load_settings(warehouse=wh, source=str(card), ocr_model="")
    ctx = batch_context(settings, ensure_pipeline_models(settings), str(card), "after-kill")
    files = list(list_source(str(card), settings.extensions).media)
    done = [s.images for s in process_batches(ctx, [files])]
    assert done == [1]  # only the image whose batch died is processed again
    assert query(wh, "select count(*), count(distinct media_id) from raw.media")[0] == (3, 3)
    assert query(wh, "select count(*) from raw.media_files")[0][0] == 3
    boxes = query(wh, "select count(*), count(distinct detection_id) from raw.detections")[0]
    assert boxes[0] == boxes[1] > 0
