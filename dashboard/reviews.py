"""The dashboard's only writes: review.labels rows (the Review and Label pages, and the Label
page's undo of the rows it just wrote) and review.clock_shifts rows (the Time problems page).
Through dashboard/queries.py's ``_write`` (the one connection that may write, waiting while a
run holds the file); dbt reads them at the next build (the latest review of a box wins).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

import pandas as pd

from dashboard.queries import _write, marts_freshness, time_problems
from flows.store import ids

__all__ = ["Review", "accept_clock_shift", "undo_reviews", "write_review", "write_reviews"]


def write_review(
    warehouse: str,
    *,
    media_id: str,
    detection_id: str | None,
    category: str | None,
    label: str | None,
    is_false_positive: bool,
    reviewer: str,
    count: int | None = None,
    note: str | None = None,
) -> str:
    """Append one row to review.labels (append-only: the latest row per box wins); returns its
    id. Waits up to WRITE_WAIT_S while a run holds the warehouse."""
    row = Review(media_id, detection_id, category, label, is_false_positive, count, note)
    return write_reviews(warehouse, [row], reviewer=reviewer)[0]


class Review(NamedTuple):
    """One label a person gives: of a box (detection_id), or of the whole image (None)."""

    media_id: str
    detection_id: str | None
    category: str | None
    label: str | None
    is_false_positive: bool = False
    individuals: int | None = None
    note: str | None = None


def write_reviews(warehouse: str, reviews: list[Review], *, reviewer: str) -> list[str]:
    """Append one review.labels row per review, all in one transaction (the Label page's
    group: one review per box); returns their ids, in order."""
    label_ids = [ids.new_review_label_id() for _ in reviews]
    now = datetime.now(UTC).replace(tzinfo=None)
    _write(
        warehouse,
        "insert into review.labels (label_id, media_id, detection_id, category, label, "
        "is_false_positive, count, reviewer, reviewed_at, note) "
        "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [i, *r[:6], reviewer or "dashboard", now, r.note]
            for i, r in zip(label_ids, reviews, strict=True)
        ],
        "save the review",
    )
    return label_ids


def undo_reviews(warehouse: str, label_ids: list[str]) -> None:
    """Take back reviews this session just wrote (the Label page's Undo): the rows go, so the
    boxes read as they did before."""
    _write(
        warehouse,
        "delete from review.labels where label_id = ?",
        [[i] for i in label_ids],
        "undo the review",
    )


def accept_clock_shift(warehouse: str, problem: pd.Series, *, accepted_by: str) -> None:
    """One review.clock_shifts row for a proposal of marts.fct_time_problems: the shift is
    added to the camera's time of every photo of its site and camera at the next build."""
    _write(
        warehouse,
        "insert into review.clock_shifts (shift_id, site_id, camera_id, shift_months, "
        "shift_days, shift_micros, shift_text, problem_kind, accepted_by, accepted_at) "
        "values (?, ?, ?, 0, 0, ?, ?, ?, ?, ?)",
        [[ids.new_review_shift_id(), problem["site_id"], problem["camera_id"],
          int(problem["proposed_shift_s"]) * 1_000_000, problem["proposed_shift_text"],
          problem["kind"], accepted_by or "dashboard", datetime.now(UTC).replace(tzinfo=None)]],
        "accept the clock shift",
    )  # fmt: skip
    time_problems.clear()
    marts_freshness.clear()  # the station tables changed: the marts read stale at once
