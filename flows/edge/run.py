"""One edge run: take in the card's new photos, write their manifest, upload what is queued.

:func:`run_edge` scans (unless the disk is full), queues, then drains the queue in order:
people, then animals and vehicles, then the manifests, each kind in the order it was queued.
A failed put leaves its row first in line: the next try (this run after ``retry_s``, or the
next run) resumes there, and a key the target already holds whole is never sent twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from flows.alerts.redaction import redact
from flows.edge.keys import KEPT_ON_CARD, MANIFEST_FORMAT, MANIFEST_PREFIX, UPLOADED, remote_key
from flows.edge.queue import EdgeQueue
from flows.edge.scan import EdgeDetector, list_card
from flows.edge.settings import EdgeSettings
from flows.edge.targets import Target, open_target
from flows.errors import UserError

log = logging.getLogger("trapflow.edge")


class DiskFull(UserError):
    """Too little free disk where the queue lives: no new photo is taken in (the queue stays)."""


@dataclass
class EdgeReport:
    scanned: int = 0  # photos hashed and judged this run
    queued: int = 0  # of them, queued for upload
    kept: int = 0  # of them, kept on the card
    uploaded: int = 0  # puts done this run (photos and manifests)
    uploaded_bytes: int = 0
    pending: int = 0  # still queued at the end
    missing: int = 0  # queued files gone from the card
    errors: list[str] = field(default_factory=list)
    disk_full: str | None = None  # the one line, when new work was refused

    def line(self) -> str:
        text = (
            f"edge: {self.scanned} new photos ({self.queued} to upload, {self.kept} kept on the "
            f"card); {self.uploaded} uploads done ({self.uploaded_bytes / 1e6:.1f} MB), "
            f"{self.pending} queued"
        )
        if self.missing:
            text += f", {self.missing} gone from the card before upload"
        return text


def free_mb(path: Path) -> float:
    path.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(path).free / 1e6


def check_disk(settings: EdgeSettings, queue: EdgeQueue | None = None) -> None:
    """Raise :class:`DiskFull` (one line) when the queue's disk is below ``min_free_mb``."""
    free = free_mb(settings.state_dir)
    if free < settings.min_free_mb:
        pending = queue.counts()["pending"] if queue is not None else 0
        raise DiskFull(
            f"disk full: {free:.0f} MB free in {settings.state_dir}, below min_free_mb "
            f"{settings.min_free_mb:.0f}; no new photos are taken in until space is freed "
            f"(the {pending} queued uploads are kept and still go up)"
        )


def _safe(exc: BaseException) -> str:
    """An error for the log: its type and first line, redacted (``flows.alerts.redaction``)."""
    text = redact((str(exc).splitlines() or [""])[0][:300])
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def scan_card(
    settings: EdgeSettings, queue: EdgeQueue, detector: EdgeDetector, report: EdgeReport
) -> None:
    """Judge every photo not seen before; a manifest every ``manifest_every`` photos and at
    the end. Stops with :class:`DiskFull` when the disk fills (what was recorded stays)."""
    since_manifest = 0
    for item in list_card(settings.card, settings.extensions):
        if queue.known(item.path, item.size, item.mtime_ns):
            continue
        check_disk(settings, queue)
        try:
            data = item.abs_path.read_bytes()
        except OSError as exc:
            report.errors.append(f"{item.path}: {_safe(exc)}")
            continue
        verdict = detector.judge(data)
        del data
        key = remote_key(item.path, verdict.media_id) if verdict.uploads else None
        copy_of = queue.key_of(verdict.media_id) if key else None
        if copy_of:  # the same bytes went up already: the central ingest keeps the first path
            key = copy_of
        queue.add_photo(
            path=item.path, size=item.size, mtime_ns=item.mtime_ns, media_id=verdict.media_id,
            captured_at=verdict.captured_at, scores=verdict.scores,
            decision="upload" if verdict.uploads else "kept", key=key,
            local_path=str(item.abs_path), kind=verdict.kind,
        )  # fmt: skip
        report.scanned += 1
        report.queued += verdict.uploads
        report.kept += not verdict.uploads
        since_manifest += 1
        if since_manifest >= settings.manifest_every:
            write_manifest(settings, queue, detector.model_ids)
            since_manifest = 0
    write_manifest(settings, queue, detector.model_ids)


