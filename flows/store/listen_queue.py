"""The durable queue of ``trapflow listen``: ``listen.events`` and ``listen.dead_letters``.

Every notification the listener is given becomes one row of ``listen.events`` before it is
acknowledged, so nothing is lost when the process stops; a redelivery (the same id,
``flows.store.ids.listen_event_id``) adds nothing, and an event older than one already received
for the same file (S3's ``sequencer``) is kept as ``stale`` and never run. An event that fails
``max_attempts`` times becomes ``dead`` with a row in ``listen.dead_letters``; replaying queues
it again. Both tables live in the warehouse file (``flows/store/schema/30_listen.sql``), so they
survive restarts.

Plain functions over a connection of the run's store (``Store.writing()``), no Prefect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb

from flows.pipeline.notifications import sequence

__all__ = [
    "DEAD",
    "DONE",
    "IGNORED",
    "PENDING",
    "SKIPPED",
    "STALE",
    "Enqueued",
    "QueuedEvent",
    "claim",
    "dead_letters",
    "enqueue",
    "fail",
    "finish",
    "replay_dead",
    "status_counts",
]

PENDING = "pending"  # waiting for its (next) attempt
DONE = "done"  # the ingest took it (ingested, a duplicate, or quarantined with a reason)
SKIPPED = "skipped"  # not a photo or clip, or outside the source: ``reason`` says which
STALE = "stale"  # older than an event already received for the same file
IGNORED = "ignored"  # not a write (a delete, a tag change): nothing to ingest
DEAD = "dead"  # failed max_attempts times: see listen.dead_letters


@dataclass(frozen=True)
class QueuedEvent:
    """One row of listen.events."""

    event_id: str
    source_uri: str
    bucket: str | None
    object_key: str
    file_path: str | None
    event_name: str
    event_time: datetime | None
    sequencer: str | None
    status: str = PENDING
    reason: str | None = None
    last_error: str | None = None
    attempts: int = 0


@dataclass
class Enqueued:
    """What became of the events of one request."""

    counts: dict[str, int] = field(default_factory=dict)  # new rows by status
    duplicates: int = 0

    def add(self, status: str) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1

    def as_dict(self) -> dict[str, int]:
        return {**self.counts, "duplicates": self.duplicates}


_COLUMNS = (
    "event_id, source_uri, bucket, object_key, file_path, event_name, event_time, sequencer, "
    "status, reason, attempts, last_error"
)


def _later_known(con: duckdb.DuckDBPyConnection, event: QueuedEvent) -> bool:
    """Whether an event of a later write of the same file was received already."""
    mine = sequence(event.sequencer)
    if mine is None or event.file_path is None:
        return False
    rows = con.execute(
        "select sequencer from listen.events where source_uri = ? and file_path = ? "
        "and sequencer is not null",
        [event.source_uri, event.file_path],
    ).fetchall()
    return any((seq := sequence(s)) is not None and seq > mine for (s,) in rows)


def enqueue(
    con: duckdb.DuckDBPyConnection, events: Sequence[QueuedEvent], now: datetime
) -> Enqueued:
    """Store the events (one transaction); a known id adds nothing, an out-of-order write of a
    file already notified later is stored as ``stale``."""
    result = Enqueued()
    con.execute("begin transaction")
    try:
        for event in events:
            if con.execute(
                "select 1 from listen.events where event_id = ?", [event.event_id]
            ).fetchone():
                result.duplicates += 1
                continue
            status = event.status
            if status == PENDING and _later_known(con, event):
                status = STALE
            con.execute(
                f"insert into listen.events ({_COLUMNS}, next_attempt_at, received_at, "
                "updated_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
                [event.event_id, event.source_uri, event.bucket, event.object_key,
                 event.file_path, event.event_name, event.event_time, event.sequencer, status,
                 event.reason, event.last_error, now, now, now],
            )  # fmt: skip
            result.add(status)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return result


def _event(row: tuple[Any, ...]) -> QueuedEvent:
    (event_id, source_uri, bucket, key, path, name, at, seq, status, reason, attempts,
     error) = row  # fmt: skip
    return QueuedEvent(
        event_id=event_id, source_uri=source_uri, bucket=bucket, object_key=key, file_path=path,
        event_name=name, event_time=at, sequencer=seq, status=status, reason=reason,
        last_error=error, attempts=attempts,
    )  # fmt: skip


def claim(
    con: duckdb.DuckDBPyConnection, source_uri: str, due: datetime, limit: int
) -> list[QueuedEvent]:
    """Pending events of this source due by ``due``, oldest first, one per file: of several
    pending writes of one file only the latest is run, the others become ``stale``."""
    rows = con.execute(
        f"select {_COLUMNS} from listen.events where source_uri = ? and status = ? "
        "and next_attempt_at <= ? order by received_at, event_id",
        [source_uri, PENDING, due],
    ).fetchall()
    latest: dict[str, QueuedEvent] = {}
    stale: list[str] = []
    for event in map(_event, rows):
        path = event.file_path or ""
        held = latest.get(path)
        if held is None:
            latest[path] = event
            continue
        if (sequence(event.sequencer) or -1) >= (sequence(held.sequencer) or -1):
            stale.append(held.event_id)
            latest[path] = event
        else:
            stale.append(event.event_id)
    if stale:
        con.execute(
            "update listen.events set status = ?, updated_at = ? where event_id in "
            "(select unnest(?::varchar[]))",
            [STALE, due, stale],
        )
    return list(latest.values())[:limit]


def finish(
    con: duckdb.DuckDBPyConnection, event_ids: Sequence[str], run_id: str, now: datetime
) -> None:
    """The ingest run ``run_id`` took these events."""
    if event_ids:
        con.execute(
            "update listen.events set status = ?, run_id = ?, last_error = null, "
            "updated_at = ? where event_id in (select unnest(?::varchar[]))",
            [DONE, run_id, now, list(event_ids)],
        )


def fail(
    con: duckdb.DuckDBPyConnection,
    event: QueuedEvent,
    error: str,
    now: datetime,
    *,
    max_attempts: int,
    retry_s: float,
) -> bool:
    """Count a failed attempt (``error`` already redacted); True when the event is now dead
    (its row in listen.dead_letters). The next attempt waits ``retry_s``, doubled each time."""
    ((attempts,),) = con.execute(
        "select attempts from listen.events where event_id = ?", [event.event_id]
    ).fetchall()
    attempts = int(attempts) + 1
    dead = attempts >= max_attempts
    delay = timedelta(seconds=retry_s * 2 ** (attempts - 1))
    con.execute(
        "update listen.events set attempts = ?, last_error = ?, status = ?, "
        "next_attempt_at = ?, updated_at = ? where event_id = ?",
        [attempts, error, DEAD if dead else PENDING, now + delay, now, event.event_id],
    )
    if dead:
        con.execute(
            "insert or replace into listen.dead_letters (event_id, source_uri, object_key, "
            "file_path, attempts, reason, dead_at, replayed_at) values (?, ?, ?, ?, ?, ?, ?, null)",
            [event.event_id, event.source_uri, event.object_key, event.file_path, attempts,
             error, now],
        )  # fmt: skip
    return dead


def replay_dead(con: duckdb.DuckDBPyConnection, source_uri: str, now: datetime) -> int:
    """Queue every dead letter of this source not replayed yet again (attempts from 0)."""
    ids = [
        event_id
        for (event_id,) in con.execute(
            "select event_id from listen.dead_letters where source_uri = ? and replayed_at is null",
            [source_uri],
        ).fetchall()
    ]
    if ids:
        con.execute(
            "update listen.events set status = ?, attempts = 0, next_attempt_at = ?, "
            "updated_at = ? where event_id in (select unnest(?::varchar[]))",
            [PENDING, now, now, ids],
        )
        con.execute(
            "update listen.dead_letters set replayed_at = ? "
            "where event_id in (select unnest(?::varchar[]))",
            [now, ids],
        )
    return len(ids)


def dead_letters(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every dead letter, newest first."""
    cursor = con.execute(
        "select event_id, source_uri, object_key, file_path, attempts, reason, dead_at, "
        "replayed_at from listen.dead_letters order by dead_at desc, event_id"
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def status_counts(con: duckdb.DuckDBPyConnection, source_uri: str) -> dict[str, int]:
    """Events of this source by status."""
    rows = con.execute(
        "select status, count(*) from listen.events where source_uri = ? group by status",
        [source_uri],
    ).fetchall()
    return {status: int(n) for status, n in rows}
