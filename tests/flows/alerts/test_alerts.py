"""Alerts against real endpoints on loopback: SMTP (aiosmtpd) and a JSON webhook sink."""

from __future__ import annotations

import base64
import io
import logging
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import piexif
import pytest
from PIL import Image
from typer.testing import CliRunner

from flows.alerts import engine as _alerts
from flows.settings import AlertRule, Settings
from flows.store import warehouse as _warehouse
from flows.store.warehouse import open_file
from tests._servers import blackhole, free_port, json_sink, smtp_server
from tests.conftest import query

HUMAN = "google__cameratrapai/test_data/human.jpg"
TOKEN = "Tok3nSecretXYZ987"
PASSWORD = "Hunter2Passw0rd"


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(warehouse=tmp_path / "w.duckdb", alert_backoff_s=60, **kw)


def _seed(
    settings: Settings,
    camtrap_dir: Path,
    images: list[dict[str, Any]],
    run_id: str = "run1",
) -> None:
    """raw.media + raw.detections rows as a run would load them (the file is a real sample)."""
    with _warehouse.connect(settings.warehouse_path) as con:
        _warehouse.ensure_schema(con)
        for i, img in enumerate(images):
            media_id = img.get("media_id", f"m{i:03d}")
            con.execute(
                "insert into raw.media (media_id, source_uri, file_path, file_name, "
                "file_extension, file_size, media_type, site_id, camera_id, captured_at, "
                "timestamp_source, run_id, ingested_at) values "
                "(?, ?, ?, ?, 'jpg', 1, 'image', ?, ?, ?, 'exif', ?, now())",
                [media_id, str(camtrap_dir), img.get("file_path", HUMAN),
                 img.get("file_name", "human.jpg"), img.get("site", "S1"),
                 img.get("camera", "C1"), img["at"], run_id],
            )  # fmt: skip
            for j, (model, category, label, conf) in enumerate(img.get("boxes", [])):
                con.execute(
                    "insert into raw.detections (detection_id, media_id, model_name, "
                    "model_version, category, category_id, label, confidence, bbox_x, bbox_y, "
                    "bbox_w, bbox_h, frame_number, run_id, detected_at) "
                    "values (?, ?, ?, '1', ?, 2, ?, ?, "
                    "0.55, 0.45, 0.07, 0.25, null, ?, now())",
                    [f"{media_id}-{j}", media_id, model, category, label, conf, run_id],
                )


def _outbox(settings: Settings) -> list[tuple[Any, ...]]:
    with open_file(settings.warehouse_path, read_only=True) as con:
        return con.execute(
            "select kind, status, attempts, media_count, last_error, title, body "
            "from alerts.outbox order by created_at, kind"
        ).fetchall()


PERSON = [("yolox_nano_coco", "person", "person", 0.79)]
T0 = datetime(2024, 1, 21, 15, 19, 15)


# --------------------------------------------------------------------------- plain functions


def test_sanitize_defuses_markup_from_exif_and_file_names() -> None:
    nasty = "<script>alert(1)</script> [click](http://evil.example) *bold* <http://x|y>\n@here"
    clean = _alerts.sanitize(nasty)
    assert "<" not in clean and ">" not in clean and "\n" not in clean
    assert "[click](" not in clean and "*bold*" not in clean and "://" not in clean
    assert "&lt;script&gt;" in clean
    assert len(_alerts.sanitize("x" * 500)) <= _alerts.TEXT_LIMIT


def test_time_windows_wrap_midnight() -> None:
    night = ["18:00-06:00"]
    assert _alerts.in_windows(datetime(2024, 1, 1, 23, 0), night)
    assert _alerts.in_windows(datetime(2024, 1, 1, 5, 59), night)
    assert not _alerts.in_windows(datetime(2024, 1, 1, 12, 0), night)
    assert _alerts.in_windows(datetime(2024, 1, 1, 12, 0), [])
    with pytest.raises(_alerts.AlertConfigError, match="HH:MM-HH:MM"):
        _alerts.in_windows(datetime(2024, 1, 1), ["evening"])


