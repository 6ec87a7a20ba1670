"""Event counts in the marts equal an independent Python computation over the raw rows of a
real ingest of the sample images (no dbt code reused: thresholds, per-image people, the
whole-image human labels and the 30-minute fixed-window rule are re-implemented here from
their definitions)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conftest import query

THRESHOLDS = {"animal": 0.25, "person": 0.5, "vehicle": 0.5}
COUNTING_MODEL = {"animal": "mdlite_yolox_tiny", "person": "yolox_nano_coco",
                  "vehicle": "yolox_nano_coco"}  # fmt: skip
CUE_MODEL = "mobilenetv2_12_int8_imagenet"
INTERVAL = timedelta(minutes=30)


def python_events(warehouse: Any) -> dict[tuple[str, str, str], list[tuple[datetime, int]]]:
    """(site, category, label) -> [(event start, MaxN)] from raw.media and raw.detections."""
    media = {
        media_id: (site, captured_at)
        for media_id, site, captured_at in query(
            warehouse, "select media_id, site_id, captured_at from raw.media"
        )
        if captured_at is not None
    }
    latest: dict[tuple[str, str], tuple[datetime, str]] = {}
    boxes = query(
        warehouse,
        "select media_id, model_name, model_version, category, label, confidence, detected_at,"
        " frame_number from raw.detections",
    )
    for media_id, model, version, *_, detected_at, _frame in boxes:
        key = (media_id, model)
        latest[key] = max(latest.get(key, (detected_at, version)), (detected_at, version))
    # a video clip counts per sampled frame (frame_number; None for stills), then MaxN over frames
    per_frame: dict[tuple[str, Any, str, str], int] = defaultdict(int)
    cue: dict[tuple[str, Any], int] = defaultdict(int)
    for media_id, model, version, category, label, confidence, _, frame in boxes:
        if media_id not in media or latest[(media_id, model)][1] != version:
            continue
        if confidence < THRESHOLDS[category]:
            continue
        if model == CUE_MODEL and category == "person":
            cue[(media_id, frame)] += 1
        elif COUNTING_MODEL[category] == model:
            lab = "person" if category == "person" else label
            per_frame[(media_id, frame, category, lab)] += 1
    per_image: dict[tuple[str, str, str], int] = defaultdict(int)
    for (media_id, _, category, label), n in per_frame.items():
        per_image[(media_id, category, label)] = max(per_image[(media_id, category, label)], n)
    for (media_id, _), n in cue.items():  # people: the larger of the two sources, per image
        key = (media_id, "person", "person")
        per_image[key] = max(per_image.get(key, 0), n)
    # a human label of the whole image (here: the camtrapR species tags, XMP keywords, that
    # came in with the run) replaces the model's boxes of its category; individuals = the
    # counted boxes of that category, else 1
    human = set(query(warehouse, "select media_id, category, label from raw.media_labels"))
    assert len({m for m, _, _ in human}) == len(human)  # one label a photo: nothing to resolve
    for media_id, category, label in human:
        boxes_n = sum(n for (m, _, c, _), n in per_frame.items() if m == media_id and c == category)
        for key in [k for k in per_image if k[0] == media_id and k[1] == category]:
            del per_image[key]
        per_image[(media_id, category, label)] = boxes_n or 1
    series: dict[tuple[str, str, str], list[tuple[datetime, int]]] = defaultdict(list)
    for (media_id, category, label), n in per_image.items():
        site, captured_at = media[media_id]
        series[(site, category, label)].append((captured_at, n))
    events: dict[tuple[str, str, str], list[tuple[datetime, int]]] = {}
    for key, records in series.items():
        out: list[list[Any]] = []
        for captured_at, n in sorted(records):
            if out and captured_at - out[-1][0] < INTERVAL:
                out[-1][1] = max(out[-1][1], n)
            else:
                out.append([captured_at, n])
        events[key] = [(start, maxn) for start, maxn in out]
    return events


def test_event_counts_equal_a_python_computation_over_raw(sample_run: dict[str, Any]) -> None:
    warehouse = sample_run["warehouse"]
    if query(warehouse, "select count(*) from raw.classifications")[0][0]:
        pytest.skip("a species classifier relabelled boxes; this check covers detector labels")
    expected = python_events(warehouse)
    got: dict[tuple[str, str, str], list[tuple[datetime, int]]] = defaultdict(list)
    for site, category, label, started_at, max_count in query(
        warehouse,
        "select site_id, category, label, event_started_at, max_count from marts.fct_events"
        " order by event_started_at",
    ):
        got[(site, category, label)].append((started_at, max_count))
    assert sum(len(v) for v in expected.values()) > 20  # the samples do hold many events
    assert dict(got) == expected
    daily = query(
        warehouse,
        "select site_id, category, label, sum(events) from marts.fct_daily_population group by all"
        " having sum(events) > 0",
    )
    assert {(s, c, lb): n for s, c, lb, n in daily} == {k: len(v) for k, v in expected.items()}
