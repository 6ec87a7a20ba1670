"""Where ``trapflow listen`` hears of new photos: an HTTP webhook, or a folder's file events.

- :func:`webhook`: a stdlib ``ThreadingHTTPServer`` taking S3 event JSON (MinIO's webhook
  target, SNS over HTTP, an SQS relay). It binds to ``listen_host`` (loopback unless told
  otherwise), refuses to start without ``listen_token``, and answers 401 to any request
  without ``Authorization: Bearer <token>`` (or HTTP Basic with the token as the password, as
  SNS sends it), compared in constant time. A request is answered 200 only once its events are
  stored in ``listen.events``.
- :class:`FolderWatcher`: watchdog's observer on a folder source; a file is notified once its
  size and mtime stayed the same for ``listen_settle_s`` (a copy still being written waits).

Plain code and threads, no Prefect.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from flows.alerts.redaction import redact
from flows.errors import UserError
from flows.pipeline.listen import Listener
from flows.pipeline.notifications import Notification, NotificationError, parse_notifications

__all__ = ["MAX_BODY", "FolderWatcher", "ListenConfigError", "webhook"]

log = logging.getLogger("trapflow.listen")

#: Largest request body taken (an S3 event is at most 64 KB; an SQS batch of ten, 640 KB).
MAX_BODY = 1024 * 1024
#: Shortest listen_token accepted.
MIN_TOKEN = 16
#: Seconds a connection may take to send its request.
REQUEST_TIMEOUT_S = 30.0


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True


class ListenConfigError(UserError, ValueError):
    """The webhook cannot start as configured (the message says what to set)."""


def _authorised(header: str | None, token: bytes) -> bool:
    """``Bearer <token>``, or ``Basic`` with the token as the password; constant time."""
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    given = value.strip().encode()
    if scheme.lower() == "basic":
        try:
            given = base64.b64decode(given, validate=True).partition(b":")[2]
        except (binascii.Error, ValueError):
            return False
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given, token)


def webhook(listener: Listener, host: str | None = None, port: int | None = None) -> Any:
    """A started webhook server for ``listener`` (``serve_forever`` on a daemon thread); stop
    it with ``shutdown()`` and ``server_close()``. ``server_address`` has the bound port."""
    settings = listener.settings
    if settings.listen_token is None:
        raise ListenConfigError(
            "the webhook needs a shared token: set TRAPFLOW_LISTEN_TOKEN (16+ random "
            "characters) and give senders 'Authorization: Bearer <token>'"
        )
    token = settings.listen_token.get_secret_value().encode()
    if len(token) < MIN_TOKEN:
        raise ListenConfigError(
            f"listen_token is too short ({len(token)} characters): use {MIN_TOKEN} or more "
            "random characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
        )

    class Handler(BaseHTTPRequestHandler):
        server_version = "trapflow-listen"
        sys_version = ""
        timeout = REQUEST_TIMEOUT_S  # a client that never finishes its request is let go

        def _reply(self, code: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(code)
            if code == 401:
                self.send_header("WWW-Authenticate", 'Bearer realm="trapflow"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _refused(self) -> bool:
            if _authorised(self.headers.get("Authorization"), token):
                return False
            self._reply(401, {"error": "missing or wrong token"})
            return True

        def do_POST(self) -> None:
            if self._refused():
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                self._reply(413, {"error": f"send a body of at most {MAX_BODY} bytes"})
                return
            try:
                notes = parse_notifications(self.rfile.read(length))
            except NotificationError as exc:
                log.warning("refused a request from %s: %s", self.client_address[0], exc)
                self._reply(400, {"error": str(exc)})
                return
            try:
                result = listener.accept(notes)
            except Exception as exc:  # the warehouse is busy: the sender retries later
                log.error("events not stored: %s", redact(f"{type(exc).__name__}: {exc}"))
                self._reply(503, {"error": "the events could not be stored; send them again"})
                return
            self._reply(200, {"events": len(notes), **result.as_dict()})

        def _other(self) -> None:
            if not self._refused():
                self._reply(405, {"error": "POST S3 event notification JSON"})

        do_GET = do_PUT = do_DELETE = do_HEAD = do_PATCH = _other

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.client_address[0], redact(format % args))

    host = settings.listen_host if host is None else host
    port = settings.listen_port if port is None else port
    try:
        server = _Server((host, port), Handler)
    except OSError as exc:
        raise ListenConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): pick another "
            "--port / TRAPFLOW_LISTEN_PORT, or stop what holds it"
        ) from None
    threading.Thread(target=server.serve_forever, name="listen-http", daemon=True).start()
    return server


class FolderWatcher(FileSystemEventHandler):
    """File events of a folder source -> notifications, once each file has settled."""

    def __init__(self, listener: Listener, settle_s: float | None = None) -> None:
        self.listener = listener
        self.root = listener.root
        self.settle_s = listener.settings.listen_settle_s if settle_s is None else settle_s
        self._seen: dict[str, tuple[int, int, float]] = {}  # path -> (size, mtime_ns, since)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._observer: Any = None
        self._thread: threading.Thread | None = None

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type in ("deleted", "opened", "closed_no_write"):
            return
        path = event.dest_path if event.event_type == "moved" else event.src_path
        path = os.fsdecode(path)
        if not path:
            return
        with self._lock:
            self._seen[path] = (-1, -1, time.monotonic())

    def _settled(self) -> list[Notification]:
        now = time.monotonic()
        ready: list[Notification] = []
        with self._lock:
            for path, (size, mtime_ns, since) in list(self._seen.items()):
                try:
                    st = os.stat(path)
                except OSError:  # gone (a temporary file renamed away)
                    del self._seen[path]
                    continue
                if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
                    self._seen[path] = (st.st_size, st.st_mtime_ns, now)
                    continue
                if now - since < self.settle_s:
                    continue
                del self._seen[path]
                rel = os.path.relpath(path, self.root).replace(os.sep, "/")
                ready.append(
                    Notification(
                        bucket=None, key=rel, event_name="fs:created",
                        event_time=datetime.fromtimestamp(st.st_mtime, UTC).replace(tzinfo=None),
                        sequencer=f"{st.st_mtime_ns:x}{st.st_size:012x}", size=st.st_size,
                    )
                )  # fmt: skip
        return ready

    def _poll(self) -> None:
        while not self._stop.wait(min(0.25, self.settle_s / 4)):
            ready = self._settled()
            if not ready:
                continue
            try:
                self.listener.accept(ready)
            except Exception as exc:  # the warehouse busy: try these files again shortly
                log.error("file events not stored yet: %s", redact(f"{type(exc).__name__}: {exc}"))
                with self._lock:
                    for note in ready:
                        self._seen.setdefault(
                            os.path.join(self.root, note.key), (-1, -1, time.monotonic())
                        )

    def start(self) -> FolderWatcher:
        self._observer = Observer()
        self._observer.schedule(self, self.root, recursive=True)
        self._observer.start()
        self._thread = threading.Thread(target=self._poll, name="listen-settle", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)
