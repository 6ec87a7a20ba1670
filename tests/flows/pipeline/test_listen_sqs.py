"""``trapflow listen --sqs``: S3 event notifications long-polled from a real SQS queue (moto's
server on loopback, the same one as the bucket), stored in a real warehouse file, run by the
real ingest flow; the bucket is never listed, and a message is deleted only once stored."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.pipeline.listen import Listener
from flows.pipeline.listen_sqs import SqsConfigError, SqsPoller
from flows.settings import load_settings
from tests._listen import HUMAN_KEY, S3_SECRET_KEY, RecordingIngest, traps_bucket
from tests._servers import json_sink
from tests.conftest import query

SECRET_KEY = S3_SECRET_KEY
KEY = HUMAN_KEY


def _s3_event(key: str, sequencer: str, name: str = "ObjectCreated:Put") -> dict[str, Any]:
    """An S3 event notification as AWS S3 puts it on a queue (key URL-encoded)."""
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-12-04T18:00:00.000Z", "eventName": name,
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "traps-to-sqs",
               "bucket": {"name": "traps", "arn": "arn:aws:s3:::traps"},
               "object": {"key": key.replace(" ", "+"), "size": 1997439,
                          "eTag": "0123456789abcdef", "sequencer": sequencer}},
    }]}  # fmt: skip


class _Lines(logging.Handler):
    """The messages of one logger, from the moment it is made (a set-up step before it,
    in the same test, may drop the handlers already there: caplog missed them)."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.INFO)
        self.logger, self.lines = logging.getLogger(name), []  # type: list[str]
        self.logger.addHandler(self)
        self.saved, self.logger.level = self.logger.level, logging.INFO

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def close(self) -> None:
        self.logger.removeHandler(self)
        self.logger.level = self.saved
        super().close()


@pytest.fixture
def bucket_and_queue(camtrap_dir: Path) -> Iterator[tuple[Any, str, list[str]]]:
    """moto on loopback: bucket 'traps' with a person photo and a text file, and a queue;
    yields the SQS client, the queue URL and the server's request log."""
    import botocore.session

    with traps_bucket(camtrap_dir) as lines:
        sqs = botocore.session.get_session().create_client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="traps-events")["QueueUrl"]
        yield sqs, url, lines


def _on_queue(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def test_sqs_messages_run_exactly_the_notified_keys_and_are_deleted_once_stored(
    prefect_harness, trapflow_env, bucket_and_queue, tmp_path, monkeypatch, capfd
) -> None:
    sqs, url, server_log = bucket_and_queue
    warehouse = tmp_path / "warehouse.duckdb"
    event = _s3_event(KEY, "0061A1B2C3D4E5F601")
    sns = {"Type": "Notification", "MessageId": "m-1", "Message": json.dumps(event)}
    for body in (
        event,  # S3 -> SQS
        sns,  # S3 -> SNS -> SQS (raw delivery off): the same event again
        _s3_event(KEY, "0061A1B2C3D4E5F500"),  # an older write of the same key
        _s3_event("card/Serengeti/cam01/notes.txt", "0061A1B2C3D4E5F7"),
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "traps"},
    ):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    sqs.send_message(QueueUrl=url, MessageBody="{not an event")
    with json_sink() as sink:
        monkeypatch.setenv("TRAPFLOW_ALERT_URLS", f"json://127.0.0.1:{sink.port}/alerts")
        settings = load_settings(
            source="s3://traps/card", warehouse=warehouse, layout="{site}/{camera}/...",
            build_marts=False, listen_sqs_queue=url, listen_sqs_visibility_s=1,
        )  # fmt: skip
        ingest = RecordingIngest()
        listener = Listener(settings, ingest=ingest)
        poller = SqsPoller(listener, url, wait_s=0)
        poller.check()
        listen_log = _Lines("trapflow.listen")
        got = [poller.receive_once() for _ in range(3)]
        assert sum(r.messages for r in got) == 6
        assert sum(r.deleted for r in got) == 5 and sum(r.refused for r in got) == 1
        assert sum(r.events for r in got) == 4  # the test event carries none

        done = listener.drain()
        assert (done.done, done.runs) == (1, 1)
        assert ingest.calls == [["Serengeti/cam01/human shot.jpg"]]
        (message,) = sink.wait_for(1)
        assert message["title"] == "Person at site Serengeti, camera cam01"

        # the same message delivered again (SQS is at-least-once) adds nothing
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))
        time.sleep(1.2)  # the refused body is visible again too
        again = poller.receive_once()
        assert (again.deleted, again.refused) == (1, 1)
        assert listener.drain().runs == 0
    # only the body that is no S3 event is left, for the queue's redrive policy
    assert _on_queue(sqs, url) == 1
    assert query(warehouse, "select count(*), min(file_path) from raw.media") == [
        (1, "Serengeti/cam01/human shot.jpg")
    ]
    assert sorted(query(warehouse, "select object_key, status, reason from listen.events")) == [
        ("card/Serengeti/cam01/human shot.jpg", "done", None),
        ("card/Serengeti/cam01/human shot.jpg", "stale", None),
        ("card/Serengeti/cam01/notes.txt", "skipped", "not_an_image"),
    ]
    # never a listing of the bucket: only the notified key was read
    assert any("/traps/card/Serengeti/cam01/human" in line for line in server_log)
    assert not [line for line in server_log if "list-type" in line or '"GET /traps?' in line]
    out, err = capfd.readouterr()
    listen_log.close()
    logs = "\n".join(listen_log.lines) + out + err
    assert any("is no S3 event" in line for line in listen_log.lines), listen_log.lines
    assert "done Serengeti/cam01/human shot.jpg" in listen_log.lines[-1] or any(
        line.startswith("done Serengeti/cam01/human shot.jpg") for line in listen_log.lines
    )
    assert "{not an event" not in logs
    assert SECRET_KEY not in logs


