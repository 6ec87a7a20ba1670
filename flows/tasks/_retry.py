"""Retry only what can get better by waiting: I/O, locks, the network. Never a bug."""

from __future__ import annotations

from typing import Any

import duckdb

from flows.store.warehouse import WarehouseBusyError

TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # includes ConnectionError and TimeoutError
    WarehouseBusyError,
    duckdb.IOException,
)


def retry_on_io(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except TRANSIENT:
        return True
    except BaseException:
        return False
    return False
