"""Running the dbt project as a subprocess.

In-process dbt keeps the DuckDB file locked until the process exits (stack notes §3), so the
flows and the CLI always run ``dbt`` in its own process, next to this interpreter.
"""

from __future__ import annotations

import json
import os
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
    argv = [
        dbt_executable(),
        command,
        "--project-dir", str(DBT_PROJECT_DIR),
        "--profiles-dir", str(DBT_PROJECT_DIR),
        "--target-path", str(scratch / "target"),
        "--log-path", str(scratch / "logs"),
        "--vars", json.dumps(settings.dbt_vars()),  # every var dbt declares
        *(UNIT_TESTS_OFF if command == "build" else ()),
        *extra,
    ]  # fmt: skip
    env = {
        **os.environ,
        "TRAPFLOW_WAREHOUSE": str(store.warehouse),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    t0 = time.perf_counter()
    proc = subprocess.run(
        argv, env=env, capture_output=True, text=True, cwd=DBT_PROJECT_DIR, check=False
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
    return DbtResult(seconds, log_path, output)
