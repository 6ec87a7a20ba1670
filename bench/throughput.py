"""Inference throughput: the real ingest path against a bare onnxruntime loop, same run.

    .venv/bin/python bench/throughput.py --images ../shared/data/camtrap

prints ONE JSON line:

* ``raw_ips``: images/s of bare ``session.run`` loops over tensors decoded and preprocessed
  beforehand, for every model of the configured pipeline (each detector on every image, the
  person cue and the species stage on the crops the pipeline classifies, and the info-bar OCR
  models on the photos without an EXIF time: their runs are recorded once and replayed with
  the same inputs), on the same sessions and with as many loops side by side as the pipeline
  has inference threads (``inference_workers``), each loop taking every n-th call;
* ``pipeline_ips``: images/s of the real ingest path, ``flows.pipeline.process`` called directly (no
  Prefect): list, read + hash, EXIF, decode, detect, classify, load into a fresh DuckDB, mark
  repeat detections;
* ``ratio`` = pipeline_ips / raw_ips (the goal: >= 0.95); ``cpu_ratio`` = the bare loops' CPU
  seconds / the pipeline's for the same photos (every thread), which other processes on a
  shared machine move far less than wall time; and ``profile``: seconds per stage (the
  pipeline's own counters, summed over its threads, plus a single-threaded pass timing
  read/hash, EXIF and decode on their own); ``cpu_s`` and ``page_faults``: what each of the
  two runs cost the process (all threads), less noisy than wall time on a shared machine;
* ``from_files_ips``: images/s of the bare loop a user would write on the photos themselves,
  laid out like ``raw_ips`` (same sessions, as many loops side by side): read each file,
  decode it (the same JPEG draft), preprocess, run the same model calls; no hashing, EXIF,
  warehouse or queues. ``ratio_from_files`` = pipeline_ips / from_files_ips: what trapflow's
  own work costs on top of what any program must do with a photo (``ratio`` also charges the
  pipeline for decoding and preprocessing, which the tensor loop was given for free);
* ``one_loop_ips``: the classic baseline, one bare loop over sessions with one onnxruntime
  thread per core (``inference_workers = 1``), and ``ratio_one_loop`` = pipeline_ips /
  one_loop_ips: what the layout of inference threads gains over it.

Still images only (video clips in the folder are counted in ``videos_skipped``: a clip is
many frames, so images/s would mean something else). The three runs take turns ``--repeat``
times and the median pair (by ``ratio``) is reported, so a busy machine slows all alike.

Models and settings come from the usual configuration (trapflow.toml, TRAPFLOW_*).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.pipeline.discovery import chunked, list_source
from flows.pipeline.process import (
    BatchStats,
    batch_context,
    ensure_pipeline_models,
    flag_repeats,
    process_batches,
)
from flows.pipeline.video import is_video
from flows.settings import load_settings
from flows.store import warehouse as _warehouse
from models_ml import ImageRejected, decode_rgb, open_image, read_exif
from models_ml.person_cue import MIN_SOURCE_CONFIDENCE
from models_ml.repeats import RepeatParams
from models_ml.session import default_providers

T = TypeVar("T")
_PREDICT = object()  # marks a species-classifier call: predict(), not run()


class _Recorder:
    """An onnxruntime session stand-in that runs the real session and keeps every call."""

    def __init__(self, session: Any, calls: list[tuple[Any, Any, Any]]):
        self._session, self._calls = session, calls

    def run(self, outputs: Any, feeds: dict[str, Any], *args: Any) -> Any:
        self._calls.append((self._session, outputs, dict(feeds)))
        return self._session.run(outputs, feeds, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _ocr_calls(reader: Any, rgb: Any) -> list[tuple[Any, Any, Any]]:
    """The OCR model runs the pipeline makes for a photo with no EXIF time (same inputs)."""
    calls: list[tuple[Any, Any, Any]] = []
    saved = reader.det, reader.rec, reader.cls
    reader.det, reader.rec = _Recorder(saved[0], calls), _Recorder(saved[1], calls)
    reader.cls = _Recorder(saved[2], calls) if saved[2] is not None else None
    try:
        reader.read(rgb)
    finally:
        reader.det, reader.rec, reader.cls = saved
    return calls


def _decode_all(
    root: Path, groups: list[list[str]], draft: tuple[int, int]
) -> tuple[list[list[tuple[Any, bool]]], list[list[Path]], dict[str, float]]:
    """Per group of files (a pipeline batch): its unique decodable images (by SHA-256, first
    seen wins, as in the pipeline) with whether EXIF gave a time, their files, and
    single-threaded read/EXIF/decode timings."""
    seen: set[str] = set()
    out: list[list[tuple[Any, bool]]] = []
    files: list[list[Path]] = []
    t_read = t_exif = t_decode = 0.0
    for paths in groups:
        images: list[tuple[Any, bool]] = []
        kept: list[Path] = []
        out.append(images)
        files.append(kept)
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
            has_time = False
            with contextlib.suppress(Exception):  # timing only; the pipeline records problems
                has_time = read_exif(data).captured_at is not None
            t3 = time.perf_counter()
            t_exif += t3 - t2
            try:
                rgb = decode_rgb(img, draft_size=draft)
            except ImageRejected:
                continue
            t_decode += time.perf_counter() - t3
            seen.add(digest)
            images.append((rgb, has_time))
            kept.append(root / rel)
    return out, files, {"read_hash_s": t_read, "exif_s": t_exif, "decode_s": t_decode}


def _animal_boxes(ctx: Any, images: list[tuple[Any, bool]]) -> list[list[Any]]:
    """The animal detector's animal boxes on each image (what the crops stages read)."""
    animal = ctx.ensemble.detectors[0]
    return [
        [d for d in animal.detect(img, ctx.inference_floor) if d.category == "animal"]
        for img, _ in images
    ]