def test_configured_urls_and_tokens_are_redacted_from_every_log_record(caplog) -> None:
    url = f"tgram://123456:{TOKEN}/987654/?key={PASSWORD}"
    _alerts.register_secrets([url])
    caplog.set_level(logging.DEBUG)
    logging.getLogger("apprise").warning("failed to send to %s", url)
    logging.getLogger("prefect.flow_runs").info("url=%s", f"json://u:{PASSWORD}@h.example/x")
    logging.getLogger("other").error("boom", exc_info=RuntimeError(f"token={TOKEN}"))
    assert TOKEN not in caplog.text and PASSWORD not in caplog.text
    assert "failed to send to" in caplog.text
    assert _alerts.redact_url(url) == "tgram://***/***"
    assert (
        _alerts.redact_url("json://u:p@127.0.0.1:8080/hook?x=1") == "json://***@127.0.0.1:8080/***"
    )


# --------------------------------------------------------------------------- real endpoints


def test_mailto_alert_arrives_with_thumbnail_and_site_camera_time(tmp_path, camtrap_dir) -> None:
    with smtp_server() as (port, messages):
        url = (
            f"mailto://127.0.0.1:{port}/ranger@example.org?from=trapflow@example.org&mode=insecure"
        )
        settings = _settings(tmp_path, alert_urls=url)
        _seed(settings, camtrap_dir, [{"at": T0, "site": "Kruger<b>N</b>", "camera": "cam_7",
                                       "boxes": PERSON}])  # fmt: skip
        queued = _alerts.queue_alerts(settings, "run1")
        assert (queued.queued, queued.alerts, queued.summaries) == (1, 1, 0)
        delivered = _alerts.deliver_alerts(settings)
        assert (delivered.sent, delivered.messages) == (1, 1)
    assert len(messages) == 1
    msg = messages[0]
    assert "Person at site Kruger" in msg["Subject"]
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html_part = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "2024-01-21 15:19:15" in text and "cam" in text and "0.79" in text
    assert "<b>N</b>" not in html_part  # folder names cannot inject markup
    assert "http://127.0.0.1:8501/?media_id=m000" in html_part
    (jpeg,) = [p for p in msg.iter_attachments() if p.get_content_type() == "image/jpeg"]
    thumb = Image.open(io.BytesIO(jpeg.get_content()))
    assert thumb.format == "JPEG" and max(thumb.size) == _alerts.THUMBNAIL_PX
    # the box is drawn: the box outline's pixels are red
    x, y = int(0.55 * thumb.width), int((0.45 + 0.125) * thumb.height)
    r, g, b = thumb.convert("RGB").getpixel((x, y))  # type: ignore[misc]
    assert r > 180 and g < 110 and b < 110
    assert _outbox(settings)[0][1] == "sent"


def test_endpoint_down_then_up_delivers_exactly_once_per_url(tmp_path, camtrap_dir) -> None:
    with json_sink() as up, json_sink() as flaky:
        flaky.stop()  # down: connection refused
        settings = _settings(
            tmp_path,
            alert_urls=f"json://127.0.0.1:{up.port}/a,json://u:{PASSWORD}@127.0.0.1:{flaky.port}/b/{TOKEN}",
            alert_timeout_s=2,
        )
        _seed(settings, camtrap_dir, [{"at": T0, "boxes": PERSON}])
        _alerts.queue_alerts(settings, "run1")
        first = _alerts.deliver_alerts(settings)
        assert (first.sent, first.retrying, first.messages) == (0, 1, 1)
        (_kind, status, attempts, _n, error, _t, _b), = _outbox(settings)  # fmt: skip
        assert (status, attempts) == ("pending", 1)
        assert "127.0.0.1" in error and TOKEN not in error and PASSWORD not in error
        flaky.start()  # back up, same port
        assert _alerts.deliver_alerts(settings).messages == 0  # backoff: not due yet
        later = _alerts.utcnow() + timedelta(hours=2)
        second = _alerts.deliver_alerts(settings, now=later)
        assert (second.sent, second.messages) == (1, 1)
        assert _alerts.deliver_alerts(settings, now=later + timedelta(hours=1)).messages == 0
        assert len(up.wait_for(1)) == 1 and len(flaky.wait_for(1)) == 1
        assert up.received[0]["title"].startswith("Person at site S1")
        assert up.received[0]["attachments"][0]["mimetype"] == "image/jpeg"
    assert [row[1] for row in _outbox(settings)] == ["sent"]


