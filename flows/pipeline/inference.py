"""Inference jobs: decode a new photo, run the detectors and the species stage on some photos
(or the sampled frames of one clip) on an inference thread, and make their rows.

Plain functions, no Prefect. The rows are built by ``flows.store.rows``; a job's rows are
added to their batch by :meth:`Found.accept` on the thread that owns the batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from PIL import Image

from flows.pipeline import video as _video
from flows.pipeline.context import BatchContext
from flows.pipeline.discovery import SourceFile, site_and_camera
from flows.pipeline.intake import Batch
from flows.pipeline.quarantine import PROCESSED, SKIPPED, QuarantineReason, reason_of
from flows.store import rows
from models_ml import ImageRejected, decode_rgb, open_image, read_exif
from models_ml._imageops import is_greyscale
from models_ml._types import Detection, ExifRecord, PreprocessedImage
from models_ml.classifier import (
    WHOLE_FRAME,
    EmbeddingHeadClassifier,
    Target,
    classification_targets,
    postprocess,
)
from models_ml.geofence import NO_LIST, fence
from models_ml.similarity import sketch

#: The crop key of a whole-frame embedding (``raw.crop_embeddings.crop_key``).
WHOLE_FRAME_KEY = "whole_frame"

__all__ = [
    "FORMAT_EXTENSIONS",
    "ClipFound",
    "Found",
    "Prepared",
    "classify",
    "infer",
    "infer_clip",
    "prepare",
    "process_clip",
]

#: What each image format is called in file names.
FORMAT_EXTENSIONS = {
    "JPEG": {"jpg", "jpeg", "jpe"},
    "PNG": {"png"},
    "TIFF": {"tif", "tiff"},
    "MPO": {"jpg", "jpeg"},  # multi-picture JPEG, written by some cameras
    "WEBP": {"webp"},
}


@dataclass
class Prepared:
    """A new image, opened and decoded, ready for the detectors."""

    file: SourceFile
    media_id: str
    image_format: str
    exif: ExifRecord
    rgb: Image.Image | None = None
    pre: tuple[PreprocessedImage, ...] = ()  # the detectors' inputs, made ahead
    rejected: ImageRejected | None = None
    exif_error: str | None = None
    ocr_at: datetime | None = None  # the time printed on the photo, when EXIF has none
    ocr_warning: str | None = None
    is_greyscale: bool | None = None  # no colour: an IR night photo (the clock checks)


def prepare(ctx: BatchContext, file: SourceFile, data: bytes, media_id: str) -> Prepared:
    """Open, read EXIF, decode and preprocess one new photo (on a decode thread)."""
    try:
        img = open_image(data, max_pixels=ctx.max_image_pixels)
    except ImageRejected as exc:
        return Prepared(file, media_id, "", ExifRecord(), rejected=exc)
    fmt = img.format or ""
    exif_error = None
    try:
        exif = read_exif(data)
    except Exception as exc:  # a header Pillow opened but whose EXIF it cannot parse
        exif, exif_error = (
            ExifRecord(width=img.width, height=img.height),
            f"{type(exc).__name__}: {exc}",
        )
    try:
        rgb = decode_rgb(img, draft_size=ctx.ensemble.draft_size)
    except ImageRejected as exc:
        return Prepared(file, media_id, fmt, exif, rejected=exc, exif_error=exif_error)
    pre = ctx.ensemble.preprocess(rgb)
    ocr_at, ocr_warning = None, None
    if ctx.info_bar is not None and (exif.captured_at is None or ctx.ocr_every_photo):
        try:
            reading = ctx.info_bar.read(rgb, dayfirst=ctx.ocr_dayfirst)
            ocr_at, ocr_warning = reading.captured_at, "; ".join(reading.warnings) or None
        except Exception as exc:  # OCR must never stop a run
            ocr_warning = f"info-bar OCR failed: {type(exc).__name__}: {exc}"
    return Prepared(
        file, media_id, fmt, exif, rgb=rgb, pre=pre, exif_error=exif_error,
        ocr_at=ocr_at, ocr_warning=ocr_warning, is_greyscale=is_greyscale(rgb),
    )  # fmt: skip


def reject(b: Batch, p: Prepared) -> None:
    """A photo that could not be opened or decoded: quarantined, with the library's words."""
    reason = reason_of(p.rejected, QuarantineReason.CORRUPT) if p.rejected else None
    b.quarantine_file(
        p.file, p.media_id, reason or QuarantineReason.CORRUPT, str(p.rejected), SKIPPED
    )
    b.file_row(p.file, p.media_id, "quarantined")