def _raw_inputs(
    ctx: Any,
    images: list[tuple[Any, bool]],
    batch: int,
    boxes_per_image: list[list[Any]],
    *,
    run_ocr: bool = False,
) -> list[tuple[Any, ...]]:
    """(session, outputs, feeds) calls that the pipeline's models make on ``images``, the
    model inputs preprocessed here; ``run_ocr``: read the info bars now instead of recording
    the OCR model's calls."""
    calls: list[tuple[Any, ...]] = []
    ens = ctx.ensemble
    rgbs = [rgb for rgb, _ in images]
    for det in ens.detectors:
        pres = [det.preprocess(img) for img in rgbs]
        step = batch if det.spec.input.dynamic_batch else 1
        for start in range(0, len(pres), step):
            x = np.stack([p.arr for p in pres[start : start + step]])
            calls.append((det.session, [det._output_name], {det._input_name: x}))
    cue = ens.person_cue
    for (img, has_time), dets in zip(images, boxes_per_image, strict=True):
        if cue is not None:
            src = [d.bbox for d in dets if d.confidence >= MIN_SOURCE_CONFIDENCE]
            if src:
                x = cue.preprocess(img, src)
                calls.append((cue.session, [cue.spec.output.name], {cue.spec.input.name: x}))
        clf = ctx.classifier
        if clf is not None:
            src = [d.bbox for d in dets if d.confidence >= ctx.classify_min_confidence]
            if src:
                calls.append((clf, _PREDICT, clf.preprocess(img, src)))
        if not has_time and ctx.info_bar is not None:
            if run_ocr:
                ctx.info_bar.read(img)
            else:
                calls.extend(_ocr_calls(ctx.info_bar, img))
    return calls


def _file_loop(
    ctx: Any,
    files: list[Path],
    has_time: list[bool],
    boxes: list[list[Any]],
    batch: int,
    loops: int,
) -> float:
    """Seconds for the bare loop a user would write on the photos themselves: ``loops``
    threads side by side, each taking every ``loops``-th run of ``batch`` photos, reading,
    decoding (the same JPEG draft) and preprocessing them, then running the same model calls
    (no hashing, EXIF, warehouse, or queues)."""
    chunks = [list(range(i, min(i + batch, len(files)))) for i in range(0, len(files), batch)]
    draft = ctx.ensemble.draft_size

    def work(mine: list[list[int]]) -> None:
        for chunk in mine:
            images = [
                (decode_rgb(open_image(files[i].read_bytes(), max_pixels=80_000_000),
                            draft_size=draft), has_time[i])
                for i in chunk
            ]  # fmt: skip
            _run_calls(_raw_inputs(ctx, images, batch, [boxes[i] for i in chunk], run_ocr=True))

    return _side_by_side(work, chunks, loops)


