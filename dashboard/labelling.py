"""The Label page's queries (marts only, through dashboard/queries.py's read-only reads) and
its "train now" process.

* :func:`queue`: marts.fct_label_queue, one unlabelled box per burst, least certain first;
* :func:`similar`: the unlabelled crops most like one box. The sketches
  (models_ml/similarity.py, 128 floats) pick ``CANDIDATES`` candidates fast, then the full
  embeddings rank and threshold them (``list_cosine_similarity``), so what the page shows
  is exact;
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
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.queries import TTL_S, _read, _read_all

REPO = Path(__file__).resolve().parents[1]
CANDIDATES = 8  # sketch candidates per crop shown: ranked again on the full embeddings


@st.cache_data(ttl=TTL_S, show_spinner=False)
def queue(warehouse: str, site: str | None, limit: int = 50) -> tuple[pd.DataFrame, int]:
    """(the next ``limit`` boxes to label, in queue order, with their photo's file; how many
    bursts are open)."""
    where, params = ("where q.site_id = ?", [site]) if site else ("", [])
    head, count = _read_all(
        warehouse,
        [
            (
                "select q.queue_rank, q.detection_id, q.media_id, q.site_id, q.camera_id, "
                "q.burst_id, q.label, q.label_source, q.confidence, q.classifier_label, "
                "q.classifier_probability, q.uncertainty, q.bbox_x, q.bbox_y, q.bbox_w, "
                "q.bbox_h, q.captured_at, m.source_uri, m.file_path "
                "from marts.fct_label_queue as q join marts.dim_media as m using (media_id) "
                f"{where} order by q.queue_rank limit ?",
                [*params, limit],
            ),
            (f"select count(*) as n from marts.fct_label_queue as q {where}", params),
        ],
    )
    return head, int(count["n"].iloc[0]) if not count.empty else 0


@st.cache_data(ttl=TTL_S, show_spinner=False)
def similar(
    warehouse: str, detection_id: str, min_similarity: float, limit: int = 16
) -> pd.DataFrame:
    """The unlabelled crops most like ``detection_id``'s (cosine similarity of the cached
    embeddings >= ``min_similarity``), most alike first, with their photo's file; empty
    when the box has no cached embedding."""
    return _read(
        warehouse,
        "with target as (select embedder, sketch, embedding from marts.fct_label_crops "
        "where detection_id = ? and sketch is not null order by embedder limit 1), "
        "candidates as (select c.detection_id, c.media_id, c.burst_id, c.label, c.bbox_x, "
        "c.bbox_y, c.bbox_w, c.bbox_h, c.embedding from marts.fct_label_crops as c, target "
        "as t where c.embedder = t.embedder and not c.is_labelled and c.detection_id != ? "
        "order by array_inner_product(c.sketch, t.sketch) desc limit ?), "
        "scored as (select c.*, list_cosine_similarity(c.embedding, t.embedding) as "
        "similarity from candidates as c, target as t) "
        "select s.detection_id, s.media_id, s.burst_id, s.label, s.bbox_x, s.bbox_y, s.bbox_w, "
        "s.bbox_h, s.similarity, m.source_uri, m.file_path from scored as s "
        "join marts.dim_media as m using (media_id) where s.similarity >= ? "
        "order by s.similarity desc, s.detection_id limit ?",
        [detection_id, detection_id, limit * CANDIDATES, min_similarity, limit],
    )


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
def crop_stats(warehouse: str) -> pd.DataFrame:
    """How many animal boxes there are, how many can be grouped (a cached embedding and
    sketch) and how many carry a human label."""
    return _read(
        warehouse,
        "select count(distinct detection_id) as boxes, count(distinct detection_id) "
        "filter (where sketch is not null) as searchable, count(distinct detection_id) "
        "filter (where is_labelled) as labelled from marts.fct_label_crops",
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
    for fn in (queue, similar, crop_stats, head_reports):
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


def progress_path(warehouse: str) -> Path:
    """Where ``trapflow train-now`` writes its progress for this warehouse."""
    wh = Path(warehouse)
    return wh.with_name(wh.name + ".train-now.json")


def training_state(warehouse: str) -> dict[str, Any]:
    """The last train now's progress ({} when none ran); a process that died shows failed."""
    try:
        state: dict[str, Any] = json.loads(progress_path(warehouse).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    pid = state.get("pid")
    if state.get("status") in ("starting", "running") and pid and not _alive(int(pid)):
        log = progress_path(warehouse).with_suffix(".log")
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
    path = progress_path(warehouse)
    log = path.with_suffix(".log")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "train-now", "--warehouse", warehouse,
             "--progress-file", str(path)],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    state = {"status": "starting", "step": "start", "percent": 0.0, "pid": proc.pid,
             "started_at": time.time()}  # fmt: skip
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, path)
