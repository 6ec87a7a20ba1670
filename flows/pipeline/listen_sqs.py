"""An SQS queue as the third way ``trapflow listen`` hears of new photos (``--sqs URL``).

S3 (or MinIO, or SNS fanning out) sends its event notifications to an SQS queue; this
long-polls the queue (``ReceiveMessage``, up to ten messages, ``listen_sqs_wait_s`` seconds),
hands each body to the same parser and durable queue as the webhook
(:func:`flows.pipeline.notifications.parse_notifications` → ``Listener.accept`` →
``listen.events``), and deletes a message only once its events are stored. So:

- a message whose events could not be stored (the warehouse busy) stays on the queue and
  comes back after its visibility timeout;
- a redelivered message (SQS delivers at least once) or a duplicate event adds nothing: the
  event ids of ``listen.events`` are the same;
- a body that is no S3 event is never deleted: it is logged (message id and why, never the
  body) and left to the queue's redrive policy, which moves it to the queue's own dead-letter
  queue after ``maxReceiveCount`` receives (give the queue one, as docs/listen.md says);
  nothing is dropped unseen;
- an ingest that fails is retried and dead-lettered by trapflow's queue, as for the webhook
  (``listen_max_attempts``, ``listen.dead_letters``, ``--replay-dead``).

The client is botocore's, so region, credentials and endpoint come from the usual AWS
configuration (environment, ``~/.aws``, ``AWS_ENDPOINT_URL_SQS`` for MinIO-style setups or
ElasticMQ); no key is ever logged. Plain code and a thread, no Prefect.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import Any

from flows.alerts.redaction import redact
from flows.errors import UserError
from flows.pipeline.listen import Listener
from flows.pipeline.notifications import Notification, NotificationError, parse_notifications

__all__ = ["SqsConfigError", "SqsPoller", "SqsReceived"]

log = logging.getLogger("trapflow.listen")

#: https://sqs.<region>.amazonaws.com/<account>/<name> (the region is read from it).
_AWS_QUEUE = re.compile(r"^https://sqs[.-]([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/\d+/[\w-]+$")
#: Seconds a failed receive waits before the next (the queue or the network is away).
RECEIVE_BACKOFF_S = 5.0


class SqsConfigError(UserError, ValueError):
    """The queue cannot be polled as configured (the message says what to set)."""


@dataclass
class SqsReceived:
    """What one receive did."""

    messages: int = 0
    events: int = 0
    deleted: int = 0
    refused: int = 0  # bodies that are no S3 event: left for the queue's redrive policy
    kept: int = 0  # stored nowhere (the warehouse busy): they come back after the timeout


def _client(queue_url: str) -> Any:
    import botocore.session

    match = _AWS_QUEUE.match(queue_url)
    session = botocore.session.get_session()
    region = match.group(1) if match else session.get_config_variable("region") or "us-east-1"
    return session.create_client("sqs", region_name=region)


class SqsPoller:
    """Long-polls one queue into a :class:`Listener`; ``start()`` runs it on a thread."""

    def __init__(
        self,
        listener: Listener,
        queue_url: str,
        *,
        wait_s: int | None = None,
        visibility_s: int | None = None,
        client: Any = None,
    ) -> None:
        if not queue_url.startswith(("https://", "http://")):
            raise SqsConfigError(
                f"--sqs takes the queue's URL (https://sqs.<region>.amazonaws.com/<account>/"
                f"<name>), not {queue_url!r}: see `aws sqs get-queue-url --queue-name NAME`"
            )
        settings = listener.settings
        self.listener = listener
        self.queue_url = queue_url
        self.wait_s = settings.listen_sqs_wait_s if wait_s is None else wait_s
        self.visibility_s = (
            settings.listen_sqs_visibility_s if visibility_s is None else visibility_s
        )
        self.client = client if client is not None else _client(queue_url)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> None:
        """Fail with one clear line when the queue cannot be reached (wrong URL, region,
        credentials), before anything runs."""
        try:
            self.client.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        except Exception as exc:
            raise SqsConfigError(
                f"cannot read the queue {self.queue_url}: "
                f"{redact(f'{type(exc).__name__}: {exc}')} (check the URL, AWS_DEFAULT_REGION "
                "and the credentials; AWS_ENDPOINT_URL_SQS for a local queue)"
            ) from None

    def receive_once(self, wait_s: int | None = None) -> SqsReceived:
        """One ``ReceiveMessage``: store what it brought, delete what was stored."""
        reply = self.client.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10,
            WaitTimeSeconds=self.wait_s if wait_s is None else wait_s,
            VisibilityTimeout=self.visibility_s, MessageSystemAttributeNames=["All"],
        )  # fmt: skip
        messages: list[dict[str, Any]] = reply.get("Messages", [])
        out = SqsReceived(messages=len(messages))
        parsed: list[tuple[dict[str, Any], list[Notification]]] = []
        for message in messages:
            try:
                parsed.append((message, parse_notifications(message.get("Body", ""))))
            except NotificationError as exc:
                out.refused += 1
                received = message.get("Attributes", {}).get("ApproximateReceiveCount", "?")
                log.warning(
                    "SQS message %s is no S3 event (received %s times; left for the queue's "
                    "redrive policy): %s", message.get("MessageId"), received, exc,
                )  # fmt: skip
        if not parsed:
            return out
        notes = [note for _, found in parsed for note in found]
        try:
            if notes:
                self.listener.accept(notes)
        except Exception as exc:  # not stored: not deleted, so SQS delivers them again
            out.kept = len(parsed)
            log.error("SQS events not stored yet: %s", redact(f"{type(exc).__name__}: {exc}"))
            return out
        out.events = len(notes)
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, (m, _) in enumerate(parsed)
        ]
        reply = self.client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        out.deleted = len(reply.get("Successful", []))
        for failed in reply.get("Failed", []):  # stored already: a redelivery adds nothing
            log.warning("SQS message not deleted (it will come again): %s", failed.get("Code"))
        return out

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.receive_once()
            except Exception as exc:  # the network or the queue away: try again shortly
                log.error("SQS receive failed: %s", redact(f"{type(exc).__name__}: {exc}"))
                self._stop.wait(RECEIVE_BACKOFF_S)

    def start(self) -> SqsPoller:
        self._thread = threading.Thread(target=self._loop, name="listen-sqs", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops after the receive in flight (at most ``wait_s`` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.wait_s + 5)
