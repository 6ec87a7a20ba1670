"""The Label page's queries (marts only, through dashboard/queries.py's read-only reads) and
its "train now" process.

* :func:`screen`: the next box of marts.fct_label_queue (one unlabelled box per burst, least
  certain first) and the unlabelled crops most like it, by the cosine similarity of their
  cached embeddings as their sketches estimate it (models_ml/similarity.py: 128 floats, the
  estimate within ~0.04 of the exact figure near the page's threshold). Ranking on the full
  1280-d vectors, even only the top candidates, reads every embedding of the warehouse
  (~75 ms at 100k crops, bench/label_loop.py); the person looking at the crops is the check;
* :func:`head_reports`: the newest head's held-out report and the one before it;
* :func:`start_training` / :func:`training_state`: ``trapflow train-now`` as a process of its
  own (a Prefect flow run), its progress read from a JSON file beside the warehouse.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import streamlit as st

from dashboard.queries import TTL_S, _read, _read_all

REPO = Path(__file__).resolve().parents[1]


class Screen(NamedTuple):
    """What one screen of the Label page shows."""

    head: pd.DataFrame  # the box asked about (one row; none: nothing left), with its file
    open_bursts: int  # bursts nobody has labelled (of the site)
    group: pd.DataFrame  # the unlabelled crops most like it, most alike first
    stats: pd.DataFrame  # boxes, searchable (a sketch), labelled


_HEAD = (
    "with q as (select *, count(*) over () as open_bursts from marts.fct_label_queue "
    "where (? is null or site_id = ?) order by queue_rank limit ?) "
    "select q.queue_rank, q.detection_id, q.media_id, q.site_id, q.camera_id, q.burst_id, "
    "q.label, q.label_source, q.confidence, q.classifier_label, q.classifier_probability, "
    "q.uncertainty, q.bbox_x, q.bbox_y, q.bbox_w, q.bbox_h, q.captured_at, m.source_uri, "
    "m.file_path, q.open_bursts from q join marts.dim_media as m using (media_id) "
    "order by q.queue_rank"
)
_GROUP = (
    "with target as (select detection_id, embedder, sketch from marts.fct_label_crops "
    "where detection_id = ? and sketch is not null), "
    "near as (select c.detection_id, c.media_id, c.burst_id, c.label, c.bbox_x, c.bbox_y, "
    "c.bbox_w, c.bbox_h, array_inner_product(c.sketch, (select sketch from target)) "
    "as similarity from marts.fct_label_crops as c "
    "where c.embedder = (select embedder from target) and not c.is_labelled "
    "and c.detection_id != ? order by similarity desc, c.detection_id limit ?) "
    "select near.*, m.source_uri, m.file_path from near join marts.dim_media as m "
    "using (media_id) where near.similarity >= ? order by near.similarity desc, "
    "near.detection_id"
)
_STATS = (
    "select count(*) as boxes, count(sketch) as searchable, "
    "count(*) filter (where is_labelled) as labelled from marts.fct_label_crops"
)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def screen(
    warehouse: str,
    site: str | None,
    skipped: tuple[str, ...],
    min_similarity: float,
    limit: int = 16,
) -> Screen:
    """The queue's next box (not ``skipped``), how many bursts are open, its group (the
    unlabelled crops whose estimated cosine similarity is >= ``min_similarity``; empty when
    the box has no cached embedding or ``limit`` is 0) and the counts, on one connection:
    one label costs one write and one read (bench/label_loop.py)."""

    def group_of(frames: list[pd.DataFrame]) -> list[tuple[str, list[Any]]]:
        heads = frames[0]
        todo = heads[~heads["detection_id"].isin(skipped)] if not heads.empty else heads
        head = str(todo["detection_id"].iloc[0]) if not todo.empty else ""
        return [(_GROUP, [head, head, limit, min_similarity]), (_STATS, [])]

    heads, group, stats = _read_all(
        warehouse, [(_HEAD, [site, site, len(skipped) + 1])], then=group_of
    )
    todo = heads[~heads["detection_id"].isin(skipped)] if not heads.empty else heads
    open_bursts = int(heads["open_bursts"].iloc[0]) if not heads.empty else 0
    return Screen(todo.head(1), open_bursts, group, stats)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def people(warehouse: str, media_ids: tuple[str, ...]) -> pd.DataFrame:
    """Every person box of these photos (blurred on the crops, as on the Review page)."""
    return _read(
        warehouse,
        "select media_id, bbox_x, bbox_y, bbox_w, bbox_h from marts.fct_detections "
        "where category = 'person' and media_id in (select unnest(?::varchar[]))",
        [list(media_ids)],
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def head_reports(warehouse: str) -> pd.DataFrame:
    """The newest species head's report and the one before it (report_rank 1, 2)."""
    return _read(
        warehouse,
        "select model_id, trained_at, split, n_train, n_validation, accuracy, "
        "baseline_accuracy, macro_f1, labels, per_class, confusion, excluded_classes, "
        "report_rank from marts.fct_head_reports where task = 'species' and report_rank <= 2 "
        "order by report_rank",
    )