def _usage() -> tuple[float, int]:
    """CPU seconds (user + system, every thread) and minor page faults of this process."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime, use.ru_minflt


def _run_calls(calls: list[tuple[Any, ...]]) -> None:
    for session, outputs, feeds in calls:
        if outputs is _PREDICT:  # a species classifier: its predict() is the bare embedder + head
            session.predict(feeds)
        else:
            session.run(outputs, feeds)


def _side_by_side(work: Callable[[list[T]], None], items: list[T], loops: int) -> float:
    """Seconds for ``loops`` threads side by side, each calling ``work`` on every
    ``loops``-th item."""
    t0 = time.perf_counter()
    if loops <= 1:
        work(items)
    else:
        with ThreadPoolExecutor(max_workers=loops) as pool:
            list(pool.map(work, [items[i::loops] for i in range(loops)]))
    return time.perf_counter() - t0


def _raw_loop(calls: list[tuple[Any, ...]], loops: int = 1) -> float:
    """Seconds for ``loops`` threads side by side, each running every ``loops``-th call."""
    return _side_by_side(_run_calls, calls, loops)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", required=True, type=Path, help="folder of trap images")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N files")
    ap.add_argument("--batch", type=int, default=4, help="images per detector call")
    ap.add_argument("--repeat", type=int, default=3, help="raw/pipeline pairs (median kept)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="trapflow-bench-") as tmp:
        warehouse = Path(tmp) / "bench.duckdb"
        settings = load_settings(warehouse=str(warehouse), source=str(args.images))
        model_dir = ensure_pipeline_models(settings)
        source = str(args.images.resolve())
        run_id = uuid.uuid4().hex
        ctx = batch_context(settings, model_dir, source, run_id)
        ctx = replace(ctx, infer_batch=args.batch)
        params = RepeatParams(
            iou=settings.repeat_iou,
            min_occurrences=settings.repeat_min_occurrences,
            max_box_area=settings.repeat_max_box_area,
            min_confidence=settings.repeat_min_confidence,
        )

        listing = list_source(source, settings.extensions)
        files = [f for f in listing.media if not is_video(f.path)]
        videos = len(listing.media) - len(files)
        if args.limit:
            files = files[: args.limit]
        batches = list(chunked(files, settings.batch_size))

        groups, group_files, decode_profile = _decode_all(
            args.images.resolve(), [[f.path for f in b] for b in batches], ctx.ensemble.draft_size
        )
        boxes = [_animal_boxes(ctx, images) for images in groups]
        flat = [
            c
            for images, found in zip(groups, boxes, strict=True)
            for c in _raw_inputs(ctx, images, args.batch, found)
        ]
        all_files = [f for fs in group_files for f in fs]
        all_has_time = [t for images in groups for _, t in images]
        all_boxes = [b for found in boxes for b in found]
        _raw_loop(flat[: min(len(flat), 6)])  # warm-up: first runs allocate
        # the classic baseline: one loop, sessions with one onnxruntime thread per core
        one = batch_context(
            settings.model_copy(update={"inference_workers": 1, "intra_op_threads": 0}),
            model_dir, source, run_id,
        )  # fmt: skip
        one_flat = [
            c
            for images, found in zip(groups, boxes, strict=True)
            for c in _raw_inputs(one, images, args.batch, found)
        ]
        _raw_loop(one_flat[: min(len(one_flat), 6)])
        workers = ctx.inference_workers

        # The runs take turns (--repeat times), so all see the same machine; the pipeline
        # starts each time from an empty warehouse.
        pairs: list[tuple[float, float, BatchStats, dict[str, float]]] = []
        for number in range(args.repeat):
            use0 = _usage()
            raw_s = _raw_loop(flat, workers)
            use1 = _usage()
            one_s = _raw_loop(one_flat)
            use_f0 = _usage()
            file_s = _file_loop(ctx, all_files, all_has_time, all_boxes, args.batch, workers)
            use_f1 = _usage()
            warehouse = Path(tmp) / f"bench-{number}.duckdb"
            ctx = replace(ctx, warehouse=warehouse, run_id=uuid.uuid4().hex)
            with _warehouse.connect(warehouse) as con:
                _warehouse.ensure_schema(con)
            use2 = _usage()
            t0 = time.perf_counter()
            list_source(source, settings.extensions)
            list_s = time.perf_counter() - t0
            stats = BatchStats()
            for done in process_batches(ctx, batches):
                stats.add(done)
            t_rde = time.perf_counter()
            flag_repeats(warehouse, ctx.run_id, params)
            rde_s = time.perf_counter() - t_rde
            pipeline_s = time.perf_counter() - t0
            use3 = _usage()
            extra = {
                "list_s": list_s, "repeats_s": rde_s, "one_loop_s": one_s, "file_s": file_s,
                "file_cpu_s": use_f1[0] - use_f0[0],
                "raw_cpu_s": use1[0] - use0[0], "pipeline_cpu_s": use3[0] - use2[0],
                "raw_faults": use1[1] - use0[1], "pipeline_faults": use3[1] - use2[1],
            }  # fmt: skip
            pairs.append((raw_s, pipeline_s, stats, extra))

    n_raw = sum(len(g) for g in groups)
    ratios = [(stats.images / p_s) / (n_raw / r_s) for r_s, p_s, stats, _ in pairs]
    median = sorted(range(len(pairs)), key=ratios.__getitem__)[len(pairs) // 2]
    raw_s, pipeline_s, stats, extra = pairs[median]
    list_s, rde_s = extra["list_s"], extra["repeats_s"]
    raw_ips = n_raw / raw_s if raw_s else 0.0
    pipeline_ips = stats.images / pipeline_s if pipeline_s else 0.0
    one_loop_ips = n_raw / extra["one_loop_s"] if extra["one_loop_s"] else 0.0
    result = {
        "images": stats.images,
        "raw_images": n_raw,
        "videos_skipped": videos,
        "ocr_images": sum(not t for g in groups for _, t in g),
        "raw_ips": round(raw_ips, 3),
        "pipeline_ips": round(pipeline_ips, 3),
        "ratio": round(pipeline_ips / raw_ips, 3) if raw_ips else None,
        "ratios": [round(r, 3) for r in ratios],  # every pair; the figures above: the median
        # the same work measured in CPU seconds (all threads): steadier on a shared machine
        "cpu_ratio": round(extra["raw_cpu_s"] / extra["pipeline_cpu_s"], 3)
        if extra["pipeline_cpu_s"]
        else None,
        "cpu_ratios": [round(e["raw_cpu_s"] / e["pipeline_cpu_s"], 3) for *_, e in pairs],
        # the bare loop on the photos themselves (read, decode, preprocess, run)
        "from_files_ips": round(n_raw / extra["file_s"], 3),
        "ratio_from_files": round(pipeline_ips / (n_raw / extra["file_s"]), 3),
        "ratios_from_files": [
            round((st.images / p_s) / (n_raw / e["file_s"]), 3) for _, p_s, st, e in pairs
        ],
        "cpu_ratio_from_files": round(extra["file_cpu_s"] / extra["pipeline_cpu_s"], 3)
        if extra["pipeline_cpu_s"]
        else None,
        "one_loop_ips": round(one_loop_ips, 3),
        "ratio_one_loop": round(pipeline_ips / one_loop_ips, 3) if one_loop_ips else None,
        "raw_s": round(raw_s, 3),
        "pipeline_s": round(pipeline_s, 3),
        # CPU seconds (all threads) and minor page faults of the median pair's two runs
        "cpu_s": {k: round(extra[f"{k}_cpu_s"], 2) for k in ("raw", "file", "pipeline")},
        "page_faults": {k: int(extra[f"{k}_faults"]) for k in ("raw", "pipeline")},
        "models": list(ctx.ensemble.model_ids)
        + ([ctx.classifier.model_id] if ctx.classifier else [])
        + ([ctx.info_bar.model_id] if ctx.info_bar else []),
        "providers": default_providers(),
        "cores": os.cpu_count(),
        "inference_workers": workers,
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
