"""`trapflow run` as a user runs it: a separate process, bad files, a kill, no network."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import piexif
import pytest
from PIL import Image

from tests.conftest import copy_samples, query

pytestmark = pytest.mark.slow

TRAPFLOW = str(Path(sys.executable).parent / "trapflow")

GOOD = [
    "agentmorris__MegaDetector/images/idaho-camera-traps.jpg",
    "google__cameratrapai/test_data/human.jpg",
    "drivendataorg__zamba/tests/assets/images/ena24_small/2480.jpg",
    "microsoft__CameraTraps/test_images/test_images/idaho_camera_traps_loc_0062_loc_0062_im_004678.jpg",
]


@pytest.fixture(scope="module")
def cli_env(
    tmp_path_factory: pytest.TempPathFactory, pulled_models: Path, prefect_api: str
) -> dict[str, str]:
    """The session's Prefect server for the module's runs; models from the session's folder."""
    home = tmp_path_factory.mktemp("prefect")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TRAPFLOW_"))}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=prefect_api,
        TRAPFLOW_MODEL_DIR=str(pulled_models),
        PREFECT_LOGGING_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    return env


def _jpeg(exif: dict | None = None, size: tuple[int, int] = (320, 240)) -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", size, (90, 120, 60))
    kwargs = {"exif": piexif.dump(exif)} if exif else {}
    img.save(buf, "JPEG", quality=85, **kwargs)
    return buf.getvalue()


def _bad_card(camtrap_dir: Path, root: Path) -> dict[str, str]:
    """A card with good photos and one of each kind of bad file: path -> expected reason."""
    existing = [p for p in GOOD if (camtrap_dir / p).exists()]
    copy_samples(camtrap_dir, root / "good", existing)
    bad = root / "bad"
    bad.mkdir()
    (bad / "zero.JPG").write_bytes(b"")
    whole = (camtrap_dir / GOOD[0]).read_bytes()
    (bad / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (bad / "notes.jpg").write_text("field notes, not a photo\n")
    bomb = io.BytesIO()
    Image.new("L", (10000, 9000)).save(bomb, "PNG")  # 90 MP of zeros: a few kB on disk
    (bad / "bomb.png").write_bytes(bomb.getvalue())
    garbage = {
        "0th": {piexif.ImageIFD.Make: b"X" * 300},
        "Exif": {piexif.ExifIFD.DateTimeOriginal: b"0000:00:00 00:00:00"},
        "GPS": {
            piexif.GPSIFD.GPSLatitudeRef: b"N",
            piexif.GPSIFD.GPSLatitude: ((123, 1), (0, 1), (0, 1)),
            piexif.GPSIFD.GPSLongitudeRef: b"E",
            piexif.GPSIFD.GPSLongitude: ((10, 1), (0, 1), (0, 1)),
        },
    }
    (bad / "garbage_exif.jpg").write_bytes(_jpeg(garbage))
    png = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 10, 10)).save(png, "PNG")
    (bad / "really_a_png.jpg").write_bytes(png.getvalue())
    return {
        "bad/zero.JPG": "empty_file",
        "bad/truncated.jpg": "truncated",
        "bad/notes.jpg": "not_an_image",
        "bad/bomb.png": "decompression_bomb",
        "bad/garbage_exif.jpg": "exif_invalid",
        "bad/really_a_png.jpg": "wrong_extension",
    }


