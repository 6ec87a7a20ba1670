"""``trapflow listen``: ingest photos as they land, from bucket notifications or file events."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated, Any

import typer

from flows.cli._app import (
    LakeDataOpt,
    LakeOpt,
    LayoutOpt,
    SourceOpt,
    WarehouseOpt,
    app,
    console,
    fail_from,
    user_errors,
)
from flows.cli._preflight import check_run
from flows.cli._server import start_temporary_server
from flows.settings import load_settings


@app.command()
def listen(
    source: SourceOpt = None,
    warehouse: WarehouseOpt = None,
    layout: LayoutOpt = None,
    host: Annotated[
        str | None, typer.Option(help="Webhook address (default 127.0.0.1: loopback only).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Webhook port (default 8790).")] = None,
    marts: Annotated[
        bool, typer.Option("--marts/--no-marts", help="dbt build after each batch of events.")
    ] = False,
    replay_dead: Annotated[
        bool,
        typer.Option("--replay-dead", help="Queue the dead letters again, run them, and exit."),
    ] = False,
    batch_size: Annotated[int | None, typer.Option(help="Keys per ingest run.")] = None,
    lake: LakeOpt = None,
    lake_data_path: LakeDataOpt = None,
    sqs: Annotated[
        str | None,
        typer.Option(help="Long-poll this SQS queue (its URL) for the bucket's S3 events."),
    ] = None,
) -> None:
    """Run the ingest for each photo as it lands: S3 event notifications (MinIO's webhook,
    SNS) POSTed to a bucket source's webhook, an SQS queue (--sqs), or a folder source's file
    events. Only the notified keys are read; the bucket is never listed (docs/listen.md)."""
    settings = load_settings(
        source=source, warehouse=warehouse, layout=layout, build_marts=marts,
        batch_size=batch_size, lake=lake, lake_data_path=lake_data_path, listen_host=host,
        listen_port=port, listen_sqs_queue=sqs,
    )  # fmt: skip
    check_run(settings)
    _log_to_stderr()
    from flows.pipeline.listen import Listener
    from flows.pipeline.listen_sources import FolderWatcher, webhook
    from flows.pipeline.listen_sqs import SqsConfigError, SqsPoller

    try:
        listener = Listener(settings, ingest=_ingest())
        if replay_dead:
            start_temporary_server()
            queued = listener.replay_dead()
            done = listener.drain()
            console.print(
                f"{queued} dead letters queued again: {done.done} done, {done.retrying} to "
                f"retry, {done.dead} dead again."
            )
            return
        server: Any = None
        watcher: FolderWatcher | None = None
        poller: SqsPoller | None = None
        queue = settings.listen_sqs_queue
        if queue and listener.local:
            raise SqsConfigError(
                f"--sqs is for a bucket source (s3://...), not the folder {settings.source}: "
                "a folder's own file events are used without it"
            )
        if queue:
            poller = SqsPoller(listener, queue)
            poller.check()
            poller.start()
            where = f"S3 event notifications from the SQS queue {queue}"
        elif listener.local:
            watcher = FolderWatcher(listener).start()
            where = f"file events under {listener.root}"
        else:
            server = webhook(listener)
            bound_host, bound_port = server.server_address[:2]
            where = f"S3 event notifications on http://{bound_host}:{bound_port}/"
        start_temporary_server()
        console.print(f"Listening for {where} ({settings.source}); Ctrl-C stops it.")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        listener.wake.set()  # events queued before a restart are run first
        try:
            listener.run_until(stop)
        except KeyboardInterrupt:
            pass
        finally:
            if watcher is not None:
                watcher.stop()
            if poller is not None:
                poller.stop()
            if server is not None:
                server.shutdown()
                server.server_close()
    except user_errors() as exc:
        raise fail_from(exc) from None


def _log_to_stderr() -> None:
    """The listener's own lines (events skipped, done, retried, dead) on stderr, redacted as
    every record is (``flows.alerts.redaction``)."""
    log = logging.getLogger("trapflow.listen")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s | %(levelname)-7s | listen - %(message)s", "%H:%M:%S")
        )
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def _ingest() -> Any:
    from flows.ingest import ingest

    return ingest
