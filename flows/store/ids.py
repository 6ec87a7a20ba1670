"""Every id trapflow stores, made in one place.

Stable ids are hashes of what identifies the row, so re-running, re-importing or re-alerting
on the same warehouse never adds a second row. The recipes (fields, separators, digest,
length) must never change: a changed recipe duplicates every row written before it
(``tests/flows/store/test_ids.py`` pins each one). Random ids (runs, batches, review labels)
are made here too, so that every kind of id has one owner.

Plain functions, no Prefect, no I/O: the dashboard imports this module.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable

__all__ = [
    "alert_id",
    "anomaly_id",
    "camtrap_import_run_id",
    "camtrap_media_id",
    "camtrap_observation_id",
    "camtrap_package_id",
    "channel_key",
    "classification_id",
    "detection_id",
    "digest_id",
    "digest_item_id",
    "frame_label_id",
    "import_run_id",
    "listen_event_id",
    "media_id",
    "media_id_of_chunks",
    "media_label_id",
    "new_batch_id",
    "new_review_label_id",
    "new_review_shift_id",
    "new_run_id",
    "quarantine_id",
    "silence_id",
    "summary_id",
    "trust_row_id",
]

#: Between the fields of a stored row's key (a byte no path or label contains).
_SEP = "\x1f"


def _md5(*parts: str, sep: str = _SEP) -> str:
    return hashlib.md5(sep.join(parts).encode(), usedforsecurity=False).hexdigest()


# ------------------------------------------------------------------------------- raw.*


def media_id(data: bytes) -> str:
    """A photo's or clip's identity: the SHA-256 (hex) of its bytes."""
    return hashlib.sha256(data).hexdigest()


def media_id_of_chunks(chunks: Iterable[bytes]) -> tuple[str, int]:
    """:func:`media_id` and size of a file read in pieces (a clip is never all in memory)."""
    digest = hashlib.sha256()
    size = 0
    for block in chunks:
        digest.update(block)
        size += len(block)
    return digest.hexdigest(), size


def detection_id(media_id: str, model_id: str, index: int, frame_number: int | None = None) -> str:
    """One box: the ``index``-th box of model ``name@version`` on a photo (or on frame
    ``frame_number`` of a clip)."""
    if frame_number is None:
        return _md5(media_id, model_id, str(index))
    return _md5(media_id, model_id, str(frame_number), str(index))


def classification_id(detection_id: str, model: str, rank: int) -> str:
    """The ``rank``-th species label of a box by a classifier (trapflow's own heads pass
    ``name@version``; imported MegaDetector JSON passes the classifier's name)."""
    return _md5(detection_id, model, str(rank))


def frame_label_id(media_id: str, model_id: str, frame_number: int) -> str:
    """A behaviour head's label of one sampled frame of a clip (``model_id`` name@version)."""
    return _md5("frame_label", media_id, model_id, str(frame_number))


def camtrap_media_id(package: str, camtrap_media_id: str) -> str:
    """A media file an imported Camtrap DP package lists without its bytes: the SHA-256 (hex,
    like :func:`media_id`) of the package's identity (its ``id``, else its ``name``) and the
    package's ``mediaID``. Re-importing the package gives the same ids."""
    return hashlib.sha256(_SEP.join(("camtrapdp", package, camtrap_media_id)).encode()).hexdigest()


def media_label_id(media_id: str, source: str, label: str | None) -> str:
    """A human label that came with a photo or from a file (``source``: folder, xmp, csv,
    timelapse); a blank is ``None``. The same label from the same kind of source is one row."""
    return _md5("media_label", media_id, source, label or "")


def quarantine_id(source_uri: str, file_path: str, media_id: str | None, reason: str) -> str:
    """One problem with one file (its id is the same on every poll: stored once)."""
    return _md5(source_uri, file_path, media_id or "", str(reason))


def listen_event_id(source_uri: str, file_path: str, sequencer: str) -> str:
    """One notified write of one file (``listen.events``): S3's redelivery of the same event, or
    a file's repeated file-system events once it settled, are the same id."""
    return _md5("listen_event", source_uri, file_path, sequencer)


def new_run_id() -> str:
    """A run of the ingest flow (random)."""
    return uuid.uuid4().hex


def camtrap_import_run_id(package: str) -> str:
    """The ``trapflow import camtrapdp`` run of a package (the same package, the same run row)."""
    return f"camtrapdp-{_md5('camtrapdp_run', package)[:12]}"


def import_run_id() -> str:
    """A ``trapflow import`` run (random)."""
    return f"import-{uuid.uuid4().hex[:12]}"


def new_batch_id(run_id: str) -> str:
    """One batch of a run, as a lake names its Parquet files (random)."""
    return f"{run_id}-{uuid.uuid4().hex[:12]}"


# ------------------------------------------------------------------------------- review.*


def new_review_label_id() -> str:
    """One row of review.labels (append-only, so random: every review is a new row)."""
    return str(uuid.uuid4())


def new_review_shift_id() -> str:
    """One row of review.clock_shifts (an accepted clock shift; every accept is a new row)."""
    return str(uuid.uuid4())


# ------------------------------------------------------------------------------- alerts.*


def _alert_md5(*parts: object) -> str:
    return _md5(*(str(p) for p in parts), sep="|")


def alert_id(rule_name: str, site_id: str | None, media_id: str | None) -> str:
    """The alert a rule raised for one image at a site."""
    return _alert_md5(rule_name, "alert", site_id, media_id)


def summary_id(rule_name: str, anchor_id: str, run_id: str) -> str:
    """The summary of the hits that followed an alert (``anchor_id``) within its cooldown."""
    return _alert_md5(rule_name, "summary", anchor_id, run_id)


def anomaly_id(rule_name: str, site_id: str | None, label: str, day: object) -> str:
    """An anomaly rule's message for one label on one day at a site."""
    return _alert_md5(rule_name, "anomaly", site_id, label, day)


def silence_id(rule_name: str, site_id: str, camera_id: str, last_media_id: str) -> str:
    """A silent-camera rule's alert for one silence episode: the camera has been quiet since
    its photo ``last_media_id`` (a new photo ends the episode; the next silence is another)."""
    return _alert_md5(rule_name, "silent", site_id, camera_id, last_media_id)


def digest_id(channel: str, day: object) -> str:
    """The one daily digest of a channel for one (UTC) day."""
    return _alert_md5("digest", channel, day)


def digest_item_id(channel: str, alert_id: str) -> str:
    """One alert (or one image of a burst) collected into a channel's digest."""
    return _alert_md5("digest-item", channel, alert_id)


def trust_row_id(base: str, trust: str) -> str:
    """The outbox row of ``base`` for a second trust level (the first keeps ``base``)."""
    return _alert_md5(base, trust)


def channel_key(url: str) -> str:
    """An alert target as the warehouse stores it: 16 hex of the URL's SHA-256."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------- exports


def camtrap_observation_id(media_id: str, *parts: str) -> str:
    """A Camtrap DP media-level observation (``parts``: category and label, or 'blank')."""
    return _md5("media", media_id, *parts)[:16]


def camtrap_package_id(name: str) -> str:
    """A Camtrap DP package's id: a UUID5 of its name (the same name, the same id)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"trapflow:{name}"))
