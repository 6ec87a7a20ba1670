"""``trapflow train``: reviewed labels from a real warehouse, the command's output and errors."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.pipeline.training import gather_images, reviewed_labels
from models_ml.training import TrainingDataError, latest_trained

STATION = "jniedballa__camtrapR/inst/pictures/sample_images_species_dir/StationC/"


def _review(warehouse: Path, per_folder: int = 4) -> dict[str, str]:
    """Label some StationC images as a reviewer would (two species), plus a false positive."""
    labelled: dict[str, str] = {}
    with duckdb.connect(str(warehouse)) as con:
        rows = con.execute(
            "select media_id, file_path from raw.media where file_path like ? order by file_path",
            [STATION + "%"],
        ).fetchall()
        counts: dict[str, int] = {}
        for media_id, path in rows:
            folder = path.split("/")[-2]
            if folder not in ("EGY", "PBE"):
                continue
            counts[folder] = counts.get(folder, 0) + 1
            if counts[folder] > per_folder:
                fp = counts[folder] == per_folder + 1
                con.execute(
                    "insert into review.labels values (uuid(), ?, null, 'animal', ?, ?, null, "
                    "'tester', ?, null)",
                    [media_id, "wrong" if fp else None, fp, datetime(2026, 1, 1)],
                )
                continue
            label = {"EGY": "moonrat", "PBE": "leopard cat"}[folder]
            # an older, superseded label first: only the latest review counts
            for when, lab in ((datetime(2025, 1, 1), "civet"), (datetime(2026, 1, 1), label)):
                con.execute(
                    "insert into review.labels values (uuid(), ?, null, 'animal', ?, false, "
                    "null, 'tester', ?, null)",
                    [media_id, lab, when],
                )
            labelled[path] = label
    return labelled


@pytest.fixture()
def reviewed_warehouse(sample_run: dict[str, Any], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    warehouse = tmp_path / "reviewed.duckdb"
    shutil.copy2(sample_run["warehouse"], warehouse)
    return warehouse, _review(warehouse)


def test_reviewed_labels_come_from_the_latest_review(
    reviewed_warehouse: tuple[Path, dict[str, str]], camtrap_dir: Path
) -> None:
    warehouse, labelled = reviewed_warehouse
    items = reviewed_labels(warehouse)
    got = {str(i.path.relative_to(camtrap_dir)): i.label for i in items}
    assert got == labelled and len(got) == 8
    assert all(i.origin == "review" for i in items)


def test_train_command_on_reviewed_labels_registers_the_head(
    reviewed_warehouse: tuple[Path, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    trapflow_env: dict[str, str],
) -> None:
    warehouse, _ = reviewed_warehouse
    model_dir = tmp_path / "models"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRAPFLOW_MODEL_DIR", str(model_dir))
    res = CliRunner().invoke(
        app,
        ["train", "--warehouse", str(warehouse), "--min-per-class", "3", "--val-fraction", "0.4"],
    )
    assert res.exit_code == 0, res.output
    assert "species_head@1" in res.output and "majority baseline" in res.output
    assert "leopard cat" in res.output and "moonrat" in res.output
    assert latest_trained(model_dir) == "species_head"
    assert (model_dir / "trained" / "species_head" / "v1" / "confusion.png").is_file()


def test_train_command_errors_say_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRAPFLOW_MODEL_DIR", str(tmp_path / "models"))
    runner = CliRunner()
    res = runner.invoke(app, ["train"])
    assert res.exit_code == 1
    assert "nothing to train on" in res.output and "--data" in res.output
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "empty")])
    assert res.exit_code == 1 and "no images found" in res.output
    only = tmp_path / "one" / "fox"
    only.mkdir(parents=True)
    for k in range(6):
        (only / f"{k}.jpg").write_bytes(b"\xff\xd8 not really")
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "one")])
    assert res.exit_code == 1 and "at least two species" in res.output
    assert "Traceback" not in res.output
    with pytest.raises(TrainingDataError, match="not found"):
        gather_images(None, None, tmp_path / "missing.duckdb")
