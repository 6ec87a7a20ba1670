"""Re-label the photos a warehouse already holds with a (new) species head, no re-detection.

A run classifies only new photos; after ``trapflow train`` the photos already stored still
carry the old head's labels (or none). :func:`relabel` classifies them with the species stage
of the current settings (by default the head trained last) from the boxes stored in
``raw.detections``, by the same rule and the same decoding as a run
(``flows.pipeline.inference.classify``), and appends the rows (``raw.classifications`` is
append-only: the marts take the latest classifier run on each box). A photo whose crops'
embeddings are cached (``raw.crop_embeddings``, by the same embedder) is labelled from them,
without reading it; the others are read, decoded and their embeddings cached. Photos that head
already classified are skipped, so running it twice adds nothing. Clips are left to their next
run.

Plain functions, no Prefect.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flows.errors import UserError
from flows.pipeline.context import batch_context
from flows.pipeline.discovery import read_file
from flows.pipeline.inference import classify
from flows.settings import Settings
from flows.store import Store, ids
from models_ml import ImageRejected, decode_rgb, open_image
from models_ml._types import BBox, Detection
from models_ml.classifier import EmbeddingHeadClassifier, classification_targets

__all__ = ["RelabelResult", "relabel", "stored_boxes", "stored_photos"]

_STORED = """
    select m.media_id, m.source_uri, m.file_path, m.site_id,
           d.detection_id, d.model_name, d.model_version, d.category, d.label, d.confidence,
           d.bbox_x, d.bbox_y, d.bbox_w, d.bbox_h
    from raw.media m
    left join raw.detections d on d.media_id = m.media_id and d.model_name != ?
    where m.media_type = 'image' and ({todo})
    order by m.media_id, d.detection_id
"""


def stored_photos(
    store: Store, todo: str, params: list[Any], skip_model: str = ""
) -> dict[str, list[tuple[Any, ...]]]:
    """The stored stills ``todo`` (an SQL condition on ``m``, raw.media) picks, each with its
    stored boxes but those of ``skip_model`` (rows as :func:`stored_boxes` reads them)."""
    with store.reading() as con:
        rows = con.execute(_STORED.format(todo=todo), [skip_model, *params]).fetchall()
    by_media: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_media.setdefault(str(row[0]), []).append(row)
    return by_media


@dataclass
class RelabelResult:
    model_id: str
    photos: int = 0
    from_cache: int = 0  # photos labelled from cached embeddings, without reading them
    classifications: int = 0
    seconds: float = 0.0
    #: photos whose file could not be read or decoded again: (path, reason)
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def stored_boxes(rows: list[tuple[Any, ...]]) -> tuple[list[Detection], list[dict[str, Any]]]:
    """A photo's stored boxes (rows: media_id, source_uri, file_path, site_id, detection_id,
    model_name, model_version, category, label, confidence, bbox x/y/w/h) as detections."""
    dets, det_rows = [], []
    for r in rows:
        if r[4] is None:  # a photo without boxes
            continue
        dets.append(Detection(r[7], r[8], float(r[9]), BBox(r[10], r[11], r[12], r[13]),
                              f"{r[5]}@{r[6]}"))  # fmt: skip
        det_rows.append({"detection_id": r[4], "media_id": r[0]})
    return dets, det_rows


def _cached_embeddings(
    store: Store, classifier: Any, media_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """media_id -> crop key -> embedding, of the classifier's embedder (heads only)."""
    if not isinstance(classifier, EmbeddingHeadClassifier) or not media_ids:
        return {}
    out: dict[str, dict[str, Any]] = {}
    with store.reading() as con:
        table = con.sql(
            "select media_id, crop_key, embedding from raw.crop_embeddings "
            "where embedder = ? and media_id in (select unnest(?::varchar[]))",
            params=[classifier.embedder_id, media_ids],
        ).to_arrow_table()
    if table is None or not table.num_rows:
        return out
    # the vectors as numpy rows (views of one array), not 1,280 Python floats each
    lists = table.column("embedding").combine_chunks()
    values = lists.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    offsets = lists.offsets.to_numpy()
    for i, (media_id, key) in enumerate(
        zip(table.column("media_id").to_pylist(), table.column("crop_key").to_pylist(), strict=True)
    ):
        out.setdefault(str(media_id), {})[str(key)] = values[offsets[i] : offsets[i + 1]]
    return out


def relabel(
    settings: Settings,
    store: Store,
    *,
    progress: Callable[[int, int], None] | None = None,
    flush_rows: int = 20_000,
) -> RelabelResult:
    """Classify every stored photo the species head has not classified yet."""
    if not settings.species_model:
        raise UserError(
            "no species model to re-label with: train one ('trapflow train') or set species_model"
        )
    t0 = time.perf_counter()
    run_id = ids.import_run_id()
    ctx = batch_context(settings, settings.model_path, "", run_id, store=store)
    if ctx.classifier is None:  # pragma: no cover - species_model is set
        raise UserError("the species stage is off (species_model = '')")
    name, _, version = ctx.classifier.model_id.partition("@")
    by_media = stored_photos(
        store,
        "m.media_id not in (select media_id from raw.classifications "
        "where model_name = ? and model_version = ?)",
        [name, version],
        skip_model=name,  # its own whole-frame boxes
    )
    cache = _cached_embeddings(store, ctx.classifier, list(by_media))
    result = RelabelResult(ctx.classifier.model_id)
    done = 0
    new_dets: list[dict[str, Any]] = []
    new_cls: list[dict[str, Any]] = []
    new_emb: list[dict[str, Any]] = []

    def flush() -> None:
        if new_cls or new_dets:
            store.load_batch(
                ids.new_batch_id(run_id), media=[], detections=new_dets, quarantine=[],
                files=[], classifications=new_cls, crop_embeddings=new_emb,
            )  # fmt: skip
            result.classifications += len(new_cls)
            new_dets.clear()
            new_cls.clear()
            new_emb.clear()

    for media_id, media_rows in by_media.items():
        source_uri, file_path, site = media_rows[0][1], media_rows[0][2], media_rows[0][3]
        dets, det_rows = stored_boxes(media_rows)
        n_before = len(det_rows)
        found = classify(ctx, None, site, dets, det_rows, media_id, cached=cache.get(media_id))
        if found or not classification_targets(
            dets, ctx.classify_min_confidence, ctx.ensemble.animal_model_id
        ):
            result.from_cache += bool(found)
        else:  # not (all) cached: the pixels, decoded as the run decoded them
            try:
                data = read_file(str(source_uri), str(file_path))
                img = open_image(data, max_pixels=settings.max_image_pixels)
                rgb = decode_rgb(img, draft_size=ctx.ensemble.draft_size)
            except (OSError, ImageRejected) as exc:
                result.unreadable.append((str(file_path), str(exc)))
                continue
            found = classify(ctx, rgb, site, dets, det_rows, media_id, embeddings=new_emb)
        new_cls += found
        new_dets += det_rows[n_before:]  # a whole-frame box of the head's own
        result.photos += 1
        done += 1
        if progress is not None:
            progress(done, len(by_media))
        # one load per ~20k rows: a load's transaction costs ~20 ms whatever its size, and
        # embeddings read from pixels (5 KB each) go sooner
        if len(new_cls) >= flush_rows or len(new_emb) >= 512:
            flush()
    flush()
    result.seconds = time.perf_counter() - t0
    return result