def test_messages_not_stored_stay_on_the_queue_and_come_again(
    prefect_harness, trapflow_env, bucket_and_queue, tmp_path
) -> None:
    sqs, url, _ = bucket_and_queue
    warehouse = tmp_path / "warehouse.duckdb"
    settings = load_settings(
        source="s3://traps/card", warehouse=warehouse, layout="{site}/{camera}/...",
        build_marts=False,
    )  # fmt: skip
    listener = Listener(settings, ingest=RecordingIngest())
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(_s3_event(KEY, "0A")))
    poller = SqsPoller(listener, url, wait_s=0, visibility_s=1)
    real_accept = listener.accept

    def busy(notes: Any) -> Any:
        raise RuntimeError("IO Error: Could not set lock on file: warehouse busy")

    listener.accept = busy  # type: ignore[method-assign]
    first = poller.receive_once()
    assert (first.messages, first.kept, first.deleted) == (1, 1, 0)
    assert _on_queue(sqs, url) == 1
    listener.accept = real_accept  # type: ignore[method-assign]
    time.sleep(1.2)
    second = poller.receive_once()
    assert (second.messages, second.deleted) == (1, 1)
    assert _on_queue(sqs, url) == 0
    assert query(warehouse, "select status from listen.events") == [("pending",)]


def test_a_wrong_queue_is_one_clear_line(trapflow_env, bucket_and_queue, tmp_path) -> None:
    _, url, _ = bucket_and_queue
    settings = load_settings(source="s3://traps/card", warehouse=tmp_path / "w.duckdb")
    listener = Listener(settings, ingest=RecordingIngest())
    with pytest.raises(SqsConfigError, match="takes the queue's URL"):
        SqsPoller(listener, "traps-events")
    with pytest.raises(SqsConfigError, match="cannot read the queue") as caught:
        SqsPoller(listener, url.replace("traps-events", "no-such-queue")).check()
    assert SECRET_KEY not in str(caught.value)


def test_cli_listen_sqs_takes_a_photo_and_stops_on_sigterm(
    trapflow_env, bucket_and_queue, prefect_api, tmp_path
) -> None:
    sqs, url, _ = bucket_and_queue
    warehouse = tmp_path / "warehouse.duckdb"
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_HOME": str(tmp_path / "p"),
           "TRAPFLOW_LISTEN_SQS_WAIT_S": "1", "PYTHONUNBUFFERED": "1"}  # fmt: skip
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(_s3_event(KEY, "0B")))
    log = tmp_path / "listen.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "trapflow"), "listen", "--source",
             "s3://traps/card", "--warehouse", str(warehouse), "--layout", "{site}/{camera}/...",
             "--sqs", url],
            stdout=sink, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                if "done Serengeti/cam01/human shot.jpg" in log.read_text():
                    break
                time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    out = log.read_text()
    assert proc.returncode in (0, -15), out  # stopped by SIGTERM, not crashed
    assert _on_queue(sqs, url) == 0  # the message was deleted once stored
    assert "from the SQS queue" in out, out
    assert "done Serengeti/cam01/human shot.jpg" in out, out
    assert SECRET_KEY not in out
    assert query(warehouse, "select file_path from raw.media") == [
        ("Serengeti/cam01/human shot.jpg",)
    ]