def test_a_hung_channel_costs_one_timeout_per_delivery_not_one_per_alert(
    tmp_path, camtrap_dir
) -> None:
    with blackhole() as (port, accepted):
        settings = _settings(tmp_path, alert_urls=f"json://127.0.0.1:{port}/x", alert_timeout_s=1)
        _seed(settings, camtrap_dir, [{"at": T0, "boxes": PERSON, "site": f"S{i}"}
                                      for i in range(5)])  # fmt: skip
        assert _alerts.queue_alerts(settings, "run1").alerts == 5
        started = time.monotonic()
        result = _alerts.deliver_alerts(settings)
        seconds = time.monotonic() - started
    assert (result.retrying, result.messages, len(accepted)) == (5, 0, 1)
    assert seconds < 2.5
    attempts = sorted(row[2] for row in _outbox(settings))
    assert attempts == [0, 0, 0, 0, 1]  # only the alert that really tried counts a try


def test_gives_up_after_max_attempts_and_stays_listable(tmp_path, camtrap_dir) -> None:
    settings = _settings(
        tmp_path, alert_urls=f"json://127.0.0.1:{free_port()}/x", alert_max_attempts=2,
        alert_timeout_s=1,
    )  # fmt: skip
    _seed(settings, camtrap_dir, [{"at": T0, "boxes": PERSON}])
    _alerts.queue_alerts(settings, "run1")
    later = _alerts.utcnow() + timedelta(days=1)
    assert _alerts.deliver_alerts(settings).retrying == 1
    assert _alerts.deliver_alerts(settings, now=later).failed == 1
    assert _alerts.deliver_alerts(settings, now=later + timedelta(days=1)).messages == 0
    (row,) = _alerts.list_outbox(settings)
    assert (row["status"], row["attempts"]) == ("failed", 2) and row["last_error"]


def test_rules_every_box_labels_sites_hours_and_idempotent_queue(tmp_path, camtrap_dir) -> None:
    rules = [
        AlertRule(name="human", kind="human", min_confidence=0.7, hours=["06:00-18:00"]),
        AlertRule(name="rhino", kind="label", labels={"Rhino": 0.5, "elephant": 0.9},
                  sites=["S1"]),
    ]  # fmt: skip
    settings = _settings(tmp_path, alert_urls="json://127.0.0.1:9/x", alert_rules=rules)
    _seed(
        settings,
        camtrap_dir,
        [
            # person only as the second box, from the apparel cue: every box counts
            {"at": T0, "boxes": [("mdlite_yolox_tiny", "animal", "animal", 0.9),
                                 ("mobilenetv2_12_int8_imagenet", "person", "rifle", 0.75)]},
            {"at": T0.replace(hour=23), "site": "S2", "boxes": PERSON},  # outside the hours
            {"at": T0, "site": "S3", "boxes": [("yolox_nano_coco", "person", "person", 0.6)]},
            {"at": T0, "boxes": [("yolox_nano_coco", "animal", "elephant", 0.8)]},  # < 0.9
            {"at": T0, "site": "S2", "boxes": [("mdlite_yolox_tiny", "animal", "rhino", 0.99)]},
            {"at": T0, "boxes": [("mdlite_yolox_tiny", "animal", "rhino", 0.95)]},  # a rock
        ],
    )  # fmt: skip
    with _warehouse.connect(settings.warehouse_path) as con:  # a species classifier's label
        con.execute(
            "insert into raw.classifications values ('c1', 'm003-0', 'm003', 'species_head', "
            "'1', 'rhino', 0.8, 1, 'allowed', 'run1', now())"
        )
        # repeat detections (static false positives) never alert, except for people
        for detection_id in ("m005-0", "m000-1"):
            con.execute(
                "insert into raw.detection_flags values (?, 'repeat_detection', 'k', 20, '', "
                "'run1', now())",
                [detection_id],
            )
    result = _alerts.queue_alerts(settings, "run1")
    rows = _outbox(settings)
    assert (result.alerts, result.summaries) == (2, 0)
    assert sorted(r[5].split(" at ")[0] for r in rows) == ["Person", "elephant, rhino"]
    rhino_body = next(r[6] for r in rows if r[5].startswith("elephant"))
    assert "rhino 0.80 (species\\_head)" in rhino_body
    assert "rifle 0.75 (mobilenetv2\\_12\\_int8\\_imagenet)" in next(
        r[6] for r in rows if r[5].startswith("Person")
    )
    again = _alerts.queue_alerts(settings, "run1")
    assert again.queued == 0 and len(_outbox(settings)) == 2