def _media_row(ctx: BatchContext, p: Prepared) -> dict[str, Any]:
    site, camera = site_and_camera(p.file.path, ctx.layout)
    return rows.image_media_row(
        media_id=p.media_id, source_uri=ctx.source_uri, file_path=p.file.path,
        file_size=p.file.size, file_modified_at=p.file.modified_at, site_id=site,
        camera_id=camera, image_format=p.image_format, exif=p.exif, width=p.exif.width,
        height=p.exif.height, run_id=ctx.run_id, ingested_at=rows.now(), ocr_at=p.ocr_at,
        ocr_warning=p.ocr_warning, is_greyscale=p.is_greyscale,
    ).as_row()  # fmt: skip


def _detection_rows(
    ctx: BatchContext,
    media_id: str,
    dets: list[Detection],
    frame_number: int | None = None,
    frame_time_s: float | None = None,
) -> list[dict[str, Any]]:
    return [
        r.as_row()
        for r in rows.detection_rows(media_id, dets, ctx.run_id, frame_number, frame_time_s)
    ]


def _exif_problems(p: Prepared) -> str:
    """EXIF that is there but wrong. An image with no EXIF at all is normal, not a problem."""
    problems = [w for w in p.exif.warnings if not w.startswith("no EXIF")]
    return "; ".join(filter(None, [p.exif_error, *problems]))


def _extension_warning(p: Prepared) -> str | None:
    ext = p.file.path.rsplit(".", 1)[-1].lower()
    expected = FORMAT_EXTENSIONS.get(p.image_format)
    if expected is None or ext in expected:
        return None
    return QuarantineReason.WRONG_EXTENSION.message(
        f"the file is named .{ext} but holds a {p.image_format} image; it was processed as "
        f"{p.image_format} (named .{sorted(expected)[0]})"
    )


def infer(ctx: BatchContext, images: list[Prepared]) -> list[Found | ClipFound]:
    """Detect (one call per model) and classify some images of one batch, on an inference
    thread, and make their rows; the pixels are freed here."""
    t2 = time.perf_counter()
    found = ctx.ensemble.detect_batch(
        [p.rgb for p in images if p.rgb is not None],
        conf_floor=ctx.inference_floor,
        preprocessed=[p.pre for p in images],
    )
    detect_s = (time.perf_counter() - t2) / len(images)
    out: list[Found | ClipFound] = []
    for p, dets in zip(images, found, strict=True):
        row = _media_row(ctx, p)
        det_rows = _detection_rows(ctx, p.media_id, dets)
        classifications: list[dict[str, Any]] = []
        embeddings: list[dict[str, Any]] = []
        t4 = time.perf_counter()
        if ctx.classifier is not None and p.rgb is not None:
            classifications = classify(
                ctx, p.rgb, row["site_id"], dets, det_rows, p.media_id, embeddings=embeddings
            )
        p.rgb, p.pre = None, ()  # free the pixels as soon as possible
        out.append(
            Found(p, row, det_rows, classifications, detect_s, time.perf_counter() - t4, embeddings)
        )
    return out


@dataclass
class Found:
    """One detected image's rows, made on an inference thread; :meth:`accept` adds them to
    its batch (on the thread that owns the batch)."""

    image: Prepared
    media: dict[str, Any]
    detections: list[dict[str, Any]]
    classifications: list[dict[str, Any]]
    detect_s: float
    classify_s: float
    embeddings: list[dict[str, Any]] = field(default_factory=list)

    def accept(self, ctx: BatchContext, b: Batch) -> None:
        p = self.image
        b.add_media(self.media, self.detections, self.classifications)
        b.crop_embeddings.extend(self.embeddings)
        b.stats.detect_s += self.detect_s
        b.stats.classify_s += self.classify_s
        b.file_row(p.file, p.media_id, "ingested")
        problems = _exif_problems(p)
        if problems:
            reason = (
                QuarantineReason.EXIF_UNREADABLE if p.exif_error else QuarantineReason.EXIF_INVALID
            )
            b.quarantine_file(
                p.file, p.media_id, reason,
                reason.message(
                    f"EXIF is damaged or implausible ({problems}); the image was processed "
                    f"and its time taken from the {self.media['timestamp_source']}"
                ),
                PROCESSED,
            )  # fmt: skip
        warning = _extension_warning(p)
        if warning:
            b.quarantine_file(
                p.file, p.media_id, QuarantineReason.WRONG_EXTENSION, warning, PROCESSED
            )


