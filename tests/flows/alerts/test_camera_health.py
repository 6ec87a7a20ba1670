"""Live camera health against real endpoints on loopback (the JSON webhook sink): a camera that
has gone silent longer than its usual gap (marts.live_camera_gaps) alerts once per silence
episode, and a digest channel gets one message a day with the counts while a normal channel
still gets one per photo."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flows.alerts import engine as _alerts
from flows.settings import AlertRule, ChannelOptions, Settings
from flows.store import ids
from flows.store import warehouse as _warehouse
from tests._servers import json_sink

HUMAN = "google__cameratrapai/test_data/human.jpg"
DAY1 = datetime(2024, 1, 21)
HEALTH = {"silent_camera_min_gaps": 5, "silent_camera_min_hours": 1.0,
          "silent_camera_gap_factor": 3.0}  # fmt: skip


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(warehouse=tmp_path / "w.duckdb", alert_backoff_s=60, **HEALTH, **kw)


def _seed(
    settings: Settings,
    camtrap_dir: Path,
    photos: list[tuple[str, str, datetime, list[tuple[str, str, str, float]]]],
    run_id: str = "run1",
) -> None:
    """raw.media (+ raw.detections) rows as a run loads them: (site, camera, at, boxes)."""
    with _warehouse.connect(settings.warehouse_path) as con:
        _warehouse.ensure_schema(con)
        for site, camera, at, boxes in photos:
            media_id = ids.media_id(f"{site}/{camera}/{at}".encode())
            con.execute(
                "insert into raw.media (media_id, source_uri, file_path, file_name, "
                "file_extension, file_size, media_type, site_id, camera_id, captured_at, "
                "timestamp_source, run_id, ingested_at) values "
                "(?, ?, ?, 'human.jpg', 'jpg', 1, 'image', ?, ?, ?, 'exif', ?, now())",
                [media_id, str(camtrap_dir), HUMAN, site, camera, at, run_id],
            )
            for j, (model, category, label, conf) in enumerate(boxes):
                con.execute(
                    "insert into raw.detections (detection_id, media_id, model_name, "
                    "model_version, category, category_id, label, confidence, bbox_x, bbox_y, "
                    "bbox_w, bbox_h, frame_number, run_id, detected_at) values (?, ?, ?, '1', "
                    "?, 1, ?, ?, 0.5, 0.4, 0.1, 0.2, null, ?, now())",
                    [f"{media_id}-{j}", media_id, model, category, label, conf, run_id],
                )


def _every(site: str, camera: str, start: datetime, hours: float, n: int) -> list[Any]:
    return [(site, camera, start + timedelta(hours=hours * i), []) for i in range(n)]


def _query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    con = _warehouse.open_file(settings.warehouse_path, read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_a_silent_camera_alerts_once_per_silence_episode(tmp_path, camtrap_dir) -> None:
    with json_sink() as sink:
        settings = _settings(
            tmp_path, alert_urls=f"json://127.0.0.1:{sink.port}/hook",
            alert_rules=[AlertRule(name="quiet", kind="silent")],
        )  # fmt: skip
        # C1: every 2 h until 22:00 -> silent after 04:00 next day (3 x 2 h); C2 every 2 h
        # until 06:00 next day; C3: two photos, no rhythm yet (never silent)
        _seed(settings, camtrap_dir, [
            *_every("S1", "C1", DAY1, 2, 12), *_every("S1", "C2", DAY1, 2, 16),
            *_every("S2", "C3", DAY1, 1, 2)])  # fmt: skip
        at = DAY1 + timedelta(days=1, hours=5)
        first = _alerts.queue_alerts(settings, "run1", now=at)
        assert (first.silent, first.alerts) == (1, 0)
        assert _alerts.deliver_alerts(settings).messages == 1
        (message,) = sink.wait_for(1)
        assert message["title"] == "Camera C1 at site S1 is silent"
        assert "2024-01-21 22:00:00" in message["message"] and "2.0 h" in message["message"]
        # the same episode on later polls: nothing new, nothing resent
        assert _alerts.queue_alerts(settings, "run2", now=at + timedelta(hours=1)).silent == 0
        assert _alerts.deliver_alerts(settings).messages == 0
        # a day later C2 has gone quiet too; C1's episode is still the one alerted
        later = _alerts.queue_alerts(settings, "run3", now=at + timedelta(days=1))
        assert later.silent == 1
        # C1 takes a photo (the episode ends), then falls silent again: a new episode, once
        # its usual gap (now 23.6 h: the 50 h gap joined its rhythm) x 3 has passed
        _seed(settings, camtrap_dir, [("S1", "C1", DAY1 + timedelta(days=3), [])], "run4")
        assert _alerts.queue_alerts(settings, "run4", now=at + timedelta(days=2)).silent == 0
        assert _alerts.queue_alerts(settings, "run5", now=at + timedelta(days=5)).silent == 1
        assert _alerts.deliver_alerts(settings).messages == 2
        assert [m["title"] for m in sink.wait_for(3)] == [
            "Camera C1 at site S1 is silent", "Camera C2 at site S1 is silent",
            "Camera C1 at site S1 is silent",
        ]  # fmt: skip
    gaps = dict(
        (camera, (usual, after))
        for camera, usual, after in _query(
            settings, "select camera_id, usual_gap_hours, silent_after from marts.live_camera_gaps"
        )
    )
    assert round(gaps["C1"][0], 1) == 23.6 and gaps["C2"][0] == 2.0 and gaps["C3"][1] is None


PERSON = [("yolox_nano_coco", "person", "person", 0.8)]


def _animal(label: str) -> list[tuple[str, str, str, float]]:
    return [("mdlite_yolox_tiny", "animal", label, 0.9)]


def test_a_digest_channel_gets_one_message_a_day_and_a_normal_channel_every_photo(
    tmp_path, camtrap_dir
) -> None:
    with json_sink() as normal, json_sink() as daily:
        channels = ["default", "daily"]
        settings = _settings(
            tmp_path,
            alert_urls=f"json://127.0.0.1:{normal.port}/now",
            alert_channels={"daily": f"json://127.0.0.1:{daily.port}/digest"},
            alert_channel_options={"Daily": ChannelOptions(digest=True)},
            alert_rules=[
                AlertRule(name="people", kind="human", channels=channels),
                AlertRule(name="animals", kind="label", labels={"impala": 0.5, "leopard": 0.5},
                          channels=channels),
                AlertRule(name="quiet", kind="silent", channels=["daily"]),
            ],
        )  # fmt: skip
        _seed(
            settings, camtrap_dir, [("S2", "C2", datetime(2023, 6, 1), _animal("impala"))], "run0"
        )  # fmt: skip: impala was seen before; leopard never
        _seed(settings, camtrap_dir, [
            ("S1", "C1", DAY1 + timedelta(hours=8), PERSON),
            ("S1", "C1", DAY1 + timedelta(hours=8, minutes=1), PERSON),  # a burst
            ("S2", "C2", DAY1 + timedelta(hours=3), _animal("impala")),
            ("S2", "C2", DAY1 + timedelta(hours=9), _animal("impala")),
            ("S3", "C3", DAY1 + timedelta(hours=10), _animal("leopard")),
            *_every("S9", "C9", DAY1 - timedelta(days=2), 1, 8),  # silent since day 0
        ])  # fmt: skip
        evening = DAY1 + timedelta(hours=18)
        queued = _alerts.queue_alerts(settings, "run1", now=evening)
        assert (queued.alerts, queued.summaries, queued.silent, queued.digests) == (4, 1, 0, 0)
        assert queued.digest_items == 6  # 5 photos, 1 silent camera
        assert _alerts.deliver_alerts(settings).messages == 5
        assert len(normal.wait_for(5)) == 5 and daily.received == []
        # the day is over: one digest, and only one however often it runs
        for hours in (1, 2):
            next_day = DAY1 + timedelta(days=1, hours=hours)
            again = _alerts.queue_alerts(settings, "run1", now=next_day)
            assert (again.alerts, again.digests) == (0, 1 if hours == 1 else 0)
            _alerts.deliver_alerts(settings)
        (digest,) = daily.wait_for(1)
        assert len(normal.received) == 5
    assert digest["title"] == "trapflow daily digest 2024-01-21: 5 photos, 1 silent camera"
    body = digest["message"]
    assert "Photos per species:** impala 2, leopard 1" in body
    assert "New species:** leopard  " in body
    assert "People (photos per site):** S1 2" in body
    assert "Silent cameras:** S9/C9 (last photo 2024-01-19 07:00)" in body
    rows = _query(
        settings, "select kind, status, channels from alerts.outbox where kind = 'digest'"
    )
    assert rows == [("digest", "sent", "daily")]
