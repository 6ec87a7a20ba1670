"""prefect.yaml as an operator uses it: a real local Prefect server, `prefect deploy`, a worker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import copy_samples, query

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _prefect(env: dict[str, str], *args: str, timeout: int = 180) -> str:
    proc = subprocess.run(
        [str(BIN / "prefect"), *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, (
        f"prefect {' '.join(args)}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    )
    return proc.stdout


def _post(api: str, path: str, body: dict[str, object]) -> list[dict[str, str]]:
    import json

    request = urllib.request.Request(
        f"{api}{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _completed_flow_runs(api: str) -> set[str]:
    """Names of the flows with a COMPLETED run, from the server's REST API."""
    import json

    def post(path: str, body: dict[str, object]) -> list[dict[str, str]]:
        request = urllib.request.Request(
            f"{api}{path}", data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    runs = post("/flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}})
    flows = {f["id"]: f["name"] for f in post("/flows/filter", {})}
    return {flows[r["flow_id"]] for r in runs}


def test_deploy_and_run_through_a_worker(pulled_models, camtrap_dir, tmp_path):
    card = tmp_path / "card"
    copy_samples(
        camtrap_dir,
        card,
        [
            "google__cameratrapai/test_data/human.jpg",
            "agentmorris__MegaDetector/images/idaho-camera-traps.jpg",
        ],
    )
    warehouse = tmp_path / "w.duckdb"
    api = f"http://127.0.0.1:{_free_port()}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TRAPFLOW_"))}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_API_URL=api,
        TRAPFLOW_SOURCE=str(card), TRAPFLOW_WAREHOUSE=str(warehouse),
        TRAPFLOW_REPO_DIR=str(REPO_ROOT), TRAPFLOW_MODEL_DIR=str(pulled_models),
        PREFECT_WORKER_QUERY_SECONDS="1",
    )  # fmt: skip
    port = api.split(":")[2].split("/")[0]
    with (tmp_path / "server.log").open("w") as log:
        server = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", port],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not _healthy(api):
            assert server.poll() is None and time.monotonic() < deadline, (
                tmp_path / "server.log"
            ).read_text()[-2000:]
            time.sleep(0.5)
        _prefect(env, "work-pool", "create", "trapflow", "--type", "process")
        out = _prefect(env, "--no-prompt", "deploy", "--all")
        assert "ingest/ingest" in out and "refresh-marts/nightly" in out
        assert "train-now/train-now" in out  # deployed (no schedule: the Label page runs it)
        _prefect(env, "deployment", "run", "ingest/ingest")
        _prefect(env, "worker", "start", "--pool", "trapflow", "--run-once", timeout=300)
        rows = query(warehouse, "select status, images_processed from raw.runs")
        assert rows == [("completed", 2)]
        assert query(warehouse, "select count(*) from marts.fct_daily_population")[0][0] > 0
        reports = _post(
            api, "/artifacts/filter", {"artifacts": {"key": {"any_": ["ingest-report"]}}}
        )
        assert reports and "| images processed | 2 |" in reports[0]["data"], reports
        _prefect(env, "deployment", "run", "refresh-marts/nightly")
        _prefect(env, "worker", "start", "--pool", "trapflow", "--run-once", timeout=300)
        completed = _completed_flow_runs(api)
        assert {"ingest", "refresh-marts"} <= completed, completed
    finally:
        server.terminate()
        server.wait(timeout=30)
