"""Checks of a run's configuration before its flow starts, so that a user's mistake is one
line and exit code 2, with no Prefect server started and no failed flow run logged.

Each check calls the function the run itself would call (the rule stays with its owner);
what can only go wrong later (a model download, a lock taken mid-run) still ends as one
``error:`` line through the CLI's user-error handling.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from flows.settings import Settings


def check_run(settings: Settings) -> None:
    """Raise the user error a run with these settings would stop with at its start."""
    from flows.pipeline.discovery import open_source

    open_source(settings.source)
    check_models(settings)
    check_deployments(settings)
    check_warehouse(settings)


def check_models(settings: Settings) -> None:
    """Every ``[models.<name>]`` entry reads (decoder, file, sha256) and every user-registered
    detector has class names and a class -> category map."""
    from flows.pipeline.process import configured_manifest
    from models_ml.detector import class_map

    manifest = configured_manifest(settings)
    for name in settings.model_names:
        spec = manifest.get(name)
        if spec is not None and spec.location is not None and spec.kind == "detector":
            class_map(spec, spec.files_dir(settings.model_path))


def check_deployments(settings: Settings) -> None:
    """The deployments file, when one is set, can be read and has the required columns."""
    if settings.deployments_csv is None:
        return
    from flows.store.deployments import read_deployments_csv

    read_deployments_csv(Path(settings.deployments_csv), settings.station_table_options())


def check_warehouse(settings: Settings, say: Callable[[str], None] | None = None) -> None:
    """No other process holds the warehouse file for longer than a run waits for it: the same
    tries as the run's storage tasks (``STORE_RETRY_DELAYS_S``), each said on ``say``; the
    last one's :class:`WarehouseBusyError` is the user's one line."""
    from flows.store import open_store
    from flows.store.warehouse import WarehouseBusyError, connect
    from flows.tasks._retry import STORE_RETRY_DELAYS_S

    store = open_store(settings)
    # a lake's exists() opens its catalog (an unreachable one is the user's one line); a lake
    # worker never holds the warehouse file
    if not store.exists() or not store.holds_history:
        return
    tries = len(STORE_RETRY_DELAYS_S)
    for attempt, delay in enumerate((*STORE_RETRY_DELAYS_S, None), start=1):
        try:
            with connect(store.warehouse):
                return
        except WarehouseBusyError as exc:
            if delay is None:
                raise
            (say or _say)(f"{exc} Retry {attempt}/{tries} in {delay} s.")
            time.sleep(delay)


def _say(line: str) -> None:
    print(line, flush=True)  # stdout: stderr is kept for the one error line
