"""Piped or captured, the CLI never breaks a line inside a message (rich wraps at 80 columns
off a terminal unless told not to): long paths stay whole, so logs and greps find them."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

TRAPFLOW = str(Path(sys.executable).parent / "trapflow")


def _long_folder(tmp_path: Path) -> Path:
    folder = tmp_path / ("a folder with a long name " * 5).strip() / ("and another " * 6).strip()
    folder.mkdir(parents=True)
    return folder


def test_a_long_line_comes_out_whole_through_a_pipe(tmp_path: Path) -> None:
    warehouse = _long_folder(tmp_path) / "warehouse.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TRAPFLOW_"))}
    env.pop("COLUMNS", None)
    env["TRAPFLOW_HOME"] = str(tmp_path / "home")
    proc = subprocess.run(
        [TRAPFLOW, "summary", "--warehouse", str(warehouse)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = f"dashboard  trapflow dashboard --warehouse {shlex.quote(str(warehouse))}"
    assert len(line) > 200
    assert line in proc.stdout.splitlines(), proc.stdout
    assert shlex.split(line)[-1] == str(warehouse)  # the command copies into a shell whole


def test_a_long_error_comes_out_whole_when_captured(tmp_path: Path) -> None:
    from flows.cli import app

    clip = _long_folder(tmp_path) / "clip.mov"
    result = CliRunner().invoke(app, ["annotate", str(clip)], env={"COLUMNS": ""})
    line = f"error: {clip} is not a file: pass the path of a video clip"
    assert len(line) > 200
    assert result.exit_code == 1
    assert result.output.splitlines() == [line], result.output