def infer_clip(ctx: BatchContext, file: SourceFile, media_id: str) -> list[Found | ClipFound]:
    """A clip on an inference thread: sampled frames through the detectors, one in memory."""
    t5 = time.perf_counter()
    out = process_clip(ctx, file, media_id)
    return [ClipFound(file, media_id, out, time.perf_counter() - t5)]


@dataclass
class ClipRows:
    media: dict[str, Any] | None = None
    detections: list[dict[str, Any]] = field(default_factory=list)
    classifications: list[dict[str, Any]] = field(default_factory=list)
    frame_labels: list[dict[str, Any]] = field(default_factory=list)
    #: (reason, error, action) of each problem
    quarantine: list[tuple[QuarantineReason, str, str]] = field(default_factory=list)


@dataclass
class ClipFound:
    """One clip's rows (or why it was skipped), made on an inference thread."""

    file: SourceFile
    media_id: str
    rows: ClipRows
    detect_s: float

    def accept(self, ctx: BatchContext, b: Batch) -> None:
        out = self.rows
        b.stats.detect_s += self.detect_s
        for q in out.quarantine:
            b.quarantine_file(self.file, self.media_id, *q)
        b.file_row(self.file, self.media_id, "ingested" if out.media else "quarantined")
        if out.media:
            b.add_media(out.media, out.detections, out.classifications)
            b.frame_labels.extend(out.frame_labels)


def crop_key(target: Target, det_rows: list[dict[str, Any]]) -> str:
    """How a crop's cached embedding is keyed: its box's detection_id, or ``whole_frame``."""
    if target.box is WHOLE_FRAME or target.detection is None:
        return WHOLE_FRAME_KEY
    return str(det_rows[target.detection]["detection_id"])