def clear() -> None:
    """Forget this page's cached reads (after a label, an undo or a training)."""
    for fn in (screen, people, head_reports):
        fn.clear()


def per_class(report: pd.Series) -> pd.DataFrame:
    """One report's per-species precision, recall, F1 and support as a table."""
    rows = json.loads(report["per_class"]) if isinstance(report["per_class"], str) else []
    return pd.DataFrame(rows, columns=["label", "precision", "recall", "f1", "support"])


def confusion(report: pd.Series) -> pd.DataFrame:
    """One report's confusion matrix: rows true species, columns predicted."""
    labels = [str(x) for x in report["labels"]]
    matrix = json.loads(report["confusion"]) if isinstance(report["confusion"], str) else []
    return pd.DataFrame(matrix, index=labels, columns=labels)


# ---------------------------------------------------------------- train now


def progress_path(warehouse: str, command: str = "train-now") -> Path:
    """Where ``trapflow <command>`` started from here keeps its state for this warehouse
    (``train-now`` writes its progress there)."""
    wh = Path(warehouse)
    return wh.with_name(f"{wh.name}.{command}.json")


def training_state(warehouse: str, command: str = "train-now") -> dict[str, Any]:
    """The last started ``command``'s progress ({} when none ran); a process that died before
    saying it finished shows failed (``marts`` never says so: its end is marts_freshness)."""
    try:
        path = progress_path(warehouse, command)
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    pid = state.get("pid")
    if state.get("status") in ("starting", "running") and pid and not _alive(int(pid)):
        log = path.with_suffix(".log")
        tail = log.read_text(encoding="utf-8", errors="replace")[-400:] if log.exists() else ""
        state = {**state, "status": "failed", "error": tail.strip() or "the process stopped"}
    return state


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a child that exited is a zombie until reaped: reap it
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # not our child (another session started it): kill(0) said it is there
    return done == 0


def start_training(warehouse: str) -> None:
    """``trapflow train-now`` on ``warehouse`` in the background; progress in progress_path."""
    start_command(warehouse, "train-now", "--progress-file", str(progress_path(warehouse)))


def start_marts_rebuild(warehouse: str) -> None:
    """``trapflow marts`` on ``warehouse`` in the background (the Time problems page's Accept);
    the marts read stale (marts_freshness) until it has finished."""
    start_command(warehouse, "marts")


def start_command(warehouse: str, command: str, *args: str) -> None:
    """``trapflow <command> --warehouse <warehouse> <args>`` as a process of its own (no
    Prefect in the dashboard's process); its output in progress_path's .log, its pid in the
    state file (training_state reads it)."""
    path = progress_path(warehouse, command)
    log = path.with_suffix(".log")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", command, "--warehouse", warehouse, *args],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    state = {"status": "starting", "step": "start", "percent": 0.0, "pid": proc.pid,
             "started_at": time.time()}  # fmt: skip
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, path)
