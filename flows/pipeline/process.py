"""One batch of new files: read, hash, read EXIF, detect, and load, as plain functions.

Bad input never stops a batch: every file that cannot be used gets a quarantine row with a
reason and what to do, and the rest of the batch goes through.

This module runs the pipeline (threads, queues, order); the stages are modules of their own:
``context`` (settings and models), ``intake`` (read, hash, what is new, clips by content),
``inference`` (decode, detect, classify, rows), ``repeats`` (repeat detections), and the
rows themselves come from ``flows.store.rows``. The public names stay importable from here.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

from flows.pipeline.context import (
    BatchContext,
    batch_context,
    configured_manifest,
    ensure_pipeline_models,
    inference_layout,
    load_ensemble,
    load_info_bar_reader,
    load_species_classifier,
)
from flows.pipeline.discovery import SourceFile
from flows.pipeline.inference import (
    FORMAT_EXTENSIONS,
    ClipFound,
    Found,
    Prepared,
    infer,
    infer_clip,
    reject,
)
from flows.pipeline.inference import prepare as prepare_image
from flows.pipeline.intake import Batch, BatchStats, intake
from flows.pipeline.repeats import flag_repeats
from flows.store import ids

__all__ = [
    "DECODE_NICE",
    "FORMAT_EXTENSIONS",
    "BatchContext",
    "BatchStats",
    "batch_context",
    "bounded_map",
    "configured_manifest",
    "ensure_pipeline_models",
    "flag_repeats",
    "inference_layout",
    "load_ensemble",
    "load_info_bar_reader",
    "load_species_classifier",
    "process_batch",
    "process_batches",
]

T = TypeVar("T")
R = TypeVar("R")

#: How much lower the decode threads' CPU priority is than inference's (Linux nice steps).
DECODE_NICE = 10


def _load(b: Batch) -> BatchStats:
    """Write one batch in one transaction (or as one set of Parquet files in lake mode)."""
    ctx = b.ctx
    t3 = time.perf_counter()
    ctx.rows_store().load_batch(
        ids.new_batch_id(ctx.run_id), media=b.media, detections=b.detections,
        quarantine=b.quarantine, files=b.file_rows, classifications=b.classifications,
        media_labels=b.media_labels, frame_labels=b.frame_labels,
        crop_embeddings=b.crop_embeddings,
    )  # fmt: skip
    b.stats.classifications += len(b.classifications)
    b.stats.load_s += time.perf_counter() - t3
    return b.stats


@dataclass(frozen=True)
class _EndOfBatch:
    batch: Batch


def process_batches(
    ctx: BatchContext,
    batches: Iterable[list[SourceFile]],
    *,
    on_image: Callable[[int], None] | None = None,
) -> Iterator[BatchStats]:
    """Read, hash, check EXIF, detect and load batches of files; yields each batch's stats
    once it is loaded.

    Each batch is its own transaction, loaded in order (a crash loses at most the batches not
    yet loaded, which the next run picks up). The batches flow through one pipeline: the next
    batch is read and hashed (one thread) and its images decoded (the decode threads, a bounded
    prefetch queue) while this one is detected, and a batch is written (one thread) while the
    next one is detected, so the detectors never wait for a batch boundary. Detection runs as
    jobs of ``infer_batch`` photos (or one clip) on ``inference_workers`` threads; jobs are
    taken back in the order they were given out, so rows and progress come in file order.
    """
    _keep_freed_memory()
    claimed: set[str] = set()  # new media of earlier batches of this run, not yet loaded
    it = iter(batches)
    decoders = max(1, min(2, os.cpu_count() or 1))
    workers = max(1, ctx.inference_workers)
    with (
        ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="intake", initializer=_yield_to_inference
        ) as intake_pool,
        ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="load", initializer=_yield_to_inference
        ) as load_pool,
        ThreadPoolExecutor(
            max_workers=decoders, thread_name_prefix="decode", initializer=_yield_to_inference
        ) as decode_pool,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="infer") as infer_pool,
    ):
        # at most one batch read ahead: two batches' bytes in memory, never the whole card
        first = next(it, None)
        upcoming = intake_pool.submit(intake, ctx, first, claimed) if first is not None else None

        def stream() -> Iterator[tuple[Batch, str] | _EndOfBatch]:
            nonlocal upcoming
            while upcoming is not None:
                b = upcoming.result()
                files = next(it, None)
                upcoming = (
                    intake_pool.submit(intake, ctx, files, claimed) if files is not None else None
                )
                for media_id in b.new_ids:
                    yield b, media_id
                yield _EndOfBatch(b)

        def prepare(
            item: tuple[Batch, str] | _EndOfBatch,
        ) -> tuple[Batch, Prepared] | _EndOfBatch:
            if isinstance(item, _EndOfBatch):
                return item
            b, media_id = item
            file, data = b.data.pop(media_id)  # the bytes are dropped once decoded
            return b, prepare_image(ctx, file, data, media_id)

        loading: Future[BatchStats] | None = None
        ready: list[Prepared] = []  # always of one batch
        jobs: deque[_Job] = deque()  # submitted to the inference threads, retired in order

        def submit(b: Batch) -> None:
            if ready:
                jobs.append(_Job(b, infer_pool.submit(infer, ctx, list(ready))))
                ready.clear()

        def retire(keep: int) -> Iterator[BatchStats]:
            """Take finished jobs off the front, in order, until at most ``keep`` are in flight
            (waiting for the oldest); a batch whose jobs are all retired goes to the load."""
            nonlocal loading
            while jobs:
                job = jobs[0]
                running = job.work is not None and not job.work.done()
                if running and sum(j.work is not None for j in jobs) <= keep:
                    return
                jobs.popleft()
                if job.work is None:  # the end of a batch
                    if loading is not None:
                        yield loading.result()  # in order; a failed load stops the run here
                    loading = load_pool.submit(_load, job.batch)
                    continue
                for found in job.work.result():
                    found.accept(ctx, job.batch)
                    if on_image:
                        on_image(1)

        prepared = bounded_map(
            decode_pool, prepare, stream(), depth=max(ctx.prefetch, ctx.infer_batch)
        )
        while True:
            t1 = time.perf_counter()
            item = next(prepared, None)
            waited = time.perf_counter() - t1  # decoding not hidden behind inference
            if item is None:
                break
            if isinstance(item, _EndOfBatch):
                b = item.batch
                b.stats.read_s += waited
                submit(b)
                for media_id in b.new_clips:
                    work = infer_pool.submit(infer_clip, ctx, b.clips[media_id], media_id)
                    jobs.append(_Job(b, work))
                jobs.append(_Job(b, None))
                yield from retire(keep=workers)
                continue
            b, p = item
            b.stats.read_s += waited
            if p.rejected is not None or p.rgb is None:
                reject(b, p)
                continue
            ready.append(p)
            # a small batch is shared out between the inference threads (latency of a trickle)
            if len(ready) >= max(1, min(ctx.infer_batch, -(-len(b.new_ids) // workers))):
                submit(b)
                yield from retire(keep=workers)
        yield from retire(keep=0)
        if loading is not None:
            yield loading.result()


@dataclass
class _Job:
    """Work on the inference threads for one batch; ``work`` None marks the batch's end."""

    batch: Batch
    work: Future[list[Found | ClipFound]] | None


