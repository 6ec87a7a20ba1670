"""Retry only what can get better by waiting: I/O, locks, the network. Never a bug, and never
a user's mistake (a missing folder or a bad setting stays wrong however long we wait)."""

from __future__ import annotations

from typing import Any

import duckdb

from flows.errors import user_error_types
from flows.store.warehouse import WarehouseBusyError

#: Seconds between the tries of a task that reads or writes the store (a busy warehouse, a
#: flaky bucket); the CLI's pre-run check waits for a locked warehouse on the same schedule.
STORE_RETRY_DELAYS_S: tuple[int, ...] = (2, 5, 15)

TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # includes ConnectionError and TimeoutError
    WarehouseBusyError,  # a user error too, but the other process may let go
    duckdb.IOException,
)


def should_retry(exc: BaseException) -> bool:
    """True for a transient failure; False for a bug or a user error (busy warehouse aside)."""
    if isinstance(exc, WarehouseBusyError):
        return True
    if isinstance(exc, user_error_types()):
        return False
    return isinstance(exc, TRANSIENT)


def retry_on_io(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except BaseException as exc:
        return should_retry(exc)
    return False
