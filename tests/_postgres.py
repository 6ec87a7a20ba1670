"""A real PostgreSQL on loopback for the DuckLake tests (Debian's package, never a container).

``initdb`` into a temporary folder, ``pg_ctl start`` on 127.0.0.1 and a free port, trust
authentication for the one local user; stopped (``pg_ctl stop -m immediate``) at the end.
PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests._servers import free_port


def pg_bin() -> Path | None:
    """Debian's newest PostgreSQL binaries (``/usr/lib/postgresql/<n>/bin``), else PATH's."""
    root = Path("/usr/lib/postgresql")
    versions = sorted(root.glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]), reverse=True)
    if versions:
        return versions[0].parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _as_owner(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


@contextmanager
def postgres_server(database: str = "trapflow_lake") -> Iterator[str]:
    """A started server with ``database`` created; yields its libpq connection string."""
    bin_dir = pg_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    work = Path(tempfile.mkdtemp(prefix="trapflow-pg-"))
    if os.geteuid() == 0:
        shutil.chown(work, "postgres", "postgres")
    data, port, user = work / "data", free_port(), "trapflow"
    run = lambda argv: subprocess.run(  # noqa: E731
        _as_owner(argv), check=True, capture_output=True, text=True, timeout=120
    )
    run([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", user, "-E", "UTF8",
         "--no-sync"])  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {work} -c fsync=off"
    run([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(work / "log"),
         "-w", "-t", "60", "start"])  # fmt: skip
    try:
        run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", user, database])
        yield f"dbname={database} host=127.0.0.1 port={port} user={user}"
    finally:
        subprocess.run(_as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                  "-w", "stop"]), capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)


def create_database(dsn: str, name: str) -> str:
    """A new empty database on the same server; returns its connection string."""
    bin_dir = pg_bin()
    assert bin_dir is not None
    parts = dict(p.split("=", 1) for p in dsn.split())
    argv = [str(bin_dir / "createdb"), "-h", parts["host"], "-p", parts["port"],
            "-U", parts["user"], name]  # fmt: skip
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    return " ".join(f"{k}={name if k == 'dbname' else v}" for k, v in parts.items())
