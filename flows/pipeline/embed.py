"""Cache the embeddings of the stored photos' crops, without a species head.

A run caches crop embeddings (``raw.crop_embeddings``) only when a trained head classifies.
On day one there is none, yet the Label page needs them to group similar crops, and "train
now" to fit the first head without reading the photos again. :func:`embed_stored` embeds the
crops the one classification rule picks (``models_ml.classifier.classification_targets``: the
animal boxes at or above ``classification_min_confidence``, else the whole frame), decoded as
a run decodes them and cropped as the species stage crops them, so the vectors are the ones
a head computes at inference. Photos whose crops are all cached are skipped (running it twice
adds nothing), and rows cached before sketches existed get theirs
(:func:`models_ml.similarity.sketch`).

Plain functions, no Prefect.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from flows.pipeline.context import batch_context, configured_manifest
from flows.pipeline.discovery import read_file
from flows.pipeline.inference import crop_key
from flows.pipeline.models import ensure_models
from flows.pipeline.relabel import stored_boxes, stored_photos
from flows.settings import Settings
from flows.store import Store, ids, rows
from models_ml import ImageRejected, decode_rgb, open_image
from models_ml.classifier import classification_targets, crop_batch
from models_ml.session import create_session
from models_ml.similarity import SKETCH_DIM, sketch
from models_ml.training_data import EMBEDDER, l2_normalise

__all__ = ["EmbedResult", "embed_stored", "embedder_id", "fill_sketches"]


@dataclass
class EmbedResult:
    embedder: str
    photos: int = 0  # photos read and embedded
    crops: int = 0  # embeddings cached
    sketched: int = 0  # older cached rows given their sketch
    seconds: float = 0.0
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def embedder_id(settings: Settings) -> str:
    """``model@version`` of the embedder trained heads use (what ``raw.crop_embeddings`` keys)."""
    return configured_manifest(settings)[EMBEDDER].model_id


def fill_sketches(store: Store, batch: int = 4096) -> int:
    """Give every cached embedding without a sketch its sketch (a table only: a lake's raw
    tables are read-only views over its files, whose rows are written with their sketch)."""
    done = 0
    with store.writing() as con:
        kind = con.execute(
            "select table_type from information_schema.tables "
            "where table_schema = 'raw' and table_name = 'crop_embeddings'"
        ).fetchone()
        if not kind or kind[0] != "BASE TABLE":  # a lake's view over its files: read-only
            return 0
        while True:
            todo = con.execute(
                "select media_id, crop_key, embedder, embedding from raw.crop_embeddings "
                "where sketch is null limit ?",
                [batch],
            ).fetchall()
            if not todo:
                return done
            sk = sketch(np.asarray([r[3] for r in todo], np.float32))
            table = pa.table({
                "media_id": [r[0] for r in todo], "crop_key": [r[1] for r in todo],
                "embedder": [r[2] for r in todo],
                "sketch": pa.array(list(sk), type=pa.list_(pa.float32(), SKETCH_DIM)),
            })  # fmt: skip
            con.register("_sketches", table)
            con.execute(
                "update raw.crop_embeddings as e set sketch = s.sketch from _sketches as s "
                "where e.media_id = s.media_id and e.crop_key = s.crop_key "
                "and e.embedder = s.embedder"
            )
            con.unregister("_sketches")
            done += len(todo)


def embed_stored(
    settings: Settings,
    store: Store,
    media_ids: Sequence[str] | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    batch: int = 64,
) -> EmbedResult:
    """Cache the crop embeddings of the stored photos (``media_ids``, or all) that have none."""
    t0 = time.perf_counter()
    manifest = configured_manifest(settings)
    spec = manifest[EMBEDDER]
    if spec.location is None:
        ensure_models(settings, [EMBEDDER])
    result = EmbedResult(spec.model_id)
    result.sketched = fill_sketches(store)
    by_media = stored_photos(
        store,
        "m.media_id not in (select media_id from raw.crop_embeddings where embedder = ?) "
        "and (? or m.media_id in (select unnest(?::varchar[])))",
        [spec.model_id, media_ids is None, list(media_ids or [])],
    )
    if not by_media:
        result.seconds = time.perf_counter() - t0
        return result
    run_id = ids.import_run_id()
    ctx = batch_context(settings, settings.model_path, "", run_id, store=store)
    session = create_session(
        spec.files_dir(settings.model_path) / spec.file,
        intra_op_threads=settings.intra_op_threads or None,
    )
    inp = spec.input.name or session.get_inputs()[0].name
    out = spec.output.name or session.get_outputs()[0].name
    pending: list[dict[str, Any]] = []

    def flush() -> None:
        if pending:
            store.load_batch(
                ids.new_batch_id(run_id), media=[], detections=[], quarantine=[], files=[],
                crop_embeddings=pending,
            )  # fmt: skip
            result.crops += len(pending)
            pending.clear()

    for done, (media_id, media_rows) in enumerate(by_media.items(), start=1):
        dets, det_rows = stored_boxes(media_rows)
        targets = classification_targets(
            dets, settings.classification_min_confidence, ctx.ensemble.animal_model_id
        )
        if targets:
            source_uri, file_path = str(media_rows[0][1]), str(media_rows[0][2])
            try:
                img = open_image(
                    read_file(source_uri, file_path), max_pixels=settings.max_image_pixels
                )
                rgb = decode_rgb(img, draft_size=ctx.ensemble.draft_size)
            except (OSError, ImageRejected) as exc:
                result.unreadable.append((file_path, str(exc)))
                continue
            batch_in = crop_batch(rgb, [t.box for t in targets], spec.input)
            (raw,) = session.run([out], {inp: batch_in})
            emb = l2_normalise(np.asarray(raw, np.float32).reshape(len(targets), -1))
            now = rows.now()
            pending += [
                {"media_id": media_id, "crop_key": crop_key(t, det_rows), "embedder": spec.model_id,
                 "embedding": e.tolist(), "sketch": s.tolist(), "run_id": run_id,
                 "embedded_at": now}
                for t, e, s in zip(targets, emb, sketch(emb), strict=True)
            ]  # fmt: skip
            result.photos += 1
        if progress is not None:
            progress(done, len(by_media))
        if len(pending) >= batch:
            flush()
    flush()
    result.seconds = time.perf_counter() - t0
    return result
