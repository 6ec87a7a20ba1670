"""Running the dbt project as a subprocess.

In-process dbt keeps the DuckDB file locked until the process exits (stack notes §3), so the
flows and the CLI always run ``dbt`` in its own process, next to this interpreter.

dbt runs in the warehouse's folder and attaches the file by its name (``TRAPFLOW_WAREHOUSE``
in ``dbt/profiles.yml``): the profile is then the same for every warehouse of one name, so
dbt's partial parse (``partial_parse.msgpack``, which dbt throws away when the profile, the
vars, the project's files or dbt's version differ) carries over from the last run of any
warehouse of that name and vars to a new one. A new warehouse's target folder starts from the
copy kept in ``dbt/target/partial_parse/`` and saves ~4 s of a full parse.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from flows.settings import REPO_ROOT, Settings
from flows.store import Store, open_store

DBT_PROJECT_DIR = REPO_ROOT / "dbt"

#: A run's build skips the YAML unit tests: their inputs are fixed rows, not the warehouse, so
#: they say the same on every run (dbt's advice: run them in development and CI; here
#: tests/dbt/test_build.py and ``dbt build`` by hand). The data tests still check every build.
UNIT_TESTS_OFF = ("--exclude-resource-type", "unit_test")

#: The last run's parse per warehouse name and vars, where a new warehouse's target folder
#: copies it from (dbt's own target folder: dbt keeps it there by default).
PARSE_SEEDS = DBT_PROJECT_DIR / "target" / "partial_parse"


class DbtBuildError(RuntimeError):
    """dbt build failed; the message carries the failing nodes and where the full log is."""


@dataclass(frozen=True)
class DbtResult:
    seconds: float
    log_path: Path
    output: str


def dbt_executable() -> str:
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else "dbt"


def _copy_parse(src: Path, dest: Path) -> None:
    """Copy a partial-parse file whole or not at all (other runs may read ``dest`` meanwhile);
    a checkout that cannot be written only costs a full parse."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        shutil.copyfile(src, part)
        os.replace(part, dest)
    except OSError:
        pass


def seed_parse(target: Path, warehouse_name: str, dbt_vars: str) -> Path:
    """Start ``target`` (a dbt target folder) from the last good parse of a warehouse of this
    name and vars when it has none of its own; returns that seed, for ``keep_parse``."""
    key = hashlib.sha256(f"{warehouse_name}|{dbt_vars}".encode()).hexdigest()[:16]
    seed = PARSE_SEEDS / key
    parse = target / "partial_parse.msgpack"
    if not parse.exists() and seed.exists():
        _copy_parse(seed, parse)
    return seed


def keep_parse(target: Path, seed: Path) -> None:
    """After a good run: ``target``'s parse becomes the seed for the next new warehouse."""
    parse = target / "partial_parse.msgpack"
    if parse.exists():
        _copy_parse(parse, seed)


def run_dbt(
    settings: Settings, command: str = "build", *extra: str, store: Store | None = None
) -> DbtResult:
    """``dbt <command>`` against the store's warehouse file (the run's store, else the
    settings'); raises DbtBuildError on failure."""
    import time

    scratch = settings.scratch_path
    scratch.mkdir(parents=True, exist_ok=True)
    store = store or open_store(settings)
    store.prepare_build()  # a DuckLake: one snapshot copied into raw.* (legacy lake: views)
    warehouse = Path(store.warehouse).absolute()
    dbt_vars = json.dumps(settings.dbt_vars())
    argv = [
        dbt_executable(),
        command,
        "--project-dir", str(DBT_PROJECT_DIR),
        "--profiles-dir", str(DBT_PROJECT_DIR),
        "--target-path", str(scratch / "target"),
        "--log-path", str(scratch / "logs"),
        "--vars", dbt_vars,  # every var dbt declares
        *(UNIT_TESTS_OFF if command == "build" else ()),
        *extra,
    ]  # fmt: skip
    env = {
        **os.environ,
        # its name (./: never a URL such as md:), dbt running in its folder (module docstring)
        "TRAPFLOW_WAREHOUSE": os.path.join(".", warehouse.name),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    t0 = time.perf_counter()
    seed = seed_parse(scratch / "target", warehouse.name, dbt_vars)
    proc = subprocess.run(
        argv, env=env, capture_output=True, text=True, cwd=warehouse.parent, check=False
    )
    seconds = time.perf_counter() - t0
    output = proc.stdout + proc.stderr
    log_path = scratch / "logs" / "dbt.log"
    if proc.returncode != 0:
        failing = [
            line.strip() for line in output.splitlines()
            if any(word in line for word in ("ERROR", "FAIL", "Error", "error:"))
        ][-15:]  # fmt: skip
        raise DbtBuildError(
            f"dbt {command} failed (exit {proc.returncode}) on {settings.warehouse_path}:\n"
            + "\n".join(failing or output.splitlines()[-15:])
            + f"\nFull log: {log_path}. Fix the model or test named above, then run "
            "'trapflow marts' again."
        )
    keep_parse(scratch / "target", seed)
    return DbtResult(seconds, log_path, output)
