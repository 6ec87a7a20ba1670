"""Alerts count what the marts count: the rules come from dbt (marts.live_detections), so a
review or a threshold var changes an alert exactly as it changes the marts."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from flows.alerts import engine as _alerts
from flows.alerts import live as _live
from flows.settings import AlertRule, Settings
from flows.store import warehouse as _warehouse
from flows.store.dbt import run_dbt

HUMAN = "google__cameratrapai/test_data/human.jpg"
T0 = datetime(2024, 1, 21, 15, 19, 15)
CATEGORY_IDS = {"animal": 1, "person": 2, "vehicle": 3}
RULES = [AlertRule(name="human", kind="human", min_confidence=0.5)]


def _settings(warehouse: Path, **kw: Any) -> Settings:
    url = SecretStr("json://127.0.0.1:9/x")
    return Settings(warehouse=warehouse, alert_urls=url, alert_rules=RULES, **kw)


def _seed(
    settings: Settings, camtrap_dir: Path, boxes: dict[str, tuple[str, str, str, float]]
) -> None:
    """One image per entry (site S<i>, so no burst folds them), one box each."""
    with _warehouse.connect(settings.warehouse_path) as con:
        _warehouse.ensure_schema(con)
        for i, (media_id, (model, category, label, conf)) in enumerate(boxes.items()):
            con.execute(
                "insert into raw.media (media_id, source_uri, file_path, file_name, "
                "file_extension, file_size, media_type, site_id, camera_id, captured_at, "
                "timestamp_source, run_id, ingested_at) values "
                "(?, ?, ?, 'human.jpg', 'jpg', 1, 'image', ?, 'C1', ?, 'exif', 'run1', now())",
                [media_id, str(camtrap_dir), HUMAN, f"S{i}", T0],
            )
            con.execute(
                "insert into raw.detections (detection_id, media_id, model_name, "
                "model_version, category, category_id, label, confidence, bbox_x, bbox_y, "
                "bbox_w, bbox_h, frame_number, run_id, detected_at) values "
                "(?, ?, ?, '1', ?, ?, ?, ?, 0.5, 0.4, 0.1, 0.2, null, 'run1', now())",
                [f"{media_id}-0", media_id, model, category, CATEGORY_IDS[category], label, conf],
            )


def _review(settings: Settings, media_id: str, detection_id: str | None, **kw: Any) -> None:
    with _warehouse.connect(settings.warehouse_path) as con:
        con.execute(
            "insert into review.labels (label_id, media_id, detection_id, category, label, "
            "is_false_positive, reviewer, reviewed_at) values (?, ?, ?, ?, ?, ?, 'tester', now())",
            [f"r-{media_id}", media_id, detection_id, kw.get("category"), kw.get("label"),
             kw.get("false_positive", False)],
        )  # fmt: skip


def _alerted(settings: Settings) -> set[str]:
    with _warehouse.connect(settings.warehouse_path, read_only=True) as con:
        rows = con.execute("select media_id from alerts.outbox where kind = 'alert'").fetchall()
    return {r[0] for r in rows}


@pytest.mark.slow  # one real dbt build (the marts the alerts must agree with)
def test_reviews_change_alerts_exactly_as_they_change_the_marts(
    tmp_path: Path, camtrap_dir: Path
) -> None:
    settings = _settings(tmp_path / "alerts.duckdb")  # a file named after a schema, too
    _seed(
        settings,
        camtrap_dir,
        {
            "kept": ("yolox_nano_coco", "person", "person", 0.8),
            "box_fp": ("yolox_nano_coco", "person", "person", 0.8),  # the box: no person
            "image_fp": ("yolox_nano_coco", "person", "person", 0.8),  # the image: blank
            "relabelled": ("mdlite_yolox_tiny", "animal", "animal", 0.9),  # it was a person
        },
    )
    _review(settings, "box_fp", "box_fp-0", false_positive=True)
    _review(settings, "image_fp", None, category="blank")
    _review(settings, "relabelled", "relabelled-0", category="person", label="person")
    result = _alerts.queue_alerts(settings, "run1")
    assert result.alerts == 2
    assert _alerted(settings) == {"kept", "relabelled"}
    run_dbt(settings, "build")  # the marts, built from the same rows and reviews
    with _warehouse.connect(settings.warehouse_path, read_only=True) as con:
        counted = {
            r[0]
            for r in con.execute(
                "select media_id from marts.fct_detections where is_counted and category = 'person'"
            ).fetchall()
        }
        people = {
            r[0]
            for r in con.execute("select media_id from marts.dim_media where has_person").fetchall()
        }
        disagree = con.execute(
            "select l.detection_id from marts.live_detections l "
            "join marts.fct_detections f using (detection_id) "
            "where l.is_counted != f.is_counted or l.category != f.category "
            "or l.label != f.label or l.label_source != f.label_source"
        ).fetchall()
    assert counted == people == _alerted(settings)
    assert disagree == []


def test_the_dbt_threshold_var_changes_what_alerts_count(tmp_path: Path, camtrap_dir: Path) -> None:
    boxes = {"faint": ("yolox_nano_coco", "person", "person", 0.6)}
    default = _settings(tmp_path / "a" / "w.duckdb")
    _seed(default, camtrap_dir, boxes)
    assert _alerts.queue_alerts(default, "run1").alerts == 1  # person threshold 0.5
    strict = _settings(
        tmp_path / "b" / "w.duckdb",
        detection_thresholds={"animal": 0.25, "person": 0.65, "vehicle": 0.5},
    )
    _seed(strict, camtrap_dir, boxes)
    assert _alerts.queue_alerts(strict, "run1").alerts == 0  # below the marts' threshold
    # the views of a file follow its settings: re-made when the vars differ
    with _warehouse.connect(strict.warehouse_path) as con:
        assert _live.is_current(con, strict) and not _live.is_current(con, default)
        assert _live.ensure_live_views(con, default)
        (verdict,) = con.execute("select is_recorded from marts.live_detections").fetchone() or ()
        assert verdict is True and _live.is_current(con, default)


def test_a_sensitive_label_found_by_review_generalises_the_site(
    tmp_path: Path, camtrap_dir: Path
) -> None:
    settings = _settings(tmp_path / "raw.duckdb")
    _seed(settings, camtrap_dir, {"rock": ("mdlite_yolox_tiny", "animal", "rhino", 0.9)})
    with _warehouse.connect(settings.warehouse_path) as con:
        _live.ensure_live_views(con, settings)
        assert con.execute(
            "select site_id from marts.live_sites where is_sensitive"
        ).fetchall() == [("S0",)]
    _review(settings, "rock", "rock-0", category="animal", label="impala")  # not a rhino
    with _warehouse.connect(settings.warehouse_path) as con:
        from flows.access.privacy import sensitive_site_ids, sensitive_sites

        assert sensitive_site_ids(con) == set()
        assert sensitive_sites(con, ("impala",)) == {"S0"}
