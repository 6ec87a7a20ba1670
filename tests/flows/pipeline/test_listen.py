"""``trapflow listen``: S3 notifications over a real loopback webhook (a bucket on moto's S3
server), a folder's file events through watchdog, the durable queue and its dead letters in a
real warehouse file, and the alert of a notified photo at a real JSON endpoint."""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.pipeline.listen import Listener
from flows.pipeline.listen_sources import FolderWatcher, ListenConfigError, webhook
from flows.pipeline.notifications import Notification, NotificationError, parse_notifications
from flows.settings import load_settings
from flows.store import listen_queue
from tests._listen import HUMAN, S3_SECRET_KEY, RecordingIngest, traps_bucket
from tests._servers import json_sink
from tests.conftest import query

ELEPHANTS = "google__cameratrapai/test_data/african_elephants.jpg"
TOKEN = "Listen-Tok3n-9f8e7d6c5b4a"
SECRET_KEY = S3_SECRET_KEY


def _minio_event(key: str, sequencer: str, name: str = "s3:ObjectCreated:Put") -> dict[str, Any]:
    """A MinIO webhook body as MinIO sends it (key URL-encoded, '+' for a space)."""
    return {
        "EventName": name,
        "Key": f"traps/{key}",
        "Records": [{
            "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "",
            "eventTime": "2026-12-03T20:00:00.123Z", "eventName": name,
            "userIdentity": {"principalId": "minioadmin"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {"x-amz-request-id": "17A2E1F0A8B4C3D2"},
            "s3": {
                "s3SchemaVersion": "1.0", "configurationId": "Config",
                "bucket": {"name": "traps", "ownerIdentity": {"principalId": "minioadmin"},
                           "arn": "arn:aws:s3:::traps"},
                "object": {"key": key.replace(" ", "+"), "size": 1997439,
                           "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                           "contentType": "image/jpeg", "sequencer": sequencer},
            },
            "source": {"host": "127.0.0.1", "port": "", "userAgent": "MinIO (linux; amd64)"},
        }],
    }  # fmt: skip


def _post(port: int, body: Any, auth: str | None) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/minio/events", data=data)
    request.add_header("Content-Type", "application/json")
    if auth:
        request.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


# --------------------------------------------------------------------------- plain functions


def test_minio_sns_and_sqs_bodies_give_the_same_decoded_notification() -> None:
    minio = _minio_event("card/S1/cam 1/IMG 0001.JPG", "17A2E1F0A8B4C3D2")
    s3 = {"Records": minio["Records"]}
    sns = {"Type": "Notification", "MessageId": "x", "Message": json.dumps(s3)}
    sqs_batch = {"Records": [{"eventSource": "aws:sqs", "body": json.dumps(sns)}]}
    for body in (minio, sns, sqs_batch, {"Body": json.dumps(s3)}):
        (note,) = parse_notifications(json.dumps(body).encode())
        assert (note.bucket, note.key) == ("traps", "card/S1/cam 1/IMG 0001.JPG")
        assert note.event_name == "s3:ObjectCreated:Put" and note.sequencer == "17A2E1F0A8B4C3D2"
        assert note.event_time is not None and note.event_time.microsecond == 123000
    assert parse_notifications(b'{"Service": "Amazon S3", "Event": "s3:TestEvent"}') == []
    for bad in (b"not json", b"[]", b'{"Records": 3}', b'{"hello": 1}', b'{"Message": "x"}'):
        with pytest.raises(NotificationError):
            parse_notifications(bad)


def test_webhook_refuses_to_start_without_a_long_token(tmp_path: Path) -> None:
    base = {"source": str(tmp_path), "warehouse": tmp_path / "warehouse.duckdb", "listen_port": 0}
    for token in (None, "short"):
        listener = Listener(load_settings(**base, listen_token=token), ingest=RecordingIngest())
        with pytest.raises(ListenConfigError, match=r"TRAPFLOW_LISTEN_TOKEN|too short"):
            webhook(listener)


# --------------------------------------------------------------------------- real S3 + webhook


@pytest.fixture
def s3_bucket(camtrap_dir: Path) -> Iterator[Any]:
    """A bucket 'traps' on moto's S3 server on loopback, with a person photo and a text file;
    yields the server's request log."""
    with traps_bucket(camtrap_dir) as lines:
        yield lines


def test_minio_event_over_loopback_runs_the_key_and_delivers_the_alert(
    prefect_harness, trapflow_env, s3_bucket, tmp_path, monkeypatch, caplog, capfd
) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    caplog.set_level(logging.DEBUG)
    with json_sink() as sink:
        monkeypatch.setenv("TRAPFLOW_ALERT_URLS", f"json://127.0.0.1:{sink.port}/alerts")
        monkeypatch.setenv("TRAPFLOW_LISTEN_TOKEN", TOKEN)
        settings = load_settings(
            source="s3://traps/card", warehouse=warehouse, layout="{site}/{camera}/...",
            build_marts=False, listen_port=0,
        )  # fmt: skip
        ingest = RecordingIngest()
        listener = Listener(settings, ingest=ingest)
        server = webhook(listener)
        try:
            bound, port = server.server_address[:2]
            assert bound == "127.0.0.1"  # loopback unless told otherwise
            event = _minio_event("card/Serengeti/cam01/human shot.jpg", "17A2E1F0A8B4C3D2")
            assert _post(port, event, None)[0] == 401
            assert _post(port, event, "Bearer wrong-token-wrong-token")[0] == 401
            assert _post(port, event, f"Basic {TOKEN}")[0] == 401  # not base64 of user:token
            assert not warehouse.exists() or not query(
                warehouse, "select * from listen.events"
            )  # nothing refused was stored
            status, body = _post(port, event, f"Bearer {TOKEN}")
            assert (status, body["pending"]) == (200, 1)

            done = listener.drain()
            assert (done.done, done.runs) == (1, 1)
            assert ingest.calls == [["Serengeti/cam01/human shot.jpg"]]
            (message,) = sink.wait_for(1)
            assert message["title"] == "Person at site Serengeti, camera cam01"

            # a redelivery, an older write of the same key, a text file, a delete, a key
            # outside the source: stored, nothing run, nothing added
            basic = "Basic " + base64.b64encode(f"sns:{TOKEN}".encode()).decode()
            status, body = _post(port, event, basic)
            assert (status, body["duplicates"]) == (200, 1)
            older = _minio_event("card/Serengeti/cam01/human shot.jpg", "17A2E1F0A8B4C3D1")
            assert _post(port, {"Type": "Notification", "Message": json.dumps(older)},
                         f"Bearer {TOKEN}")[1]["stale"] == 1  # fmt: skip
            assert _post(port, _minio_event("card/Serengeti/cam01/notes.txt", "1A"),
                         f"Bearer {TOKEN}")[1]["skipped"] == 1  # fmt: skip
            gone = _minio_event("card/Serengeti/cam01/notes.txt", "1B", "s3:ObjectRemoved:Delete")
            assert _post(port, gone, f"Bearer {TOKEN}")[1]["ignored"] == 1
            assert _post(port, _minio_event("elsewhere/x.jpg", "1C"),
                         f"Bearer {TOKEN}")[1]["skipped"] == 1  # fmt: skip
            assert _post(port, b"{oops", f"Bearer {TOKEN}")[0] == 400
            assert listener.drain().runs == 0
            time.sleep(0.2)
            assert len(sink.received) == 1
        finally:
            server.shutdown()
            server.server_close()
    assert query(warehouse, "select count(*), min(file_path) from raw.media") == [
        (1, "Serengeti/cam01/human shot.jpg")
    ]
    events = query(
        warehouse,
        "select object_key, status, reason from listen.events order by received_at, event_name",
    )
    assert sorted(events) == sorted([
        ("card/Serengeti/cam01/human shot.jpg", "done", None),
        ("card/Serengeti/cam01/human shot.jpg", "stale", None),
        ("card/Serengeti/cam01/notes.txt", "skipped", "not_an_image"),
        ("card/Serengeti/cam01/notes.txt", "ignored", None),
        ("elsewhere/x.jpg", "skipped", "outside_source"),
    ])  # fmt: skip
    # the bucket was never listed: only the notified key was asked for
    assert any("/traps/card/Serengeti/cam01/human" in line for line in s3_bucket)
    assert not [line for line in s3_bucket if "list-type" in line or '"GET /traps?' in line]
    out, err = capfd.readouterr()
    logs = caplog.text + out + err
    assert "done Serengeti/cam01/human shot.jpg" in caplog.text  # the listener did log
    assert TOKEN not in logs and SECRET_KEY not in logs


# --------------------------------------------------------------------------- folder source


def test_a_failing_key_is_dead_lettered_after_three_tries_and_replayed(
    prefect_harness, trapflow_env, camtrap_dir, tmp_path
) -> None:
    folder = tmp_path / "cards"
    (folder / "S1" / "cam").mkdir(parents=True)
    warehouse = tmp_path / "warehouse.duckdb"
    settings = load_settings(
        source=str(folder), warehouse=warehouse, build_marts=False, listen_retry_s=0,
        layout="{site}/{camera}/...",
    )  # fmt: skip
    ingest = RecordingIngest()
    listener = Listener(settings, ingest=ingest)
    late = Notification(None, "S1/cam/late.jpg", "fs:created", None, "1f")
    assert listener.accept([late]).counts == {"pending": 1}
    for attempt in (1, 2, 3):
        result = listener.drain()
        assert (result.retrying, result.dead) == ((1, 0) if attempt < 3 else (0, 1))
    assert listener.drain().runs == 0 and ingest.calls == []  # dead: not tried again

    reopened = Listener(settings, ingest=ingest)  # a restart: the dead letter is in the file
    (dead,) = query(warehouse, "select file_path, attempts, reason, replayed_at "
                               "from listen.dead_letters")  # fmt: skip
    assert dead[:2] == ("S1/cam/late.jpg", 3) and dead[3] is None
    assert "FileNotFoundError" in dead[2]
    shutil.copy(camtrap_dir / ELEPHANTS, folder / "S1" / "cam" / "late.jpg")
    assert reopened.replay_dead() == 1
    assert reopened.drain().done == 1
    assert ingest.calls == [["S1/cam/late.jpg"]]
    assert query(warehouse, "select file_path, site_id, camera_id from raw.media") == [
        ("S1/cam/late.jpg", "S1", "cam")
    ]
    assert query(warehouse, "select status, attempts from listen.events") == [("done", 0)]
    assert query(warehouse, "select replayed_at is not null from listen.dead_letters") == [(True,)]
    assert reopened.replay_dead() == 0  # replayed once


def test_folder_watcher_picks_up_a_photo_copied_in_once_it_is_whole(
    prefect_harness, trapflow_env, camtrap_dir, tmp_path
) -> None:
    folder = tmp_path / "cards"
    (folder / "S2" / "cam").mkdir(parents=True)
    warehouse = tmp_path / "warehouse.duckdb"
    settings = load_settings(source=str(folder), warehouse=warehouse, build_marts=False)
    ingest = RecordingIngest()
    listener = Listener(settings, ingest=ingest)
    watcher = FolderWatcher(listener, settle_s=0.4).start()
    try:
        data = (camtrap_dir / HUMAN).read_bytes()
        with (folder / "S2" / "cam" / "human.jpg").open("wb") as fh:  # a slow copy
            for i in range(0, len(data), len(data) // 4 + 1):
                fh.write(data[i : i + len(data) // 4 + 1])
                fh.flush()
                time.sleep(0.15)
        (folder / "S2" / "cam" / "readme.md").write_text("not a photo")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with listener.store.writing() as con:
                counts = listen_queue.status_counts(con, listener.source_uri)
            if counts.get("pending") and counts.get("skipped"):
                break
            time.sleep(0.1)
        assert counts == {"pending": 1, "skipped": 1}
        assert listener.drain().done == 1
    finally:
        watcher.stop()
    assert ingest.calls == [["S2/cam/human.jpg"]]
    ((size, images),) = query(warehouse, "select max(file_size), count(*) from raw.media")
    assert (size, images) == (len(data), 1)  # read once it was complete


def test_cli_without_a_token_is_one_line_and_exit_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TRAPFLOW_"))}
    env.update(TRAPFLOW_HOME=str(tmp_path / "home"), PREFECT_HOME=str(tmp_path / "prefect"))
    trapflow = str(Path(sys.executable).parent / "trapflow")
    proc = subprocess.run(
        [trapflow, "listen", "--source", "s3://traps/card", "--warehouse", "warehouse.duckdb"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("error: ") and "TRAPFLOW_LISTEN_TOKEN" in lines[0]


def test_two_pending_writes_run_once_and_a_failed_run_is_retried_with_its_error_redacted(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    """No flow here: an ingest that records its calls, then one that fails with a credential
    in its message (the flow's own path is tested above)."""
    from types import SimpleNamespace

    folder = tmp_path / "cards"
    (folder / "S1").mkdir(parents=True)
    (folder / "S1" / "a.jpg").write_bytes(b"\xff\xd8 not decoded here")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    settings = load_settings(source=str(folder), warehouse=tmp_path / "warehouse.duckdb",
                             listen_retry_s=0, listen_max_attempts=2)  # fmt: skip
    calls: list[list[str]] = []

    def recording(**kw: Any) -> Any:
        calls.append(list(kw["paths"]))
        return SimpleNamespace(run_id="r1", missing={})

    listener = Listener(settings, ingest=recording)
    first = Notification(None, "S1/a.jpg", "fs:created", None, "0a")
    second = Notification(None, "S1/a.jpg", "fs:created", None, "0b")
    assert listener.accept([first, second]).counts == {"pending": 2}
    assert listener.drain().done == 1
    assert calls == [["S1/a.jpg"]]  # the latest write only
    with listener.store.writing() as con:
        assert listen_queue.status_counts(con, listener.source_uri) == {"done": 1, "stale": 1}

    def failing(**kw: Any) -> Any:
        raise OSError(f"could not reach s3://admin:{SECRET_KEY}@minio:9000 (key {SECRET_KEY})")

    caplog.set_level(logging.INFO, logger="trapflow.listen")
    listener.ingest = failing
    third = Notification(None, "S1/a.jpg", "fs:created", None, "0c")
    listener.accept([third])
    assert (listener.drain().retrying, listener.drain().dead) == (1, 1)
    ((error,),) = query(settings.warehouse_path, "select reason from listen.dead_letters")
    assert "could not reach" in error and SECRET_KEY not in error
    assert "dead letter S1/a.jpg" in caplog.text and SECRET_KEY not in caplog.text
