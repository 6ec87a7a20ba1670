"""Bucket notifications as trapflow reads them: S3 event JSON, from MinIO's webhook, SNS or SQS.

One shape in, a list of :class:`Notification` out: ``Records[].s3.bucket.name``,
``s3.object.key`` (URL-encoded, ``+`` for a space), ``eventName``, ``eventTime`` and
``s3.object.sequencer``. An SNS envelope carries the event as a JSON string in ``Message``; an
SQS message (or a Lambda batch of them) carries it in ``body``/``Body``. S3's test event
(``s3:TestEvent``) and an envelope without records give no notification.

Plain functions, no Prefect, no I/O. ``trapflow listen`` (``flows/pipeline/listen.py``) turns
them into rows of ``listen.events`` (``flows/store/listen_queue.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from flows.errors import UserError

__all__ = ["Notification", "NotificationError", "is_created", "parse_notifications", "sequence"]

#: How deep SNS-in-SQS-in-a-batch envelopes may nest before the body is refused.
_MAX_DEPTH = 4


class NotificationError(UserError, ValueError):
    """A body that is not an S3 event (the message says what was expected)."""


@dataclass(frozen=True)
class Notification:
    """One object event: which bucket and key, what happened, and when (S3's order)."""

    bucket: str | None  # None: a file-system event of a folder source
    key: str  # decoded; from the bucket's root (or the folder's, for a folder source)
    event_name: str  # 's3:ObjectCreated:Put' (MinIO) or 'ObjectCreated:Put' (AWS)
    event_time: datetime | None  # UTC, naive
    sequencer: str | None  # hex; later events of one key have greater values
    etag: str | None = None
    size: int | None = None


def is_created(event_name: str) -> bool:
    """Whether the event wrote an object (Put, Post, Copy, CompleteMultipartUpload, a file)."""
    name = event_name.removeprefix("s3:")
    return name.startswith("ObjectCreated") or name == "fs:created"


def sequence(sequencer: str | None) -> int | None:
    """The sequencer as a number: S3 compares them as hex after left-padding the shorter with
    zeros, which is comparing their values. Unreadable or missing: None."""
    if not sequencer:
        return None
    try:
        return int(sequencer, 16)
    except ValueError:
        return None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _record(record: dict[str, Any]) -> Notification | None:
    s3 = record.get("s3")
    if not isinstance(s3, dict):
        return None
    bucket = (s3.get("bucket") or {}).get("name")
    obj = s3.get("object") or {}
    key = obj.get("key")
    if not isinstance(bucket, str) or not isinstance(key, str) or not key:
        raise NotificationError(
            "an S3 event record without s3.bucket.name or s3.object.key: send S3 event "
            "notification JSON (Records[].s3)"
        )
    raw_size: Any = obj.get("size")
    size = int(str(raw_size)) if str(raw_size).isdigit() else None
    return Notification(
        bucket=bucket,
        key=unquote_plus(key),
        event_name=str(record.get("eventName") or ""),
        event_time=_time(record.get("eventTime")),
        sequencer=str(obj["sequencer"]) if obj.get("sequencer") else None,
        etag=str(obj["eTag"]) if obj.get("eTag") else None,
        size=size,
    )


def _walk(doc: Any, depth: int) -> list[Notification]:
    if depth > _MAX_DEPTH:
        raise NotificationError("the event is wrapped too deeply (SNS/SQS envelopes nest twice)")
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except json.JSONDecodeError:
            raise NotificationError("an envelope's message is not JSON") from None
        return _walk(doc, depth + 1)
    if not isinstance(doc, dict):
        raise NotificationError("the body is not a JSON object: send S3 event notification JSON")
    if "Records" in doc:
        records = doc["Records"]
        if not isinstance(records, list):
            raise NotificationError("Records is not a list: send S3 event notification JSON")
        found: list[Notification] = []
        for record in records:
            if not isinstance(record, dict):
                continue
            if "s3" in record:
                one = _record(record)
                if one is not None:
                    found.append(one)
            elif "body" in record or "Sns" in record:  # a Lambda batch: SQS bodies, SNS records
                inner = record.get("body", (record.get("Sns") or {}).get("Message"))
                found += _walk(inner, depth + 1)
        return found
    if doc.get("Type") in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        return []  # SNS: confirm the subscription with `aws sns confirm-subscription`
    for envelope in ("Message", "Body", "body"):  # SNS, SQS (ReceiveMessage), SQS (Lambda)
        if envelope in doc:
            return _walk(doc[envelope], depth + 1)
    if doc.get("Event") == "s3:TestEvent":
        return []
    raise NotificationError(
        "no Records in the body: send S3 event notification JSON (MinIO webhook, SNS or SQS)"
    )


def parse_notifications(body: bytes | str) -> list[Notification]:
    """The object events in a request body; :class:`NotificationError` when it is no S3 event."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        doc = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise NotificationError("the body is not JSON: send S3 event notification JSON") from None
    return _walk(doc, 0)