def test_no_url_no_alert_and_missing_channel(tmp_path, camtrap_dir) -> None:
    settings = _settings(tmp_path)
    _seed(settings, camtrap_dir, [{"at": T0, "boxes": PERSON}])
    assert _alerts.queue_alerts(settings, "run1").skipped_rules == ["human"]
    rules = [AlertRule(name="human", channels=["rangers"])]
    named = _settings(tmp_path, alert_rules=rules, alert_urls="json://127.0.0.1:9/x")
    assert _alerts.queue_alerts(named, "run1").skipped_rules == ["human"]


def test_population_rule_reads_variance_mart_or_skips_quietly(tmp_path, camtrap_dir) -> None:
    rules = [AlertRule(name="decline", kind="population", z_threshold=2.0)]
    settings = _settings(tmp_path, alert_urls="json://127.0.0.1:9/x", alert_rules=rules)
    _seed(settings, camtrap_dir, [{"at": T0}, {"at": T0, "site": "S2"}])
    assert _alerts.queue_alerts(settings, "run1").queued == 0  # no mart yet: quietly nothing
    with _warehouse.connect(settings.warehouse_path) as con:
        con.execute("create schema marts")
        con.execute(
            "create table marts.fct_population_variance as select * from (values "
            "(date '2024-01-21', 'impala', 'S1', -2.7, false),"
            "(date '2024-01-21', 'zebra', 'S1', 1.1, false),"
            "(date '2024-01-21', 'kudu', 'S2', 3.5, true),"  # low effort: not trusted
            "(date '2024-01-20', 'impala', 'S1', -4.0, false)"  # a day this run did not touch
            ") t(captured_on, label, site_id, z_score, is_low_effort)"
        )
    result = _alerts.queue_alerts(settings, "run1")
    assert result.anomalies == 1 and result.queued == 1
    (row,) = _outbox(settings)
    assert row[5] == "Population drop: impala at site S1" and "\\-2\\.70" not in row[6]
    assert "-2.70" in row[6]
    assert _alerts.queue_alerts(settings, "run1").queued == 0


def test_alerts_cli_test_and_list(tmp_path, camtrap_dir, monkeypatch) -> None:
    from flows.cli import _app as cli_app
    from flows.cli import app

    with json_sink() as sink:
        down = free_port()
        monkeypatch.setenv(
            "TRAPFLOW_ALERT_URLS",
            f"json://127.0.0.1:{sink.port}/hook/{TOKEN},json://u:{PASSWORD}@127.0.0.1:{down}/x",
        )
        monkeypatch.setenv("TRAPFLOW_ALERT_TIMEOUT_S", "2")
        # the CLI's console read COLUMNS when flows.cli was first imported (by whichever test)
        monkeypatch.setattr(cli_app.console, "_width", 200)
        monkeypatch.setenv("TRAPFLOW_WAREHOUSE", str(tmp_path / "w.duckdb"))
        runner = CliRunner()
        result = runner.invoke(app, ["alerts", "test"])
        assert result.exit_code == 1, result.output
        assert f"ok default: json://127.0.0.1:{sink.port}/***" in result.output
        assert f"FAILED default: json://***@127.0.0.1:{down}/***" in result.output
        assert TOKEN not in result.output and PASSWORD not in result.output
        assert sink.wait_for(1)[0]["title"] == "trapflow test alert"
        config = runner.invoke(app, ["config"])
        assert TOKEN not in config.output and PASSWORD not in config.output
        settings = Settings()
        _seed(settings, camtrap_dir, [{"at": T0, "boxes": PERSON}])
        _alerts.queue_alerts(settings, "run1")
        listed = runner.invoke(app, ["alerts", "list"])
        assert listed.exit_code == 0 and "pending" in listed.output and "human" in listed.output


# --------------------------------------------------------------------------- through the flow