def test_bad_files_never_stop_a_run(cli_env, camtrap_dir, tmp_path):
    card = tmp_path / "card"
    expected = _bad_card(camtrap_dir, card)
    wh = tmp_path / "w.duckdb"
    proc = subprocess.run(
        [TRAPFLOW, "run", "--source", str(card), "--warehouse", str(wh), "--once"],
        env=cli_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    got = {p: r for p, r in query(wh, "select file_path, reason from raw.quarantine")}
    assert got == expected
    processed = {p for (p,) in query(wh, "select file_path from raw.media")}
    assert {"bad/garbage_exif.jpg", "bad/really_a_png.jpg"} <= processed
    assert sum(p.startswith("good/") for p in processed) == len(list((card / "good").rglob("*.*")))
    out = proc.stdout
    assert re.search(r"quarantine\s+4 files skipped", out), out
    assert "warehouse" in out and str(wh) in out.replace("\n", "")
    # the marts were built and their tests passed
    assert query(wh, "select count(*) from marts.fct_daily_population")[0][0] > 0


def test_killed_run_then_rerun_gives_one_row_per_image(cli_env, camtrap_dir, tmp_path):
    card = tmp_path / "card"
    folder = camtrap_dir / "jniedballa__camtrapR/inst/pictures/sample_images_species_dir"
    photos = sorted(p for p in folder.rglob("*.JPG"))[:24]
    for i, photo in enumerate(photos):
        target = card / photo.parent.name / f"{i:03d}_{photo.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(photo.read_bytes())
    wh = tmp_path / "w.duckdb"
    argv = [TRAPFLOW, "run", "--source", str(card), "--warehouse", str(wh), "--once",
            "--batch-size", "3", "--no-marts"]  # fmt: skip
    proc = subprocess.Popen(argv, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        if ("batch 2/" in line and "images" in line) or time.monotonic() > deadline:
            break
    os.killpg(proc.pid, signal.SIGKILL)  # no clean-up: as if the power went
    proc.wait(timeout=30)
    partial = query(wh, "select count(*) from raw.media")[0][0]
    assert 0 < partial < len(photos)
    rerun = subprocess.run(argv[:-1], env=cli_env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    import hashlib

    distinct = {hashlib.sha256(p.read_bytes()).hexdigest() for p in card.rglob("*.JPG")}
    rows = query(wh, "select media_id, count(*) from raw.media group by 1")
    assert {m for m, _ in rows} == distinct
    assert all(n == 1 for _, n in rows)
    dupes = query(wh, "select count(*) - count(distinct detection_id) from raw.detections")
    assert dupes[0][0] == 0


@pytest.mark.skipif(not Path("/usr/bin/strace").exists(), reason="strace not installed")
def test_a_run_connects_to_nothing_but_localhost(cli_env, camtrap_dir, tmp_path):
    """Every connect() of a whole run (Prefect, its temporary server, dbt, onnxruntime)."""
    card = tmp_path / "card"
    copy_samples(camtrap_dir, card, GOOD[:2])
    wh = tmp_path / "w.duckdb"
    trace = tmp_path / "connect.trace"
    env = {**cli_env, "HOME": str(tmp_path / "home")}  # onnxruntime would write ~/.cache here
    env.pop("PREFECT_API_URL")  # its own temporary Prefect server, traced with everything else
    proc = subprocess.run(
        ["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=connect", "-o", str(trace),
         TRAPFLOW, "run", "--source", str(card), "--warehouse", str(wh), "--once"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    calls = [line for line in trace.read_text().splitlines() if "connect(" in line]
    assert calls, "strace saw no connect() at all: the trace is not working"
    remote = [
        c for c in calls
        if "AF_UNIX" not in c and "AF_NETLINK" not in c
        and not re.search(r'inet_addr\("127\.|inet_pton\(AF_INET6, "::1"|"::ffff:127\.', c)
    ]  # fmt: skip
    assert not remote, "\n".join(remote[:20])
    assert not (tmp_path / "home" / ".cache" / "Microsoft").exists()  # no ORT telemetry queue
    assert query(wh, "select count(*) from raw.media")[0][0] == 2


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _media_count(wh: Path) -> int:
    import duckdb

    try:
        return query(wh, "select count(*) from raw.media")[0][0]
    except (duckdb.IOException, duckdb.CatalogException):  # a run is writing, or none ran yet
        return -1


def _completed_runs(wh: Path) -> int:
    import duckdb

    try:
        sql = "select count(*) from raw.runs where status = 'completed' and images_processed > 0"
        return query(wh, sql)[0][0]
    except (duckdb.IOException, duckdb.CatalogException):
        return -1


def test_serve_keeps_polling(cli_env, camtrap_dir, tmp_path):
    """`trapflow serve` starts a Prefect server, serves `ingest` and picks up new files."""
    card = tmp_path / "card"
    copy_samples(camtrap_dir, card, GOOD[:1])
    wh = tmp_path / "w.duckdb"
    env = {**cli_env, "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
           "PREFECT_RUNNER_POLL_FREQUENCY": "2",
           "TRAPFLOW_BUILD_MARTS": "false"}  # polling is under test, not dbt  # fmt: skip
    env.pop("PREFECT_API_URL")  # `serve` starts (and stops) a Prefect server of its own
    argv = [TRAPFLOW, "serve", "--source", str(card), "--warehouse", str(wh), "--interval", "3",
            "--prefect-port", str(_free_port())]  # fmt: skip
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while _media_count(wh) < 1:
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp_path / "serve.log"
            ).read_text()[-3000:]
            time.sleep(1)
        copy_samples(camtrap_dir, card, GOOD[1:2])  # a new photo arrives on the card
        while _media_count(wh) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp_path / "serve.log"
            ).read_text()[-3000:]
            time.sleep(1)
        while _completed_runs(wh) < 2:  # let the run that found the photo finish
            assert time.monotonic() < deadline
            time.sleep(1)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    # one run at a time: every run but the one interrupted at the end completed
    statuses = [s for (s,) in query(wh, "select status from raw.runs order by started_at")]
    assert statuses[:-1] == ["completed"] * (len(statuses) - 1)
    assert query(wh, "select count(*) from raw.media")[0][0] == 2
