"""Shared fixtures: where the shared sample data and the model mirror live.

The sample photos, their ground truth (MANIFEST.csv) and the model mirror sit beside the
checkout in ``../shared`` (override with TRAPFLOW_SHARED_DIR); nothing of them is copied here.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

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
