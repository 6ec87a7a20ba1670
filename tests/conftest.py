"""Shared fixtures: where the shared sample data and the model mirror live.

The sample photos, their ground truth (MANIFEST.csv) and the model mirror sit beside the
checkout in ``../shared`` (override with TRAPFLOW_SHARED_DIR); nothing of them is copied here.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import pickle
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.testing.utilities import prefect_test_harness

from flows.store.warehouse import open_file

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("TRAPFLOW_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DIR}; set TRAPFLOW_SHARED_DIR")
    return SHARED_DIR


@pytest.fixture(scope="session")
def camtrap_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "camtrap"


@pytest.fixture(scope="session")
def model_mirror(shared_dir: Path) -> Path:
    return shared_dir / "models"


@pytest.fixture(scope="session")
def manifest_rows(camtrap_dir: Path) -> list[dict[str, str]]:
    """The ground truth of the sample data, one dict per file (see its README)."""
    with (camtrap_dir / "MANIFEST.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# Flow fixtures: Prefect's test harness and one real ingest of the samples.


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect API for the whole session (one server start, ~8 s on 2 cores)."""
    with (
        prefect_test_harness(server_startup_timeout=90),
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        yield


@pytest.fixture(scope="session")
def pulled_models(tmp_path_factory: pytest.TempPathFactory, model_mirror: Path) -> Path:
    """The two detectors, pulled once per session from the mirror into a temp model folder."""
    from models_ml import registry

    model_dir = tmp_path_factory.mktemp("models")
    manifest = registry.load_manifest()
    names = ("mdlite_yolox_tiny", "yolox_nano_coco", "mobilenetv2_12_int8_imagenet", "ppocrv4_ocr")
    for name in names:
        registry.pull(manifest[name], model_dir, str(model_mirror))
    return model_dir


@pytest.fixture(scope="session")
def trapflow_env(pulled_models: Path, model_mirror: Path) -> Iterator[dict[str, str]]:
    """Environment every in-process run of the session uses (models from the temp folder)."""
    env = {"TRAPFLOW_MODEL_DIR": str(pulled_models), "TRAPFLOW_MODEL_MIRROR": str(model_mirror)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (the xdist workers of one run share it)."""
    import fcntl

    with lock_file.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def built_once(
    name: str, tmp_path_factory: pytest.TempPathFactory, build: Callable[[Path], None]
) -> Path:
    """A new folder of this test process's own with what ``build(folder)`` made there.

    ``build`` runs once per test run: under pytest-xdist the first worker that asks runs it
    and the others wait on a lock; each caller then gets a copy (a test may write to it)."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / f"{name}-run"
    with exclusive(shared.with_suffix(".lock")):
        if not shared.exists():
            building = shared.with_name(f"{name}-run.building")
            shutil.rmtree(building, ignore_errors=True)
            building.mkdir()
            build(building)
            building.rename(shared)
    own = tmp_path_factory.mktemp(name)
    shutil.copytree(shared, own, dirs_exist_ok=True)
    return own


def _ingested_once(
    name: str, source: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A real ingest of ``source`` with the marts built, run once per test run (built_once)."""
    from flows.ingest import ingest

    def build(folder: Path) -> None:
        built = ingest(source=str(source), warehouse=str(folder / "warehouse.duckdb"))
        (folder / "summary.pickle").write_bytes(pickle.dumps(built))

    own = built_once(name, tmp_path_factory, build)
    warehouse = own / "warehouse.duckdb"
    summary = pickle.loads((own / "summary.pickle").read_bytes())  # noqa: S301 (our own worker wrote it)
    return {
        "summary": dataclasses.replace(summary, warehouse=str(warehouse)),
        "warehouse": warehouse,
    }


@pytest.fixture(scope="session")
def sample_run(
    prefect_harness: None,
    trapflow_env: dict[str, str],
    camtrap_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """One real ingest of every sample image, with the marts built (shared by many tests)."""
    return _ingested_once("sample", camtrap_dir, tmp_path_factory)


CAMTRAPR_TAGGED = "jniedballa__camtrapR/inst/pictures/sample_images_species_tag"


@pytest.fixture(scope="session")
def camtrapr_run(
    prefect_harness: None,
    trapflow_env: dict[str, str],
    camtrap_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """camtrapR's 41 species-tagged sample photos (StationA-C), ingested and built once; no
    station table loaded. Copy it before writing (tests of station tables, detection history)."""
    return Path(
        _ingested_once("camtrapr", camtrap_dir / CAMTRAPR_TAGGED, tmp_path_factory)["warehouse"]
    )


def query(warehouse: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with open_file(warehouse, read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def copy_samples(camtrap_dir: Path, dest: Path, paths: list[str]) -> list[Path]:
    out = []
    for rel in paths:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(camtrap_dir / rel, target)
        out.append(target)
    return out


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real Prefect server for the session's `trapflow` subprocesses (saves each its own
    temporary server start, ~8 s on 2 cores). Returns PREFECT_API_URL."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tmp_path_factory.mktemp("prefect-server")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    url = f"http://127.0.0.1:{port}/api"
    with (home / "server.log").open("w") as log:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "prefect"), "server", "start",
             "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail("the Prefect server did not start: " + (home / "server.log").read_text())
        time.sleep(0.3)
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
