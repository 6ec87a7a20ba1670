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

DBT_PROJECT_DIR = REPO_ROOT / "dbt"


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


def dbt_vars(settings: Settings) -> dict[str, object]:
    return {
        "detection_thresholds": dict(settings.detection_thresholds),
        "independence_minutes": settings.independence_minutes,
        "independence_mode": settings.independence_mode,
        "camera_down_gap_days": settings.camera_down_gap_days,
        "min_effort_trap_nights": settings.min_effort_trap_nights,
        "classification_threshold": settings.classification_threshold,
        "person_cue_detector": settings.person_cue_model or "",
    }


def run_dbt(settings: Settings, command: str = "build", *extra: str) -> DbtResult:
    """``dbt <command>`` against the settings' warehouse; raises DbtBuildError on failure."""
    import time

    scratch = settings.scratch_path
    scratch.mkdir(parents=True, exist_ok=True)
    if settings.lake:  # scale-out: the raw tables are views over the workers' Parquet files
        from flows.store import lake as _lake
        from flows.store import warehouse as _warehouse

        with _warehouse.connect(settings.warehouse_path) as con:
            _warehouse.ensure_schema(con)
            _lake.attach(con, settings.lake)
    argv = [
        dbt_executable(),
        command,
        "--project-dir", str(DBT_PROJECT_DIR),
        "--profiles-dir", str(DBT_PROJECT_DIR),
        "--target-path", str(scratch / "target"),
        "--log-path", str(scratch / "logs"),
        "--vars", json.dumps(dbt_vars(settings)),
        *extra,
    ]  # fmt: skip
    env = {
        **os.environ,
        "TRAPFLOW_WAREHOUSE": str(settings.warehouse_path),
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
