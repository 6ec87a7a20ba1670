"""``trapflow listen``: photos acted on as they land, from bucket notifications or file events.

A :class:`Listener` takes notifications (:mod:`flows.pipeline.notifications`; the webhook and
the folder watcher of :mod:`flows.pipeline.listen_sources` call :meth:`Listener.accept`), stores
each one in ``listen.events`` before it is acknowledged (:mod:`flows.store.listen_queue`), and
:meth:`Listener.drain` runs the ingest for exactly the notified keys, never listing the bucket:
the same intake -> inference -> load -> alerts path as ``trapflow run`` (the ``ingest`` flow
with ``paths``; passed in, so this module imports no Prefect).

- a redelivered event, or an older write of a file than one already notified, adds nothing;
- a key that is no photo or clip (by the extensions setting), or outside the source, is
  recorded as ``skipped`` with its quarantine reason and never read;
- a key that fails ``listen_max_attempts`` times goes to ``listen.dead_letters`` with its
  reason; :meth:`Listener.replay_dead` queues those again.

Plain functions and threads, no Prefect.
"""

from __future__ import annotations

import logging
import os
import posixpath
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from fsspec.implementations.local import LocalFileSystem

from flows.alerts.redaction import install_log_redaction, redact, register_secrets
from flows.pipeline.discovery import canonical_uri, open_source, stat_file
from flows.pipeline.notifications import Notification, is_created
from flows.pipeline.quarantine import QuarantineReason
from flows.settings import Settings
from flows.store import ids, listen_queue, open_store
from flows.store.listen_queue import Enqueued, QueuedEvent

__all__ = ["DrainResult", "IngestFn", "Listener", "register_listen_secrets"]

log = logging.getLogger("trapflow.listen")


class _Summary(Protocol):
    run_id: str
    missing: dict[str, str]


#: The ``ingest`` flow (``flows.ingest.ingest``), called with ``paths``.
IngestFn = Callable[..., Any]


@dataclass
class DrainResult:
    """What one :meth:`Listener.drain` did."""

    done: int = 0
    retrying: int = 0
    dead: int = 0
    runs: int = 0
    run_ids: list[str] = field(default_factory=list)


