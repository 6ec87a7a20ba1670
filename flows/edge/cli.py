"""``trapflow-edge`` (and ``trapflow edge``): the edge command, without Prefect, dbt, DuckDB or
Streamlit, so it runs on the edge install (docs/edge.md).

    trapflow-edge --card /media/card --upload s3://bucket/prefix --once
    trapflow-edge --card /media/card --upload /mnt/share/traps        (every --interval s)

Exit codes: 0 done (everything queued went up); 1 uploads are still queued (offline: the next
run resumes them); 2 a user error (a setting, the card, a full disk), as one line on stderr.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

import flows  # noqa: F401  (telemetry off before onnxruntime is imported)
from flows.errors import one_line, user_error_types

USER_ERROR = 2
OFFLINE = 1


def edge(
    card: Annotated[Path, typer.Option("--card", help="The mounted memory card (a folder).")],
    upload: Annotated[
        str, typer.Option("--upload", help="s3://bucket/prefix (any fsspec URL) or a folder.")
    ],
    once: Annotated[
        bool, typer.Option("--once", help="One scan and upload, then exit (else every --interval).")
    ] = False,
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", help="The queue and manifests (env TRAPFLOW_EDGE_STATE_DIR)."),
    ] = None,
    model_dir: Annotated[
        Path | None, typer.Option("--model-dir", help="Verified models (env TRAPFLOW_MODEL_DIR).")
    ] = None,
    interval: Annotated[
        float | None, typer.Option("--interval", help="Seconds between runs without --once.")
    ] = None,
    min_free_mb: Annotated[
        float | None,
        typer.Option("--min-free-mb", help="Below this free disk no new photo is taken in."),
    ] = None,
) -> None:
    """Detect on the card, upload the photos with something in them (people first) and a
    manifest of every photo; blanks stay on the card. Offline, uploads wait on disk."""
    from flows.edge.run import run_edge
    from flows.edge.settings import EdgeSettings

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    options: dict[str, object] = {"card": card, "upload": upload}
    for name, value in (("state_dir", state_dir), ("model_dir", model_dir),
                        ("interval_s", interval), ("min_free_mb", min_free_mb)):  # fmt: skip
        if value is not None:
            options[name] = value
    try:
        report = run_edge(EdgeSettings(**options), once=once)  # type: ignore[arg-type]
    except user_error_types() as exc:
        typer.echo(f"error: {one_line(exc)}", err=True)
        raise typer.Exit(USER_ERROR) from None
    typer.echo(report.line())
    if report.disk_full:
        typer.echo(f"error: {report.disk_full}", err=True)
        raise typer.Exit(USER_ERROR)
    if report.pending:
        typer.echo(
            f"{report.pending} uploads stay queued ({'; '.join(report.errors[-1:]) or 'offline'}"
            "); the next run resumes them in order",
            err=True,
        )
        raise typer.Exit(OFFLINE)


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: before numpy/onnxruntime load
    typer.run(edge)
