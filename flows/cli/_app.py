"""The ``trapflow`` typer app, its command groups, consoles, shared options and error policy.

Exit codes: 0 done; 1 the command ran and failed (a dbt test, a refused dashboard, a file it
could not read); 2 a user error (:mod:`flows.errors`: a bad setting, model entry or
deployments file, a missing source folder, a busy warehouse) or a usage error (typer's own).
A user error is one line on stderr, what is wrong and what to do; its traceback goes to the
log (``<home>/logs/trapflow.log``) and, under ``trapflow --debug``, to stderr as well.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

import flows  # noqa: F401  (switches telemetry off before anything else is imported)
from flows.errors import one_line, user_error_types

#: Exit code of a user error (and of typer's usage errors).
USER_ERROR = 2


class _State:
    debug = False


STATE = _State()


def _console(*, stderr: bool = False) -> Console:
    """A console that never breaks a line it prints: piped, logged or in a terminal, a
    message stays one line (rich hard-wraps at 80 columns off a terminal otherwise)."""
    return Console(stderr=stderr, soft_wrap=True)


console = _console()
err = _console(stderr=True)


def log_path() -> Path:
    """The CLI's log, ``<home>/logs/trapflow.log``: tracebacks of user errors (the terminal
    shows one line). The settings' home, or TRAPFLOW_HOME when the settings are the error."""
    from flows.settings import load_settings

    try:
        home = load_settings().home
    except Exception:
        home = Path(os.environ.get("TRAPFLOW_HOME") or ".trapflow")
    return home.expanduser() / "logs" / "trapflow.log"


def _log_traceback(exc: BaseException) -> None:
    path = log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
            fh.write(f"{stamp} UTC trapflow {' '.join(sys.argv[1:])}\n")
            fh.write("".join(traceback.format_exception(exc)))
    except OSError:  # a read-only home: the one line is still shown
        pass


def report_user_error(exc: BaseException) -> None:
    """One line on stderr; the traceback in the log, and on stderr under ``--debug``."""
    _log_traceback(exc)
    if STATE.debug:
        traceback.print_exception(exc, file=sys.stderr)
    err.print(f"[bold red]error:[/] {escape(one_line(exc))}", highlight=False)


class _NoUserErrorTraceback(logging.Filter):
    """Prefect logs a failed task or flow run with its traceback; for a user error the one
    line of the message is enough (the CLI logs the traceback, ``--debug`` shows it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and isinstance(error, user_error_types()) and not STATE.debug:
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_user_error_tracebacks() -> None:
    """Install :class:`_NoUserErrorTraceback` on Prefect's run loggers (once)."""
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoUserErrorTraceback) for f in logger.filters):
            logger.addFilter(_NoUserErrorTraceback())


class _Group(TyperGroup):
    """The root group: a user error from any command becomes one line and exit code 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except user_error_types() as exc:
            report_user_error(exc)
            raise typer.Exit(USER_ERROR) from None


app = typer.Typer(
    name="trapflow",
    help="Camera-trap images in, detections and daily population marts out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Group,
)


@app.callback()
def _options(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", help="Show the traceback of an error too (it is always in the log)."
        ),
    ] = False,
) -> None:
    STATE.debug = debug
    quiet_user_error_tracebacks()


models_app = typer.Typer(help="The model registry: list, pull from the mirror, verify.")
app.add_typer(models_app, name="models")
alerts_app = typer.Typer(help="Alerts: test the channels, list the outbox, deliver.")
app.add_typer(alerts_app, name="alerts")
export_app = typer.Typer(help="Field formats out: MegaDetector JSON, Camtrap DP, mart CSVs.")
app.add_typer(export_app, name="export")
import_app = typer.Typer(help="Field formats in: MegaDetector batch output JSON, label CSVs.")
app.add_typer(import_app, name="import")
dashboard_app = typer.Typer(help="Open the Streamlit dashboard; manage who may sign in.")
app.add_typer(dashboard_app, name="dashboard")
users_app = typer.Typer(help="Password sign-in users of the dashboard (docs/security.md).")
dashboard_app.add_typer(users_app, name="users")

WarehouseOpt = Annotated[
    Path | None,
    typer.Option(
        "--warehouse", "-w", help="DuckDB file (env TRAPFLOW_WAREHOUSE).", show_default=False
    ),
]
SourceOpt = Annotated[
    str | None,
    typer.Option("--source", "-s", help="Folder or URL to poll (env TRAPFLOW_SOURCE)."),
]
LakeOpt = Annotated[
    str | None,
    typer.Option(
        "--lake",
        help="Scale-out: a DuckLake, 'ducklake:postgres:dbname=... host=...' or "
        "'ducklake:sqlite:/path' (data: --lake-data-path); env TRAPFLOW_LAKE.",
    ),
]
LakeDataOpt = Annotated[
    str | None,
    typer.Option(
        "--lake-data-path",
        help="Where the DuckLake keeps its Parquet files: a folder or s3://bucket/prefix "
        "(credentials from AWS_*); env TRAPFLOW_LAKE_DATA_PATH.",
    ),
]
SitesOpt = Annotated[
    list[str] | None, typer.Option("--site", help="Only these sites (repeatable).")
]
LayoutOpt = Annotated[
    str | None,
    typer.Option("--layout", help="Folder pattern for site/camera, e.g. '{site}/{camera}/...'."),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` (one line) and return the Exit to raise."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code=code)


def user_errors() -> tuple[type[BaseException], ...]:
    """What a command turns into one ``error:`` line: the user errors, and what the
    filesystem says about a path the user gave."""
    from flows.store.dbt import DbtBuildError

    return (*user_error_types(), FileNotFoundError, NotADirectoryError, PermissionError,
            DbtBuildError)  # fmt: skip


def fail_from(exc: BaseException) -> typer.Exit:
    """The Exit for an error a command caught: a user error is reported as one (one line,
    traceback logged, exit 2), anything else as ``error: message`` with exit 1."""
    if isinstance(exc, user_error_types()):
        report_user_error(exc)
        return typer.Exit(USER_ERROR)
    return fail(str(exc))
