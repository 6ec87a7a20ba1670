"""The ``train-now`` flow: a species head from people's labels, the warehouse re-labelled.

The Label page's "Train now" button starts it (``trapflow train-now``, a process of its own,
so the dashboard never holds the warehouse); so can a schedule or a person (prefect.yaml).
The work is :func:`flows.pipeline.train_now.train_now`; this flow reports its progress as a
Prefect progress artifact (the flow run's Artifacts tab) and, when asked, in a small JSON
file the Label page polls.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from flows.pipeline.train_now import STEPS, summary, train_now
from flows.settings import load_settings
from flows.store import open_store


def write_progress(path: Path | None, state: dict[str, Any]) -> None:
    """Replace the progress file in one step (a reader never sees half of it)."""
    if path is None:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, default=str), encoding="utf-8")
    os.replace(tmp, path)


@flow(name="train-now", log_prints=False)
def train_now_flow(
    warehouse: str | None = None, progress_file: str | None = None
) -> dict[str, Any]:
    """Embed the labelled crops not cached yet, fit and register a head, record its report,
    re-label the stored photos from cached embeddings, rebuild the marts."""
    settings = load_settings(warehouse=warehouse)
    logger = get_run_logger()
    path = Path(progress_file) if progress_file else None
    state: dict[str, Any] = {"status": "running", "step": STEPS[0], "done": 0, "total": 0,
                             "pid": os.getpid(),
                             "percent": 0.0, "started_at": time.time()}  # fmt: skip
    artifact = cast(UUID, create_progress_artifact(0.0, key="train-now", description="train now"))
    last = [0.0]

    def progress(step: str, done: int, total: int) -> None:
        share = 100.0 / len(STEPS)
        within = done / total if total else 0.0
        percent = round(STEPS.index(step) * share + within * share, 1)
        state.update(step=step, done=done, total=total, percent=percent)
        now = time.monotonic()
        if now - last[0] >= 0.25 or done == total:  # a file write per photo would cost more
            last[0] = now
            write_progress(path, state)
            update_progress_artifact(artifact, percent)

    write_progress(path, state)
    try:
        result = train_now(settings, open_store(settings), progress=progress)
    except Exception as exc:
        write_progress(path, {**state, "status": "failed", "error": str(exc)})
        raise
    done = summary(result)
    logger.info("train now: %s", done)
    write_progress(path, {**state, "status": "finished", "percent": 100.0, "result": done})
    update_progress_artifact(artifact, 100.0)
    return done
