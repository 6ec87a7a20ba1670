"""Batch intake: read and hash every file of a batch and keep what is new.

A file's identity is the SHA-256 of its bytes. Whether it is a clip comes from its content:
a known clip type (``models_ml.video.VIDEO_EXTENSIONS``) is hashed streaming without being
read whole; any other file is read, and when its first bytes are a clip container's (ASF,
Matroska, MP4, AVI, ...) it goes the clip way too, whatever it is called.

Plain functions, no Prefect.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flows.pipeline import video as _video
from flows.pipeline.context import BatchContext
from flows.pipeline.discovery import Listing, SourceFile, read_file
from flows.pipeline.labels import file_labels, label_rows
from flows.pipeline.quarantine import SKIPPED, QuarantineReason
from flows.store import ids, rows
from models_ml._imageops import sniff_clip

__all__ = ["Batch", "BatchStats", "intake", "is_clip", "outside_link_rows"]

#: Bytes of a file's head that say whether it is a clip (what :func:`sniff_clip` reads).
CLIP_HEAD = 16


@dataclass
class BatchStats:
    files: int = 0
    images: int = 0
    duplicates: int = 0
    detections: int = 0
    quarantined: int = 0  # skipped files
    warnings: int = 0  # processed, with a recorded problem
    classifications: int = 0
    read_s: float = 0.0
    detect_s: float = 0.0
    classify_s: float = 0.0
    load_s: float = 0.0
    by_reason: dict[str, int] = field(default_factory=dict)

    def add(self, other: BatchStats) -> None:
        for name in (
            "files", "images", "duplicates", "detections", "quarantined", "warnings",
            "classifications",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("read_s", "detect_s", "classify_s", "load_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, n in other.by_reason.items():
            self.by_reason[reason] = self.by_reason.get(reason, 0) + n


def is_clip(path: str, head: bytes = b"") -> bool:
    """Whether a file is a video clip: by the one table of clip types, or by its first bytes."""
    return _video.is_video(path) or sniff_clip(head[:CLIP_HEAD]) is not None


#: (file, media_id or None, reason, error, action) -> None
QuarantineFile = Callable[[SourceFile, str | None, QuarantineReason, str, str], None]


class Batch:
    """One batch on its way through the pipeline: what it read, what it found, what it loads."""

    def __init__(self, ctx: BatchContext, files: list[SourceFile]) -> None:
        self.ctx = ctx
        self.stats = BatchStats(files=len(files))
        self.media: list[dict[str, Any]] = []
        self.detections: list[dict[str, Any]] = []
        self.classifications: list[dict[str, Any]] = []
        self.media_labels: list[dict[str, Any]] = []  # human labels the files carry
        self.frame_labels: list[dict[str, Any]] = []  # behaviour heads' labels of clip frames
        self.crop_embeddings: list[dict[str, Any]] = []  # what a species head classified
        self.quarantine: list[dict[str, Any]] = []
        self.file_rows: list[dict[str, Any]] = []
        self.data: dict[str, tuple[SourceFile, bytes]] = {}  # new images' bytes, until decoded
        self.new_ids: list[str] = []
        self.clips: dict[str, SourceFile] = {}
        self.new_clips: list[str] = []

    def add_media(
        self,
        media: dict[str, Any],
        detections: list[dict[str, Any]],
        classifications: list[dict[str, Any]],
    ) -> None:
        """One ingested image or clip: its media row, boxes and species labels."""
        self.media.append(media)
        self.detections.extend(detections)
        self.classifications.extend(classifications)
        self.stats.images += 1
        self.stats.detections += len(detections)

    def quarantine_file(
        self,
        file: SourceFile,
        media_id: str | None,
        reason: QuarantineReason,
        error: str,
        action: str,
    ) -> None:
        self.quarantine.append(
            rows.quarantine_row(
                source_uri=self.ctx.source_uri, file_path=file.path, reason=reason, error=error,
                run_id=self.ctx.run_id, media_id=media_id, file_size=file.size, action=action,
            ).as_row()
        )  # fmt: skip
        self.stats.by_reason[str(reason)] = self.stats.by_reason.get(str(reason), 0) + 1
        if action == SKIPPED:
            self.stats.quarantined += 1
        else:  # PROCESSED: used, with the problem recorded
            self.stats.warnings += 1

    def file_row(self, file: SourceFile, media_id: str | None, status: str) -> None:
        """What became of a listed file (ingested, duplicate, quarantined)."""
        self.file_rows.append(
            rows.media_file_row(
                source_uri=self.ctx.source_uri, file_path=file.path, file_size=file.size,
                file_modified_at=file.modified_at, media_id=media_id, status=status,
                run_id=self.ctx.run_id,
            ).as_row()
        )  # fmt: skip


def _unreadable(b: Batch, file: SourceFile, exc: OSError) -> None:
    b.quarantine_file(
        file, None, QuarantineReason.UNREADABLE,
        QuarantineReason.UNREADABLE.message(f"could not read the file ({exc})"), SKIPPED,
    )  # fmt: skip


def _empty(b: Batch, file: SourceFile) -> None:
    b.quarantine_file(
        file, None, QuarantineReason.EMPTY_FILE,
        QuarantineReason.EMPTY_FILE.message(
            "the file is 0 bytes: the copy from the card failed or was interrupted"
        ),
        SKIPPED,
    )  # fmt: skip
    b.file_row(file, None, "quarantined")


def _hash_clip(b: Batch, file: SourceFile, hashed: list[tuple[SourceFile, str]]) -> None:
    """SHA-256 of a clip, read in chunks (a 2 GB clip is never held in memory)."""
    try:
        media_id, size = _video.sha256_stream(b.ctx.source_uri, file.path)
    except OSError as exc:
        _unreadable(b, file, exc)
        return
    if size == 0:
        _empty(b, file)
        return
    hashed.append((file, media_id))
    b.clips.setdefault(media_id, file)
    _labels(b, file, media_id, None)


def _labels(b: Batch, file: SourceFile, media_id: str, data: bytes | None) -> None:
    """The human labels a file carries (its ``{species}`` folder, its XMP keywords)."""
    found = file_labels(file.path, data, b.ctx.layout, b.ctx.species_keyword_parent)
    if found:
        b.media_labels += label_rows(media_id, found, b.ctx.run_id, rows.now())


def intake(ctx: BatchContext, files: list[SourceFile], claimed: set[str]) -> Batch:
    """Read and hash every file (identity is the SHA-256 of the bytes) and keep what is new:
    not in the warehouse (or lake), and not ``claimed`` by an earlier batch of this run."""
    t0 = time.perf_counter()
    b = Batch(ctx, files)
    contents: dict[str, tuple[SourceFile, bytes]] = {}
    hashed: list[tuple[SourceFile, str]] = []
    for file in files:
        if _video.is_video(file.path):
            # new videos: hashed streaming, never held in memory
            _hash_clip(b, file, hashed)
            continue
        try:
            data = read_file(ctx.source_uri, file.path)
        except OSError as exc:
            _unreadable(b, file, exc)
            continue
        if not data:
            _empty(b, file)
            continue
        media_id = ids.media_id(data)
        hashed.append((file, media_id))
        _labels(b, file, media_id, data)
        if is_clip(file.path, data):  # a clip by its content: processed from its file
            b.clips.setdefault(media_id, file)
            continue
        contents.setdefault(media_id, (file, data))

    known = ctx.rows_store().known_media([*contents, *b.clips]) | claimed
    b.new_ids = [m for m in contents if m not in known]
    b.new_clips = [m for m in b.clips if m not in known and m not in contents]
    claimed.update(b.new_ids)
    claimed.update(b.new_clips)
    b.data = {m: contents[m] for m in b.new_ids}
    for file, media_id in hashed:
        owner = contents[media_id][0] if media_id in contents else b.clips[media_id]
        first = owner is file and (media_id in b.new_ids or media_id in b.new_clips)
        if not first:
            b.stats.duplicates += 1
            b.file_row(file, media_id, "duplicate")
    b.stats.read_s += time.perf_counter() - t0
    return b


def outside_link_rows(listing: Listing, run_id: str) -> list[dict[str, Any]]:
    """Quarantine rows for the links that resolve outside the source root (never read)."""
    reason = QuarantineReason.OUTSIDE_SOURCE
    error = reason.message("the file is a link to a place outside the source folder")
    return [
        rows.quarantine_row(
            source_uri=listing.source_uri, file_path=path, reason=reason, error=error,
            run_id=run_id,
        ).as_row()
        for path in listing.outside_root
    ]  # fmt: skip