def _burst(camtrap_dir: Path, folder: Path, count: int) -> None:
    """``count`` distinct JPEGs of the person photo at one camera, one minute apart."""
    folder.mkdir(parents=True)
    base = Image.open(camtrap_dir / HUMAN).convert("RGB")
    base = base.resize((base.width // 3, base.height // 3))
    for i in range(count):
        img = base.copy()
        img.putpixel((i, 0), (i, 255 - i, 7))  # distinct bytes, same picture
        stamp = (T0 + timedelta(minutes=i)).strftime("%Y:%m:%d %H:%M:%S").encode()
        exif = piexif.dump({"Exif": {piexif.ExifIFD.DateTimeOriginal: stamp}})
        img.save(folder / f"IMG_{i:04d}.jpg", quality=90, exif=exif)


@pytest.mark.slow
def test_burst_of_20_person_images_gives_one_alert_and_one_summary(
    prefect_harness, trapflow_env, camtrap_dir, tmp_path, monkeypatch
) -> None:
    from flows.ingest import ingest

    _burst(camtrap_dir, tmp_path / "cards" / "S9" / "C2", 20)
    with json_sink() as sink:
        monkeypatch.setenv("TRAPFLOW_ALERT_URLS", f"json://127.0.0.1:{sink.port}/burst")
        summary = ingest(source=str(tmp_path / "cards"), warehouse=str(tmp_path / "w.duckdb"),
                         layout="{site}/{camera}/...", build=False)  # fmt: skip
        assert summary.stats.images == 20
        received = list(sink.received)  # delivered within the run: no waiting
        # a second poll finds nothing new and sends nothing
        ingest(source=str(tmp_path / "cards"), warehouse=str(tmp_path / "w.duckdb"),
               layout="{site}/{camera}/...", build=False)  # fmt: skip
        assert len(sink.received) == 2
    assert len(received) == 2, [r["title"] for r in received]
    alert, follow_up = received
    assert alert["title"] == "Person at site S9, camera C2"
    assert len(alert["attachments"]) == 1
    assert base64.b64decode(alert["attachments"][0]["base64"])[:2] == b"\xff\xd8"
    assert follow_up["title"] == "Person at site S9: 19 more images"
    assert "2024\\-01\\-21 15:20:15 to 2024\\-01\\-21 15:38:15" not in follow_up["message"]
    assert "2024-01-21 15:20:15 to 2024-01-21 15:38:15" in follow_up["message"]


@pytest.mark.slow
def test_person_photo_dropped_into_watched_folder_reaches_the_webhook_without_leaking_urls(
    prefect_harness, trapflow_env, camtrap_dir, tmp_path, monkeypatch, caplog, capfd
) -> None:
    from flows.ingest import ingest

    watched = tmp_path / "watched"
    (watched / "Serengeti" / "cam01").mkdir(parents=True)
    warehouse = str(tmp_path / "w.duckdb")
    caplog.set_level(logging.DEBUG, logger="apprise")
    with json_sink() as sink:
        dead = free_port()
        monkeypatch.setenv(
            "TRAPFLOW_ALERT_URLS",
            f"json://127.0.0.1:{sink.port}/hook/{TOKEN},"
            f"json://admin:{PASSWORD}@127.0.0.1:{dead}/hook/{TOKEN}",
        )
        monkeypatch.setenv("TRAPFLOW_ALERT_TIMEOUT_S", "2")
        ingest(source=str(watched), warehouse=warehouse, layout="{site}/{camera}/...", build=False)
        assert sink.received == []  # nothing there yet, nothing sent
        (watched / "Serengeti" / "cam01" / "human.jpg").write_bytes(
            (camtrap_dir / HUMAN).read_bytes()
        )
        ingest(source=str(watched), warehouse=warehouse, layout="{site}/{camera}/...", build=False)
        (message,) = sink.wait_for(1)
    assert message["title"] == "Person at site Serengeti, camera cam01"
    ((best,),) = query(
        Path(warehouse), "select max(confidence) from raw.detections where label = 'person'"
    )
    assert best > 0.5  # yolox-nano sees the person (0.80 with OpenCV's letterbox)
    assert "2024-01-21 15:19:15" in message["message"]
    assert f"person {best:.2f}" in message["message"]
    assert sink.paths == [f"/hook/{TOKEN}"]  # the URL really carried the token
    out, err = capfd.readouterr()
    logs = caplog.text + out + err
    assert "apprise" in caplog.text.lower() or "json" in logs.lower()  # apprise did log
    assert TOKEN not in logs and PASSWORD not in logs


def test_urls_from_a_prefect_secret_block(prefect_harness, tmp_path) -> None:
    from prefect.blocks.system import Secret

    url = f"json://127.0.0.1:9/hook/{TOKEN}"
    Secret(value=f"{url}, mailto://127.0.0.1:9/a@example.org").save(
        "trapflow-alerts", overwrite=True
    )
    settings = _settings(tmp_path, alert_channels={"Rangers": "prefect-secret:trapflow-alerts"})
    assert _alerts.channel_urls(settings)["rangers"][0] == url
    missing = _settings(tmp_path, alert_channels={"x": "prefect-secret:no-such-block"})
    with pytest.raises(_alerts.AlertConfigError, match="no-such-block"):
        _alerts.channel_urls(missing)