def write_manifest(settings: EdgeSettings, queue: EdgeQueue, models: list[str]) -> str | None:
    """Write the photos no manifest lists yet to one JSON-lines file and queue it; its key
    holds its SHA-256, so the same manifest is one object. None when there is nothing new."""
    photos = queue.unlisted_photos()
    if not photos:
        return None
    written_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    header: dict[str, object] = {
        "format": MANIFEST_FORMAT, "device": settings.device, "card": str(settings.card),
        "models": models, "detection_thresholds": settings.detection_thresholds,
        "written_at": written_at,
    }  # fmt: skip
    lines = [json.dumps(header, sort_keys=True)]
    for p in photos:
        lines.append(
            json.dumps(
                {
                    "path": p["path"], "sha256": p["media_id"], "size": p["size"],
                    "mtime": datetime.fromtimestamp(p["mtime_ns"] / 1e9, UTC)
                    .replace(tzinfo=None).isoformat(),
                    "captured_at": p["captured_at"],
                    "scores": {k: round(v, 4) for k, v in sorted(p["scores"].items())},
                    "status": UPLOADED if p["decision"] == "upload" else KEPT_ON_CARD,
                    "key": p["key"],
                },
                sort_keys=True,
            )
        )  # fmt: skip
    body = ("\n".join(lines) + "\n").encode()
    digest = hashlib.sha256(body).hexdigest()
    device = re.sub(r"[^A-Za-z0-9._-]", "_", settings.device)
    name = f"{written_at[:10]}-{device}-{digest[:16]}.jsonl"
    local = settings.manifest_dir / name
    local.parent.mkdir(parents=True, exist_ok=True)
    part = local.with_suffix(".part")
    part.write_bytes(body)
    os.replace(part, local)
    key = f"{MANIFEST_PREFIX}/{name}"
    queue.add_manifest(key, str(local), len(body), [p["path"] for p in photos])
    return key


def drain(settings: EdgeSettings, queue: EdgeQueue, target: Target, report: EdgeReport) -> bool:
    """Upload in queue order until it is empty (True) or a put failed ``upload_attempts``
    times in a row (False: offline; the row stays first in line)."""
    failures = 0
    while (item := queue.next_upload()) is not None:
        local = Path(item.local_path)
        if not local.is_file():
            queue.mark_missing(item.seq)
            report.missing += 1
            log.warning("edge: %s left the card before it was uploaded", item.key)
            continue
        try:
            if target.size(item.key) != item.size:
                target.put(local, item.key)
                if target.size(item.key) != item.size:
                    raise OSError(f"{item.key}: the target holds another size after the put")
                report.uploaded_bytes += item.size
            queue.mark_done(item.seq)
            report.uploaded += 1
            failures = 0
        except Exception as exc:  # the network, the store, a share gone: retried in order
            reason = _safe(exc)
            queue.mark_failed(item.seq, reason)
            failures += 1
            log.warning("edge: upload of %s failed (%s)", item.key, reason)
            if failures >= settings.upload_attempts:
                report.errors.append(f"offline: {reason}")
                return False
            time.sleep(settings.retry_s)
    return True


def run_edge(
    settings: EdgeSettings, *, once: bool = True, target: Target | None = None
) -> EdgeReport:
    """Scan the card and upload; ``once`` False keeps doing so every ``interval_s``."""
    target = target or open_target(settings.upload)
    detector: EdgeDetector | None = None
    while True:
        report = EdgeReport()
        with EdgeQueue(settings.queue_path) as queue:
            try:
                check_disk(settings, queue)
                detector = detector or EdgeDetector(settings)
                scan_card(settings, queue, detector, report)
            except DiskFull as exc:
                report.disk_full = str(exc)
            except sqlite3.OperationalError as exc:
                if "full" not in str(exc).lower():
                    raise
                report.disk_full = (
                    f"disk full: the queue {settings.queue_path} cannot grow ({exc}); no new "
                    "photos are taken in until space is freed (what was queued is kept)"
                )
            drain(settings, queue, target, report)
            counts = queue.counts()
            report.pending, report.missing = counts["pending"], counts["missing"]
        if once:
            return report
        log.info(report.line())
        if report.disk_full:
            log.error("error: %s", report.disk_full)
        if report.pending and report.errors:
            log.warning("%s uploads stay queued (%s)", report.pending, report.errors[-1])
        time.sleep(settings.interval_s)