def register_listen_secrets(settings: Settings) -> None:
    """The listen token (from settings or a file) never reaches a log record; the credentials
    the environment holds are redacted anyway (``flows.alerts.redaction.SECRET_ENV``), and
    credentials inside a URL always are. Also installs the redaction of every record."""
    if settings.listen_token is not None:
        register_secrets([settings.listen_token.get_secret_value()])
    else:
        install_log_redaction()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Listener:
    """The queue of one source and the ingest that drains it."""

    def __init__(self, settings: Settings, ingest: IngestFn) -> None:
        self.settings = settings
        self.ingest = ingest
        self.store = open_store(settings)
        fs, self.root = open_source(settings.source)
        self.local = isinstance(fs, LocalFileSystem)
        self.source_uri = canonical_uri(settings.source)
        self.extensions = set(settings.extensions)
        self.wake = threading.Event()  # set when an event was queued
        register_listen_secrets(settings)

    # ------------------------------------------------------------------ taking events
    def _file_path(self, note: Notification) -> str | None:
        """The key relative to the source, or None when it is outside the source."""
        if note.bucket is None:  # a file event: relative to the folder already
            rel = note.key.lstrip("/")
        else:
            full = f"{note.bucket}/{note.key.lstrip('/')}"
            if self.local or not full.startswith(self.root + "/"):
                return None
            rel = full[len(self.root) + 1 :]
        if not rel or ".." in rel.split("/"):
            return None
        if self.local:
            real = os.path.realpath(os.path.join(self.root, rel))
            if not (real == self.root or real.startswith(self.root + os.sep)):
                return None
        return rel

    def event_row(self, note: Notification) -> QueuedEvent:
        """The listen.events row of a notification: pending, or why it is never run."""
        path = self._file_path(note)
        order = note.sequencer or note.etag or (note.event_time.isoformat() if note.event_time
                                                else "")  # fmt: skip
        where = path if path is not None else f"{note.bucket}/{note.key}"
        row = QueuedEvent(
            event_id=ids.listen_event_id(self.source_uri, where, order),
            source_uri=self.source_uri, bucket=note.bucket, object_key=note.key, file_path=path,
            event_name=note.event_name, event_time=note.event_time, sequencer=note.sequencer,
        )  # fmt: skip
        name = posixpath.basename(note.key)
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if not is_created(note.event_name):
            return _with(row, listen_queue.IGNORED, None, f"{note.event_name}: not a write")
        if path is None:
            reason = QuarantineReason.OUTSIDE_SOURCE
            problem = f"the key is not under the listened source {self.source_uri}"
            return _with(row, listen_queue.SKIPPED, reason, reason.message(problem))
        if ext not in self.extensions:
            reason = QuarantineReason.NOT_AN_IMAGE
            problem = f"'.{ext}' is not a photo or clip extension" if ext else "no extension"
            return _with(row, listen_queue.SKIPPED, reason, reason.message(problem))
        return row

    def accept(self, notes: Iterable[Notification]) -> Enqueued:
        """Store these notifications in listen.events (durably, before the sender is answered)
        and wake the drain."""
        rows = [self.event_row(n) for n in notes]
        with self.store.writing() as con:
            result = listen_queue.enqueue(con, rows, _now())
        for row in rows:
            if row.status != listen_queue.PENDING:
                log.info("%s %s: %s", row.status, row.object_key, row.last_error or "")
        if result.counts.get(listen_queue.PENDING):
            self.wake.set()
        return result

    # ------------------------------------------------------------------ running them
    def drain(self) -> DrainResult:
        """Run the ingest for every pending event that is due, in batches of ``batch_size``
        keys; failures count an attempt (dead after ``listen_max_attempts``)."""
        due = _now()
        result = DrainResult()
        while True:
            with self.store.writing() as con:
                events = listen_queue.claim(con, self.source_uri, due, self.settings.batch_size)
            if not events:
                return result
            self._run(events, result)

    def _run(self, events: Sequence[QueuedEvent], result: DrainResult) -> None:
        by_path = {e.file_path: e for e in events if e.file_path is not None}
        absent: dict[str, str] = {}
        for path in by_path:  # a key not there (yet): an attempt, without an ingest run
            try:
                stat_file(self.settings.source, path)
            except OSError as exc:
                absent[path] = redact(f"{type(exc).__name__}: {exc}")
        if absent:
            self._failed([by_path.pop(p) for p in absent], absent, result)
        if not by_path:
            return
        try:
            summary: _Summary = self.ingest(
                source=self.settings.source, warehouse=str(self.settings.warehouse_path),
                layout=self.settings.layout, build=self.settings.build_marts,
                lake=self.settings.lake, lake_data_path=self.settings.lake_data_path,
                batch_size=self.settings.batch_size,
                paths=list(by_path),
            )  # fmt: skip
        except Exception as exc:  # the whole run failed: every event counts an attempt
            error = redact(f"the ingest failed: {type(exc).__name__}: {exc}")
            self._failed(list(by_path.values()), {p: error for p in by_path}, result)
            return
        result.runs += 1
        result.run_ids.append(summary.run_id)
        missing = {p: redact(why) for p, why in summary.missing.items() if p in by_path}
        done = [e.event_id for p, e in by_path.items() if p not in missing]
        with self.store.writing() as con:
            listen_queue.finish(con, done, summary.run_id, _now())
        result.done += len(done)
        for path in by_path:
            if path not in missing:
                log.info("done %s (run %s)", path, summary.run_id)
        self._failed([by_path[p] for p in missing], missing, result)

    def _failed(
        self, events: Sequence[QueuedEvent], errors: dict[str, str], result: DrainResult
    ) -> None:
        with self.store.writing() as con:
            for event in events:
                error = errors[event.file_path or ""]
                dead = listen_queue.fail(
                    con, event, error, _now(), max_attempts=self.settings.listen_max_attempts,
                    retry_s=self.settings.listen_retry_s,
                )  # fmt: skip
                if dead:
                    result.dead += 1
                    log.warning("dead letter %s: %s", event.object_key, error)
                else:
                    result.retrying += 1
                    log.warning("retrying %s later: %s", event.object_key, error)

    def replay_dead(self) -> int:
        """Queue the dead letters of this source again; returns how many."""
        with self.store.writing() as con:
            count = listen_queue.replay_dead(con, self.source_uri, _now())
        if count:
            self.wake.set()
        return count

    def run_until(self, stop: threading.Event, poll_s: float | None = None) -> None:
        """Drain whenever an event is queued, and every ``poll_s`` for retries (default:
        ``listen_retry_s``, 1 to 30 s; the warehouse is not opened in between), until ``stop``."""
        if poll_s is None:
            poll_s = max(1.0, min(self.settings.listen_retry_s, 30.0))
        while not stop.is_set():
            self.wake.wait(poll_s)
            self.wake.clear()
            if stop.is_set():
                return
            try:
                self.drain()
            except Exception as exc:  # the warehouse was busy or gone: the events stay queued
                log.error("events stay queued: %s", redact(f"{type(exc).__name__}: {exc}"))


def _with(row: QueuedEvent, status: str, reason: QuarantineReason | None, why: str) -> QueuedEvent:
    return QueuedEvent(
        event_id=row.event_id, source_uri=row.source_uri, bucket=row.bucket,
        object_key=row.object_key, file_path=row.file_path, event_name=row.event_name,
        event_time=row.event_time, sequencer=row.sequencer, status=status,
        reason=str(reason) if reason else None, last_error=why,
    )  # fmt: skip
