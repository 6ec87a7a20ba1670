"""A clip is a clip by its content: a type the user adds (ASF), or a clip under a name that
says nothing, goes through the clip path, never quarantined as "not a photo"."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import av
import pytest
from PIL import Image

from models_ml import video
from tests.conftest import query

pytestmark = pytest.mark.slow

ASF = (
    "drivendataorg__zamba/tests/assets/videos/data/raw/chimpandsee/Trip_5/card 1.2_location/"
    "PICT0074.ASF"
)
STILL = "agentmorris__MegaDetector/images/idaho-camera-traps.jpg"


def _asf_clip(camtrap_dir: Path, out: Path) -> Path:
    """The sample data's ASF trap clip, else one written here with PyAV (ASF container)."""
    if (camtrap_dir / ASF).is_file():
        shutil.copyfile(camtrap_dir / ASF, out)
        return out
    img = Image.open(camtrap_dir / STILL).convert("RGB").resize((160, 120))
    with av.open(str(out), "w", format="asf") as container:
        stream = container.add_stream("msmpeg4", rate=Fraction(1))
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for _ in range(3):
            for packet in stream.encode(av.VideoFrame.from_image(img)):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out


def test_clips_added_by_type_or_unnamed_are_ingested_as_clips(
    prefect_harness: None,
    trapflow_env: dict[str, str],
    camtrap_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.ingest import ingest

    card = tmp_path / "card" / "SITE1"
    card.mkdir(parents=True)
    clip = _asf_clip(camtrap_dir, card / "PICT0074.ASF")
    shutil.copyfile(clip, card / "PICT0075.dat")  # a clip whose name says nothing
    (card / "PICT0076.dat").write_bytes(clip.read_bytes()[:600])  # a clip cut inside its header
    shutil.copyfile(camtrap_dir / STILL, card / "IMG_0001.JPG")
    assert not video.is_video(clip.name)  # not a default clip type: recognised by content
    monkeypatch.setenv("TRAPFLOW_EXTENSIONS", "jpg,asf,dat")
    wh = tmp_path / "w.duckdb"
    ingest(source=str(tmp_path / "card"), warehouse=str(wh), build=False)

    media = query(
        wh,
        "select file_name, media_type, container_format, frames_sampled > 0 "
        "from raw.media order by file_name",
    )
    assert media == [
        ("IMG_0001.JPG", "image", None, None),
        ("PICT0074.ASF", "video", "asf", True),
    ]
    files = dict(query(wh, "select file_path, status from raw.media_files"))
    assert files["SITE1/PICT0075.dat"] == "duplicate"  # the same bytes: one clip
    reasons = query(wh, "select file_path, reason, error from raw.quarantine")
    assert [(p, r) for p, r, _ in reasons] == [("SITE1/PICT0076.dat", reasons[0][1])]
    assert reasons[0][1].endswith("_video")  # a broken clip, not "not an image"
    assert "extract frames" not in reasons[0][2]
    boxes = query(
        wh,
        "select count(*) from raw.detections d join raw.media m using (media_id) "
        "where m.media_type = 'video' and d.frame_number is not null",
    )
    assert boxes[0][0] >= 0  # frames went through the detectors (boxes or none)


def test_a_clip_is_known_by_its_first_bytes(camtrap_dir: Path) -> None:
    from flows.pipeline.intake import is_clip
    from flows.settings import MEDIA_EXTENSIONS

    head = (camtrap_dir / ASF).read_bytes()[:16] if (camtrap_dir / ASF).is_file() else b""
    asf_guid = b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9\x00\xaa\x00\x62\xce\x6c"
    assert is_clip("PICT0074.ASF", head or asf_guid)
    assert is_clip("x.bin", b"\x1a\x45\xdf\xa3" + bytes(12))  # Matroska / WebM
    assert is_clip("x.bin", b"\x00\x00\x00\x18ftypisom" + bytes(4))  # MP4 under any name
    assert is_clip("clip.MOV")  # the table of clip types, no bytes needed
    assert not is_clip("x.jpg", (camtrap_dir / STILL).read_bytes()[:16])
    assert not is_clip("x.heic", b"\x00\x00\x00\x18ftypheic" + bytes(4))  # a photo in ISO-BMFF
    assert set(video.VIDEO_EXTENSIONS) <= set(MEDIA_EXTENSIONS)  # listed by default