def process_batch(
    ctx: BatchContext,
    files: list[SourceFile],
    *,
    on_image: Callable[[int], None] | None = None,
) -> BatchStats:
    """Read, hash, check EXIF, detect and load one batch in one transaction."""
    stats = BatchStats()
    for done in process_batches(ctx, [files], on_image=on_image):
        stats.add(done)
    return stats


@lru_cache(maxsize=1)
def _keep_freed_memory() -> None:
    """Let glibc's malloc keep freed memory for the next image instead of returning it.

    Every photo allocates and frees the same few large buffers (decoded pixels, model inputs,
    batches). With glibc's defaults the largest are mapped and unmapped each time and freed
    memory above 128 KiB is trimmed, so each image page-faults them in again (tens of
    thousands of faults per 100 photos). Allocations up to 32 MiB now come from the heap
    and up to 256 MiB of free heap is kept. Once per process; glibc only.
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 * 1024 * 1024)  # M_TRIM_THRESHOLD


def _yield_to_inference() -> None:
    """Run this helper thread (intake, decode, load) at a lower CPU priority than inference.

    They only have to stay ahead of the detectors (bounded queues); at equal priority they take
    cores from onnxruntime's threads mid-run and every model call waits for its slowest
    thread. Linux schedules threads as tasks, so this nices only this thread (and the threads
    it starts, such as DuckDB's for the connection it opens).
    """
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), DECODE_NICE)


def bounded_map(
    pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T], depth: int
) -> Iterator[R]:
    """``pool.map`` in order, with at most ``depth`` results computed ahead of the consumer."""
    it = iter(items)
    pending: deque[Future[R]] = deque()
    for item in it:
        pending.append(pool.submit(fn, item))
        if len(pending) >= depth:
            break
    while pending:
        fut = pending.popleft()
        for item in it:
            pending.append(pool.submit(fn, item))
            break
        yield fut.result()
