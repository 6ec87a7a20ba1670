"""A user's mistake is one line on stderr (what is wrong, what to do), exit code 2, and no
traceback, neither Prefect's nor the CLI's; the traceback is in the log and under --debug."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import copy_samples

TRAPFLOW = str(Path(sys.executable).parent / "trapflow")
PHOTO = "drivendataorg__zamba/tests/assets/images/ena24_small/2480.jpg"
MDLITE = "mdlite_yolox_tiny/mdlite_yolox_tiny.onnx"
MDLITE_SHA = "224208042da916b4a990ec26c77a3a3a9f5d6aa2743ceb3d564889a14129459f"


def _trapflow(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``trapflow ARGS`` in ``cwd`` (its trapflow.toml), piped, as a user's shell runs it."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TRAPFLOW_"))}
    base.update(
        TRAPFLOW_HOME=str(cwd / "home"),
        PREFECT_HOME=str(cwd / "prefect"),
        TRAPFLOW_MODEL_DIR=str(cwd / "models"),
        **(env or {}),
    )
    base.pop("COLUMNS", None)
    return subprocess.run(
        [TRAPFLOW, *args], cwd=cwd, env=base, capture_output=True, text=True, timeout=300
    )


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines
    return lines[0]


@pytest.fixture
def card(tmp_path: Path, camtrap_dir: Path) -> Path:
    copy_samples(camtrap_dir, tmp_path / "card", [PHOTO])
    return tmp_path / "card"


def _run(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> str:
    proc = _trapflow(
        tmp_path, "run", "--source", "card", "--warehouse", "w.duckdb", "--once", *extra, env=env
    )
    return _one_line(proc)


def _user_model(tmp_path: Path, shared_dir: Path, **fields: str) -> None:
    entry = {"file": f"'{shared_dir / 'models' / MDLITE}'", "sha256": f"'{MDLITE_SHA}'", **fields}
    lines = ['animal_model = "my_md"', "[models.my_md]", *(f"{k} = {v}" for k, v in entry.items())]
    (tmp_path / "trapflow.toml").write_text("\n".join(lines) + "\n")


def test_a_wrong_decoder(tmp_path: Path, card: Path, shared_dir: Path) -> None:
    _user_model(tmp_path, shared_dir, decoder="'yolox_wrong'", categories="{animal = 'animal'}")
    line = _run(tmp_path)
    assert "user model 'my_md'" in line and "decoder must be one of" in line
    assert "yolox_decoded" in line and "trapflow.toml" in line


def test_a_detector_without_a_categories_map(tmp_path: Path, card: Path, shared_dir: Path) -> None:
    _user_model(tmp_path, shared_dir, decoder="'yolox_decoded'", labels="['animal']")
    line = _run(tmp_path)
    assert "my_md: no class -> category map" in line
    assert 'categories = { animal = "animal" }' in line and "[models.my_md]" in line


def test_a_bad_setting(tmp_path: Path, card: Path) -> None:
    (tmp_path / "trapflow.toml").write_text('batch_size = "lots"\n')
    line = _run(tmp_path)
    assert "batch_size" in line and "'lots'" in line and "trapflow.toml" in line


def test_a_missing_source_folder(tmp_path: Path) -> None:
    proc = _trapflow(tmp_path, "run", "--source", "nowhere", "--warehouse", "w.duckdb")
    line = _one_line(proc)
    assert f"source folder {tmp_path / 'nowhere'} does not exist" in line
    assert "--source" in line
    assert not (tmp_path / "prefect" / "server.log").exists()


def test_a_bad_deployments_file(tmp_path: Path, card: Path) -> None:
    (tmp_path / "deployments.csv").write_text("site,latitude\nA,1.5\n")
    (tmp_path / "trapflow.toml").write_text(f"deployments_csv = '{tmp_path / 'deployments.csv'}'\n")
    line = _run(tmp_path)
    assert "deployments.csv: required column(s) deployment_id" in line and "Add them" in line


def test_a_locked_warehouse(tmp_path: Path, card: Path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as holder:
        holder.execute("create table held (x integer)")
        line = _run(tmp_path, env={"TRAPFLOW_LOCK_WAIT_S": "1"})
    assert "stayed locked by another process" in line and "Stop the other writer" in line


def test_the_traceback_is_in_the_log_and_under_debug(tmp_path: Path, card: Path) -> None:
    (tmp_path / "trapflow.toml").write_text('batch_size = "lots"\n')
    _run(tmp_path)
    log = (tmp_path / "home" / "logs" / "trapflow.log").read_text()
    assert "Traceback" in log and "SettingsError" in log
    proc = _trapflow(tmp_path, "--debug", "run", "--source", "card", "--once")
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr and "SettingsError" in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1].startswith("error: invalid setting: batch_size")


def test_prefect_logs_a_user_error_without_its_traceback() -> None:
    """Inside a flow run (a lock taken mid-run, a model download): Prefect's failed-run
    record keeps its one line, not the traceback; anything else keeps its traceback."""
    from flows.cli._app import STATE, quiet_user_error_tracebacks
    from flows.store.warehouse import WarehouseBusyError

    quiet_user_error_tracebacks()
    logger = logging.getLogger("prefect.flow_runs")
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep()
    logger.addHandler(handler)
    try:
        for error in (WarehouseBusyError("busy: stop the other writer"), KeyError("a bug")):
            try:
                raise error
            except Exception:
                logger.exception("Encountered exception during execution: %r", error)
        STATE.debug = True
        try:
            raise WarehouseBusyError("busy again")
        except Exception:
            logger.exception("Encountered exception during execution")
    finally:
        STATE.debug = False
        logger.removeHandler(handler)
    user, bug, debugged = seen
    assert user.exc_info is None and "busy: stop the other writer" in user.getMessage()
    assert bug.exc_info is not None
    assert debugged.exc_info is not None


def test_user_errors_are_never_retried_but_a_busy_warehouse_is() -> None:
    from flows.pipeline.discovery import SourceNotFoundError
    from flows.settings import SettingsError
    from flows.store.warehouse import WarehouseBusyError
    from flows.tasks._retry import should_retry
    from models_ml.registry import ModelFetchError

    assert not should_retry(SourceNotFoundError("source folder /x does not exist"))
    assert not should_retry(SettingsError("invalid setting"))
    assert not should_retry(ModelFetchError("no mirror"))
    assert not should_retry(ValueError("a bug"))
    assert should_retry(WarehouseBusyError("busy"))
    assert should_retry(ConnectionResetError())
    assert should_retry(duckdb.IOException("disk"))


@pytest.mark.slow
def test_a_user_error_inside_the_flow_run_has_no_traceback(
    tmp_path: Path, card: Path, prefect_api: str
) -> None:
    """Found only once the flow runs (the models are checked by its first task): Prefect's
    failed-run lines and the CLI's one line, no traceback from either, exit code 2."""
    (tmp_path / "trapflow.toml").write_text('animal_model = "nope"\n')
    proc = _trapflow(
        tmp_path, "run", "--source", "card", "--warehouse", "w.duckdb", "--once",
        env={"PREFECT_API_URL": prefect_api, "PREFECT_LOGGING_LEVEL": "INFO"},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-5000:]
    assert "Finished in state Failed" in proc.stderr  # the flow did run
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: model(s) nope are not in the registry"), last
