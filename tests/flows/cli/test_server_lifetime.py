"""``kill -9`` of a run does not leave its temporary Prefect server (uvicorn) running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TRAPFLOW = str(Path(sys.executable).parent / "trapflow")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_kill_9_of_a_run_takes_its_temporary_server_along(
    tmp_path: Path, pulled_models: Path
) -> None:
    (tmp_path / "card").mkdir()  # nothing to process: only the server's life is under test
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TRAPFLOW_"))}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect"),
        TRAPFLOW_HOME=str(tmp_path / "home"),
        TRAPFLOW_MODEL_DIR=str(pulled_models),
        PYTHONUNBUFFERED="1",
    )
    argv = [TRAPFLOW, "run", "--source", str(tmp_path / "card"), "--warehouse",
            str(tmp_path / "w.duckdb"), "--watch", "--interval", "3600", "--no-marts"]  # fmt: skip
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(
        argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    servers: list[int] = []
    try:
        deadline = time.monotonic() + 240
        while "warehouse  " not in (tmp_path / "run.log").read_text():  # the first poll is done
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp_path / "run.log"
            ).read_text()[-3000:]
            time.sleep(0.5)
        servers = [p for p in _children(proc.pid) if "uvicorn" in _cmdline(p)]
        assert servers, "no temporary Prefect server under the run: " + str(
            [_cmdline(p) for p in _children(proc.pid)]
        )
        os.kill(proc.pid, signal.SIGKILL)  # the run only, as `kill -9 PID` does
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in servers) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(_alive(p) for p in servers), [_cmdline(p) for p in servers]
    finally:
        log.close()
        for pid in servers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
