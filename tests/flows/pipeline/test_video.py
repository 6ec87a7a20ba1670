"""Video clips through the pipeline: per-frame boxes, per-clip marts, quarantine, alerts, annotate.

Uses the session ingest of the samples (its clips) and small clips generated with PyAV from
the sample stills, so nothing depends on one file.
"""

from __future__ import annotations

import io
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from flows.alerts import engine as _alerts
from flows.cli import app
from flows.pipeline import process as _process
from flows.pipeline.discovery import list_source
from flows.settings import AlertRule, Settings
from flows.store import warehouse as _warehouse
from flows.store.warehouse import open_file
from models_ml import video
from tests.conftest import query

CHIMP = "drivendataorg__zamba/tests/assets/densepose_tests/chimp.mp4"
PHONE = (
    "jniedballa__camtrapR/inst/pictures/sample_images_species_dir/StationA/PBE/20251112_100312.mp4"
)
HUMAN = "google__cameratrapai/test_data/human.jpg"


def _clip_from_still(still: Path, out: Path, seconds: int = 3, fps: int = 2) -> Path:
    img = Image.open(still).convert("RGB")
    img.thumbnail((960, 960))
    img = img.crop((0, 0, img.width - img.width % 2, img.height - img.height % 2))
    with av.open(str(out), "w", format="mp4") as container:
        container.metadata["creation_time"] = "2024-03-04T05:06:07Z"
        stream = container.add_stream(video.encoder(), rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = img.width, img.height, "yuv420p"
        for _ in range(seconds * fps):
            for packet in stream.encode(av.VideoFrame.from_image(img)):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out


def _red_pixels(img: Image.Image) -> int:
    a = np.asarray(img.convert("RGB")).astype(int)
    return int(((a[..., 0] > 200) & (a[..., 1] < 90) & (a[..., 2] < 90)).sum())


def test_sample_clips_are_ingested_per_frame(sample_run: dict[str, Any], camtrap_dir: Path) -> None:
    wh = sample_run["warehouse"]
    on_disk = {
        p.relative_to(camtrap_dir).as_posix()
        for p in camtrap_dir.rglob("*")
        if p.is_file() and video.is_video(p.name)
    }
    rows = query(wh, "select file_path from raw.media where media_type = 'video'")
    assert on_disk and {r[0] for r in rows} == on_disk
    if CHIMP not in on_disk:
        pytest.skip("chimp.mp4 is not in the sample data")
    ((media_id, fps, frames, sampled, duration, codec, w, h),) = query(
        wh,
        "select media_id, fps, frame_count, frames_sampled, duration_s, codec, width, height "
        "from raw.media where file_path = ?",
        [CHIMP],
    )
    assert (fps, frames, sampled, codec, w, h) == (30.0, 450, 15, "h264", 320, 180)
    assert duration == pytest.approx(15.0, abs=0.1)
    boxes = query(
        wh, "select frame_number, frame_time_s from raw.detections where media_id = ?", [media_id]
    )
    assert boxes and {f for f, _ in boxes} <= set(range(0, 450, 30))
    assert all(t == pytest.approx(f / 30, abs=0.01) for f, t in boxes)
    clip = query(
        wh,
        "select category, max_n, max_confidence, frames_with_detection, frames_sampled "
        "from marts.fct_clips where media_id = ?",
        [media_id],
    )
    animal = [r for r in clip if r[0] == "animal"]
    assert animal and 1 <= animal[0][1] <= 20 and animal[0][2] >= 0.25
    assert 1 <= animal[0][3] <= 15 and animal[0][4] == 15
    # MaxN, not a sum over frames: the clip's daily count is its busiest frame
    daily = query(
        wh,
        "select max(individuals) from intermediate.int_observations_per_image "
        "where media_id = ? and category = 'animal'",
        [media_id],
    ) if _has(wh, "int_observations_per_image") else [(animal[0][1],)]  # fmt: skip
    assert daily[0][0] is None or daily[0][0] <= animal[0][1] + 2
    if PHONE in on_disk:
        ((source, tag),) = query(
            wh, "select timestamp_source, timestamp_tag from raw.media where file_path = ?", [PHONE]
        )
        assert (source, tag) == ("container", "creation_time")


def _has(wh: Path, table: str) -> bool:
    sql = "select count(*) from information_schema.tables where table_name = ?"
    return bool(query(wh, sql, [table])[0][0])


@pytest.fixture(scope="module")
def person_clip(tmp_path_factory: pytest.TempPathFactory, camtrap_dir: Path) -> Path:
    return _clip_from_still(camtrap_dir / HUMAN, tmp_path_factory.mktemp("clip") / "person.mp4")


def test_clips_batch_quarantine_dedupe_and_alert_thumbnail(
    tmp_path: Path, trapflow_env: dict[str, str], person_clip: Path
) -> None:
    src = tmp_path / "card" / "siteV"
    src.mkdir(parents=True)
    shutil.copy(person_clip, src / "PERSON.MP4")
    shutil.copy(person_clip, src / "copy.mov")  # same bytes: one media row
    (src / "broken.avi").write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST garbage" * 10)
    (src / "empty.mp4").write_bytes(b"")
    settings = Settings(warehouse=tmp_path / "w.duckdb", source=str(tmp_path / "card"))
    with _warehouse.connect(settings.warehouse_path) as con:
        _warehouse.ensure_schema(con)
    model_dir = _process.ensure_pipeline_models(settings)
    listing = list_source(settings.source, settings.extensions)
    assert len(listing.media) == 4
    for run in ("r1", "r2"):
        ctx = _process.batch_context(settings, model_dir, listing.source_uri, run)
        stats = _process.process_batch(ctx, list(listing.media))
        if run == "r1":
            assert (stats.images, stats.duplicates, stats.quarantined) == (1, 1, 2)
    wh = settings.warehouse_path
    assert query(wh, "select count(*), min(media_type) from raw.media")[0] == (1, "video")
    reasons = dict(query(wh, "select file_path, reason from raw.quarantine"))
    assert reasons["siteV/broken.avi"] in ("corrupt_video", "no_video_stream")
    error = query(wh, "select error from raw.quarantine where file_path = 'siteV/broken.avi'")
    assert "card" in error[0][0]  # says what to do
    assert reasons["siteV/empty.mp4"] == "empty_file"
    sql = "select timestamp_source, frames_sampled from raw.media"
    assert query(wh, sql) == [("container", 3)]
    n = query(wh, "select count(*), count(distinct detection_id) from raw.detections")[0]
    assert n[0] == n[1] > 0  # the second run added nothing
    frames = query(
        wh,
        "select distinct frame_number, frame_time_s from raw.detections "
        "where category = 'person' and model_name = 'yolox_nano_coco' order by 1",
    )
    assert frames == [(0, 0.0), (2, 1.0), (4, 2.0)]

    with open_file(wh) as con:
        hits = _alerts.find_hits(
            con, "r1", [AlertRule(name="human", kind="human", min_confidence=0.5)]
        )
    assert len(hits) == 1 and hits[0].best >= 0.5
    jpeg = _alerts._hit_thumbnail(settings, hits[0])
    assert jpeg is not None
    thumb = Image.open(io.BytesIO(jpeg))
    assert thumb.format == "JPEG" and max(thumb.size) <= _alerts.THUMBNAIL_PX
    assert _red_pixels(thumb) > 50  # the person's box is drawn on the frame


def test_annotate_writes_boxes_on_every_sampled_frame(
    tmp_path: Path, trapflow_env: dict[str, str], person_clip: Path
) -> None:
    out = tmp_path / "out" / "annotated.mp4"
    result = CliRunner().invoke(app, ["annotate", str(person_clip), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "person" in result.output and "MaxN 1" in result.output
    info = video.probe(str(out))
    assert info.codec == ("h264" if video.encoder() == "libx264" else "mpeg4")
    annotated = list(video.sample_frames(str(out), rate=0))
    original = list(video.sample_frames(str(person_clip)))
    assert len(annotated) == len(original) == 3
    for a, o in zip(annotated, original, strict=True):
        assert _red_pixels(a.image) > _red_pixels(o.image) + 100

    bad = tmp_path / "bad.mov"
    bad.write_bytes(b"not a clip")
    result = CliRunner().invoke(app, ["annotate", str(bad)])
    assert result.exit_code == 1 and "not a readable video" in result.output


def test_remote_clips_are_streamed_through_fsspec(person_clip: Path) -> None:
    """Non-local sources (s3://, ...) hand PyAV an fsspec file object, hashed in chunks."""
    import hashlib

    import fsspec

    from flows.pipeline import video as _video

    fs = fsspec.filesystem("memory")
    data = person_clip.read_bytes()
    fs.pipe("/videocard/site/clip.mp4", data)
    try:
        digest, size = _video.sha256_stream("memory://videocard", "site/clip.mp4", chunk=4096)
        assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
        with _video.open_file("memory://videocard", "site/clip.mp4") as src:
            assert not isinstance(src, str)
            assert [f.frame_number for f in video.sample_frames(src)] == [0, 2, 4]
    finally:
        fs.rm("/videocard", recursive=True)
