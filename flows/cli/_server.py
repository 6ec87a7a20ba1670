"""The Prefect servers the CLI starts, and the rule that none of them outlives its command.

``trapflow run`` without ``PREFECT_API_URL`` uses Prefect's temporary server (a uvicorn
child); ``trapflow serve`` starts a real one. Both are started here, from the main thread,
through :data:`DIE_WITH_PARENT`: the child asks Linux to SIGTERM it when its parent dies
(``prctl(PR_SET_PDEATHSIG)``), so ``kill -9`` of the command does not leave a server behind.
Prefect's own clean-up (``atexit``, ``serve``'s ``finally``) still stops it on a normal exit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from flows.cli._app import console, fail

#: ``python -c DIE_WITH_PARENT PARENT_PID ARGV...``: set the parent-death signal, make sure
#: the parent is still there (it may have died before the prctl), then exec ARGV. The signal
#: survives exec, and the parent is the thread that started the child: the main thread.
DIE_WITH_PARENT = """\
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except (AttributeError, OSError):
    pass  # not Linux: the server lives until it is stopped
if os.getppid() != int(sys.argv[1]):
    sys.exit(0)
os.execv(sys.argv[2], sys.argv[2:])
"""


def dying_with_us(argv: list[str]) -> list[str]:
    """``argv`` wrapped so that the process it starts ends when this one does."""
    return [sys.executable, "-c", DIE_WITH_PARENT, str(os.getpid()), *argv]


def uses_temporary_server() -> bool:
    """True when Prefect would start its temporary server for this process (no API URL)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    return not PREFECT_API_URL.value() and bool(PREFECT_SERVER_EPHEMERAL_ENABLED.value())


def start_temporary_server() -> None:
    """Start Prefect's temporary server now, from the main thread, as a child that dies with
    this process; the flow run then uses it as it would its own (same port, same stop)."""
    if not uses_temporary_server():
        return
    import prefect
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import get_current_settings

    class _DiesWithParent(SubprocessASGIServer):
        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            # Prefect's own command and environment (prefect/server/api/server.py, 3.x),
            # started through dying_with_us
            argv = [
                sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent),
                "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
                "--port", str(self.port), "--log-level", "error", "--lifespan", "on",
            ]  # fmt: skip
            env = {
                **os.environ,
                "PREFECT_UI_ENABLED": "0",
                "PREFECT__SERVER_EPHEMERAL": "1",
                "PREFECT__SERVER_FINAL": "1",
                **get_current_settings().to_environment_variables(exclude_unset=True),
            }
            return subprocess.Popen(dying_with_us(argv), env=env)

    # Prefect keeps one temporary server per process, keyed by port (None: pick one); ours
    # takes that place, so every later SubprocessASGIServer() of Prefect's gets it.
    existing = SubprocessASGIServer._instances.get(None)
    if existing is not None and existing.running:
        return
    SubprocessASGIServer._instances.pop(None, None)
    _DiesWithParent().start()


def ui_url() -> str:
    return os.environ.get("PREFECT_API_URL", "http://127.0.0.1:4200/api").removesuffix("/api")


def ensure_prefect_server(port: int) -> subprocess.Popen[bytes] | None:
    """Use PREFECT_API_URL, or a server already on the port, or start one (log in PREFECT_HOME)
    that stops with this process."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    url = f"http://127.0.0.1:{port}/api"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except OSError:
            return False

    os.environ["PREFECT_API_URL"] = url
    if healthy():
        return None
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    console.print(f"Starting a Prefect server on {url} (log: {home / 'server.log'})")
    with (home / "server.log").open("ab") as log:
        proc = subprocess.Popen(
            dying_with_us([sys.executable, "-m", "prefect", "server", "start",
                           "--host", "127.0.0.1", "--port", str(port)]),
            stdout=log, stderr=subprocess.STDOUT,
            # its own process group: Ctrl-C stops the runner first, which still needs the API
            # to pause its deployment; `serve` stops the server after that
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 120
    while not healthy():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise fail(
                f"the Prefect server did not start on port {port} (see {home / 'server.log'}); "
                "start one with 'prefect server start' and set PREFECT_API_URL"
            )
        time.sleep(0.5)
    return proc
