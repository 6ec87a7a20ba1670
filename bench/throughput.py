"""Inference throughput: the real ingest path against a bare onnxruntime loop, same run.

    .venv/bin/python bench/throughput.py --images ../shared/data/camtrap

prints ONE JSON line:

* ``raw_ips``: images/s of a bare loop of ``session.run`` over tensors decoded and
  preprocessed beforehand, for every model of the configured pipeline (each detector on every
  image, the person cue and the species stage on the crops the pipeline classifies);
* ``pipeline_ips``: images/s of the real ingest path, ``flows._process`` called directly (no
  Prefect): list, read + hash, EXIF, decode, detect, classify, load into a fresh DuckDB, mark
  repeat detections;
* ``ratio`` = pipeline_ips / raw_ips, and ``profile``: seconds per stage (the pipeline's own
  counters, plus a single-threaded pass timing read/hash, EXIF and decode on their own).

Models and settings come from the usual configuration (trapflow.toml, TRAPFLOW_*).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows import _warehouse
from flows._discovery import chunked, list_source
from flows._process import (
    BatchStats,
    batch_context,
    ensure_pipeline_models,
    flag_repeats,
    process_batch,
)
from flows.settings import load_settings
from models_ml import ImageRejected, decode_rgb, open_image, read_exif
from models_ml.repeats import RepeatParams
from models_ml.session import default_providers


def _decode_all(root: Path, paths: list[str], draft: tuple[int, int]) -> tuple[list[Any], dict]:
    """Unique decodable images (by SHA-256), and single-threaded read/EXIF/decode timings."""
    seen: set[str] = set()
    images = []
    t_read = t_exif = t_decode = 0.0
    for rel in paths:
        t0 = time.perf_counter()
        data = (root / rel).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        t1 = time.perf_counter()
        t_read += t1 - t0
        if not data or digest in seen:
            continue
        try:
            img = open_image(data, max_pixels=80_000_000)
        except ImageRejected:
            continue
        t2 = time.perf_counter()
        with contextlib.suppress(Exception):  # timing only; the pipeline records problems
            read_exif(data)
        t3 = time.perf_counter()
        t_exif += t3 - t2
        try:
            rgb = decode_rgb(img, draft_size=draft)
        except ImageRejected:
            continue
        t_decode += time.perf_counter() - t3
        seen.add(digest)
        images.append(rgb)
    return images, {"read_hash_s": t_read, "exif_s": t_exif, "decode_s": t_decode}


def _raw_inputs(ctx: Any, images: list[Any], batch: int) -> list[tuple[Any, str, str, Any]]:
    """(session, input, output, tensor) calls that the pipeline's models make on ``images``."""
    calls: list[tuple[Any, str, str, Any]] = []
    ens = ctx.ensemble
    for det in ens.detectors:
        pres = [det.preprocess(img) for img in images]
        step = batch if det.spec.input.dynamic_batch else 1
        for start in range(0, len(pres), step):
            x = np.stack([p.arr for p in pres[start : start + step]])
            calls.append((det.session, det._input_name, det._output_name, x))
    animal = ens.detectors[0]
    boxes_per_image = [
        [d for d in animal.detect(img, ctx.inference_floor) if d.category == "animal"]
        for img in images
    ]
    cue = ens.person_cue
    for img, dets in zip(images, boxes_per_image, strict=True):
        if cue is not None:
            src = [d.bbox for d in dets if d.confidence >= 0.25]
            if src:
                x = cue.preprocess(img, src)
                calls.append((cue.session, cue.spec.input.name, cue.spec.output.name, x))
        clf = ctx.classifier
        if clf is not None:
            src = [d.bbox for d in dets if d.confidence >= ctx.classify_min_confidence]
            if src:
                calls.append((clf, "", "", clf.preprocess(img, src)))
    return calls


def _raw_loop(calls: list[tuple[Any, str, str, Any]]) -> float:
    t0 = time.perf_counter()
    for session, inp, out, x in calls:
        if not inp:  # a species classifier: its predict() is the bare embedder + head runs
            session.predict(x)
        else:
            session.run([out], {inp: x})
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", required=True, type=Path, help="folder of trap images")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N files")
    ap.add_argument("--batch", type=int, default=4, help="images per detector call")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="trapflow-bench-") as tmp:
        warehouse = Path(tmp) / "bench.duckdb"
        settings = load_settings(warehouse=str(warehouse), source=str(args.images))
        model_dir = ensure_pipeline_models(settings)
        source = str(args.images.resolve())
        run_id = uuid.uuid4().hex
        ctx = batch_context(settings, model_dir, source, run_id)
        from dataclasses import replace

        ctx = replace(ctx, infer_batch=args.batch)

        listing = list_source(source, settings.extensions)
        paths = [f.path for f in listing.media]
        files = list(listing.media)
        if args.limit:
            paths, files = paths[: args.limit], files[: args.limit]

        images, decode_profile = _decode_all(args.images.resolve(), paths, ctx.ensemble.draft_size)
        calls = _raw_inputs(ctx, images, args.batch)
        _raw_loop(calls[: min(len(calls), 6)])  # warm-up: first runs allocate
        raw_s = _raw_loop(calls)

        with _warehouse.connect(warehouse) as con:
            _warehouse.ensure_schema(con)
        t0 = time.perf_counter()
        listing = list_source(source, settings.extensions)
        list_s = time.perf_counter() - t0
        stats = BatchStats()
        for chunk in chunked(files, settings.batch_size):
            stats.add(process_batch(ctx, chunk))
        t_rde = time.perf_counter()
        params = RepeatParams(
            iou=settings.repeat_iou,
            min_occurrences=settings.repeat_min_occurrences,
            max_box_area=settings.repeat_max_box_area,
            min_confidence=settings.repeat_min_confidence,
        )
        flag_repeats(warehouse, run_id, params)
        rde_s = time.perf_counter() - t_rde
        pipeline_s = time.perf_counter() - t0

    raw_ips = len(images) / raw_s if raw_s else 0.0
    pipeline_ips = stats.images / pipeline_s if pipeline_s else 0.0
    result = {
        "images": stats.images,
        "raw_images": len(images),
        "raw_ips": round(raw_ips, 3),
        "pipeline_ips": round(pipeline_ips, 3),
        "ratio": round(pipeline_ips / raw_ips, 3) if raw_ips else None,
        "raw_s": round(raw_s, 3),
        "pipeline_s": round(pipeline_s, 3),
        "models": list(ctx.ensemble.model_ids)
        + ([ctx.classifier.model_id] if ctx.classifier else []),
        "providers": default_providers(),
        "cores": os.cpu_count(),
        "batch": args.batch,
        "profile": {
            "list_s": round(list_s, 3),
            "read_and_wait_s": round(stats.read_s, 3),
            "detect_s": round(stats.detect_s, 3),
            "classify_s": round(stats.classify_s, 3),
            "load_s": round(stats.load_s, 3),
            "repeats_s": round(rde_s, 3),
            "single_thread": {k: round(v, 3) for k, v in decode_profile.items()},
        },
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