def classify(
    ctx: BatchContext,
    rgb: Image.Image | None,
    site: str | None,
    dets: list[Detection],
    det_rows: list[dict[str, Any]],
    media_id: str,
    frame: tuple[int, float] | None = None,
    *,
    embeddings: list[dict[str, Any]] | None = None,
    cached: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Top-k species labels (geofenced) for the crops the one rule picks
    (``models_ml.classifier.classification_targets``: the animal boxes at or above
    ``classification_min_confidence``, else the whole frame, as training embeds them). A
    whole frame with no animal box at all is labelled on a box of its own (the classifier's,
    the whole image, appended to ``det_rows``), which no counting rule counts.

    With a species head (embedder + head), the crops' embeddings are appended to
    ``embeddings`` (``raw.crop_embeddings`` rows, stills only); ``cached`` (crop key ->
    embedding) labels without the pixels when it holds every crop, else ``rgb`` is needed."""
    if ctx.classifier is None:
        return []
    targets = classification_targets(
        dets, ctx.classify_min_confidence, ctx.ensemble.animal_model_id
    )
    if not targets:
        return []
    head = ctx.classifier if isinstance(ctx.classifier, EmbeddingHeadClassifier) else None
    keys = [crop_key(t, det_rows) for t in targets]
    if head is not None and cached is not None and all(k in cached for k in keys):
        emb = np.stack([np.asarray(cached[k], np.float32) for k in keys])
        preds = postprocess(head.predict_embeddings(emb), head.labels, ctx.top_k)
    elif rgb is None:
        return []
    elif head is not None:
        emb = head.embed(head.preprocess(rgb, [t.box for t in targets]))
        preds = postprocess(head.predict_embeddings(emb), head.labels, ctx.top_k)
        if embeddings is not None and frame is None:
            now = rows.now()
            embeddings += [
                {"media_id": media_id, "crop_key": k, "embedder": head.embedder_id,
                 "embedding": e.tolist(), "sketch": s.tolist(), "run_id": ctx.run_id,
                 "embedded_at": now}
                for k, e, s in zip(keys, emb, sketch(emb), strict=True)
            ]  # fmt: skip
    else:
        preds = ctx.classifier.classify(rgb, [t.box for t in targets], top_k=ctx.top_k)
    allowed = ctx.geofence.allowed(site) if ctx.geofence is not None else None
    name, _, version = ctx.classifier.model_id.partition("@")
    now = rows.now()
    out = []
    for target, ranked in zip(targets, preds, strict=True):
        if target.detection is not None:
            det_row = det_rows[target.detection]
        else:
            det_row = _whole_frame_row(ctx, media_id, frame)
            det_rows.append(det_row)
        for f in fence(ranked, allowed):
            out.append(
                rows.classification_row(
                    detection_id=det_row["detection_id"], media_id=det_row["media_id"],
                    model_name=name, model_version=version, label=f.label,
                    probability=round(f.probability, 6), rank=f.rank,
                    geofence_status=f.geofence_status if allowed is not None else NO_LIST,
                    run_id=ctx.run_id, classified_at=now, id_model=ctx.classifier.model_id,
                ).as_row()
            )  # fmt: skip
    return out


def _whole_frame_row(
    ctx: BatchContext, media_id: str, frame: tuple[int, float] | None
) -> dict[str, Any]:
    """The classifier's own box over the whole image (of one frame, for a clip). Its
    confidence is 0: no detector found anything there (the Review page draws it only when the
    reviewer asks for boxes from 0); the classifier's probability is its classification's."""
    name, _, version = (ctx.classifier.model_id if ctx.classifier else "@").partition("@")
    return rows.detection_row(
        media_id=media_id, model_name=name, model_version=version, index=0, category="animal",
        label="animal", confidence=0.0, bbox=(0.0, 0.0, 1.0, 1.0),
        run_id=ctx.run_id, detected_at=rows.now(),
        frame_number=frame[0] if frame else None, frame_time_s=frame[1] if frame else None,
    ).as_row()  # fmt: skip


def frame_behaviour(
    ctx: BatchContext, frame: Any, dets: list[Detection], media_id: str
) -> dict[str, Any]:
    """The behaviour head's top label of one sampled frame, on the crop the species rule picks
    (the surest animal box, else the whole frame): one label for every sampled frame."""
    assert ctx.behaviour is not None  # noqa: S101 (the caller checks)
    targets = classification_targets(
        dets, ctx.classify_min_confidence, ctx.ensemble.animal_model_id
    )
    boxed = [t for t in targets if t.detection is not None and t.box is not WHOLE_FRAME]
    target = max(boxed, key=lambda t: dets[t.detection or 0].confidence) if boxed else targets[0]
    ((top, *_),) = ctx.behaviour.classify(frame.image, [target.box], top_k=1)
    return rows.frame_label_row(
        media_id=media_id, frame_number=frame.frame_number, frame_time_s=frame.time_s,
        model_id=ctx.behaviour.model_id, label=top.label, probability=round(top.probability, 6),
        run_id=ctx.run_id, labelled_at=rows.now(),
    ).as_row()  # fmt: skip


def process_clip(ctx: BatchContext, file: SourceFile, media_id: str) -> ClipRows:
    """Rows for one clip: media (media_type 'video'), per-frame boxes, species, problems."""
    from models_ml.video import probe

    out = ClipRows()
    site, camera = site_and_camera(file.path, ctx.layout)
    try:
        with _video.open_file(ctx.source_uri, file.path) as src:
            info = probe(src)
            if not isinstance(src, str):
                src.seek(0)

            def on_frame(frame: Any, dets: list[Detection]) -> None:
                det_rows = _detection_rows(ctx, media_id, dets, frame.frame_number, frame.time_s)
                if ctx.classifier is not None:  # may add a whole-frame box to det_rows
                    out.classifications.extend(
                        classify(
                            ctx,
                            frame.image,
                            site,
                            dets,
                            det_rows,
                            media_id,
                            (frame.frame_number, frame.time_s),
                        )
                    )
                out.detections.extend(det_rows)
                if ctx.behaviour is not None:
                    out.frame_labels.append(frame_behaviour(ctx, frame, dets, media_id))

            result = _video.analyse_clip(
                src, info, ctx.ensemble, ctx.inference_floor, rate=ctx.video_sample_rate,
                max_frames=ctx.video_max_frames, on_frame=on_frame,
            )  # fmt: skip
    except _video.VideoError as exc:
        reason = reason_of(exc, QuarantineReason.UNSUPPORTED_VIDEO)
        out.quarantine.append((reason, f"{exc}", SKIPPED))
        out.detections, out.classifications, out.frame_labels = [], [], []
        return out
    except OSError as exc:
        problem = QuarantineReason.UNREADABLE.message(f"could not read the clip ({exc})")
        out.quarantine.append((QuarantineReason.UNREADABLE, problem, SKIPPED))
        out.detections, out.classifications, out.frame_labels = [], [], []
        return out
    if result.error is not None:
        reason = reason_of(result.error, QuarantineReason.CORRUPT_VIDEO)
        out.quarantine.append(
            (reason, f"{result.error} (the frames before were processed)", PROCESSED)
        )
    out.media = rows.clip_media_row(
        media_id=media_id, source_uri=ctx.source_uri, file_path=file.path, file_size=file.size,
        file_modified_at=file.modified_at, site_id=site, camera_id=camera, info=info,
        run_id=ctx.run_id, ingested_at=rows.now(), frames_sampled=len(result.frames),
    ).as_row()  # fmt: skip
    return out
