"""models_ml.video: metadata, sampling (in order, by seeking), errors; generated + sample clips."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from models_ml import video

STILL = "google__cameratrapai/test_data/human.jpg"


def _ramp(n: int, size: tuple[int, int] = (96, 64)) -> Iterator[Image.Image]:
    """Frames whose grey level says which frame they are (0 .. 250 over the clip)."""
    for i in range(n):
        yield Image.new("RGB", size, (int(250 * i / max(n - 1, 1)),) * 3)


def make_clip(
    path: Path,
    frames: Iterator[Image.Image],
    fps: int,
    gop: int = 12,
    creation_time: str | None = None,
) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        if creation_time:
            out.metadata["creation_time"] = creation_time
        stream = out.add_stream(video.encoder(), rate=Fraction(fps))
        stream.pix_fmt = "yuv420p"
        stream.gop_size = gop
        for i, img in enumerate(frames):
            if i == 0:
                stream.width, stream.height = img.size
            for packet in stream.encode(av.VideoFrame.from_image(img)):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _grey(img: Image.Image) -> float:
    return float(np.asarray(img.convert("L"), dtype=np.float32).mean())


def test_probe_reads_container_metadata(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", _ramp(50), fps=10, creation_time="2024-05-06T07:08:09Z")
    info = video.probe(str(clip))
    assert (info.width, info.height, info.fps, info.frame_count) == (96, 64, 10.0, 50)
    assert info.duration_s == pytest.approx(5.0, abs=0.11)
    assert info.codec in ("h264", "mpeg4")
    assert info.created_tag == "creation_time"
    assert info.created_at == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def test_default_rate_is_first_frame_then_one_per_second(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", _ramp(50), fps=10)
    frames = list(video.sample_frames(str(clip)))
    assert [f.frame_number for f in frames] == [0, 10, 20, 30, 40]
    assert [f.time_s for f in frames] == pytest.approx([0, 1, 2, 3, 4])
    for f in frames:  # the pixels are those of the numbered frame
        assert _grey(f.image) == pytest.approx(250 * f.frame_number / 49, abs=4)
    assert [f.frame_number for f in video.sample_frames(str(clip), rate=0)] == list(range(50))
    assert len(list(video.sample_frames(str(clip), rate=2, max_frames=3))) == 3


def test_sparse_sampling_seeks_to_the_right_frames(tmp_path: Path) -> None:
    """Samples 5 s apart (> SEEK_GAP_S): seeking to the keyframe before, then decoding on."""
    clip = make_clip(tmp_path / "long.mp4", _ramp(240), fps=12, gop=24)
    frames = list(video.sample_frames(str(clip), rate=0.2))
    assert [f.frame_number for f in frames] == [0, 60, 120, 180]
    for f in frames:
        assert _grey(f.image) == pytest.approx(250 * f.frame_number / 239, abs=4)
    assert _grey(video.frame_at(str(clip), 180)) == pytest.approx(250 * 180 / 239, abs=4)


def test_file_objects_are_read_like_paths(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", _ramp(30), fps=10)
    with clip.open("rb") as fh:
        from_file = [(f.frame_number, round(_grey(f.image))) for f in video.sample_frames(fh)]
    from_path = [(f.frame_number, round(_grey(f.image))) for f in video.sample_frames(str(clip))]
    assert from_file == from_path and len(from_file) == 3


@pytest.mark.parametrize(
    "data",
    [b"this is not a video", b"\x00" * 4096, b"RIFF\x00\x00\x00\x00AVI LIST"],
    ids=["text", "zeros", "bad-avi-header"],
)
def test_garbage_raises_video_error_with_reason(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "bad.mp4"
    path.write_bytes(data)
    with pytest.raises(video.VideoError) as info:
        list(video.sample_frames(str(path)))
    assert info.value.reason in ("corrupt_video", "unsupported_video", "no_video_stream")
    assert "copy it again" in str(info.value) or "convert" in str(info.value)


def test_truncated_clip_is_a_video_error(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", _ramp(40), fps=10)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    with pytest.raises(video.VideoError):
        video.probe(str(cut))


def test_write_clip_round_trips(tmp_path: Path, camtrap_dir: Path) -> None:
    still = Image.open(camtrap_dir / STILL).convert("RGB").resize((161, 121))
    out = tmp_path / "w.mp4"
    assert video.write_clip(str(out), iter([still] * 4), fps=2) == 4
    info = video.probe(str(out))
    assert (info.width, info.height) == (160, 120)  # even sizes for yuv420p
    assert info.codec == ("h264" if video.encoder() == "libx264" else "mpeg4")
    assert len(list(video.sample_frames(str(out), rate=0))) == 4


def test_is_video() -> None:
    assert video.is_video("a/b/C.MP4") and video.is_video("x.avi") and video.is_video("y.Mov")
    assert not video.is_video("a.jpg") and not video.is_video("mp4") and not video.is_video("a.")


def test_in_memory_bytes_work_too() -> None:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for img in _ramp(10, (32, 32)):
            for packet in stream.encode(av.VideoFrame.from_image(img)):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    assert [f.frame_number for f in video.sample_frames(buf)] == [0, 5]


SAMPLES = {
    "drivendataorg__zamba/tests/assets/densepose_tests/chimp.mp4": ("h264", 320, 180, 450, 15),
    "drivendataorg__zamba/tests/assets/videos/data/raw/lope/Theo_codification_gorilla videos/"
    "2015/T37.0314.1632/EK000059.AVI": ("mpeg4", 106, 60, 61, 61),
    "drivendataorg__zamba/tests/assets/videos/data/raw/chimpandsee/Trip_5/card 1.2_location/"
    "PICT0074.ASF": ("msmpeg4", 80, 60, 61, 61),
}


@pytest.mark.parametrize("rel", sorted(SAMPLES), ids=lambda r: r.rsplit("/", 1)[-1])
def test_sample_clips(rel: str, camtrap_dir: Path) -> None:
    path = camtrap_dir / rel
    if not path.exists():
        pytest.skip(f"{rel} is not in the sample data")
    codec, width, height, frames, sampled = SAMPLES[rel]
    info = video.probe(str(path))
    assert (info.codec, info.width, info.height, info.frame_count) == (codec, width, height, frames)
    got = list(video.sample_frames(str(path)))
    assert len(got) == sampled
    assert got[0].frame_number == 0 and got[0].image.size == (width, height)
    assert all(
        b.time_s - a.time_s == pytest.approx(1.0, abs=0.05) for a, b in itertools.pairwise(got)
    )


def test_phone_clip_time_comes_from_creation_time(camtrap_dir: Path) -> None:
    rel = (
        "jniedballa__camtrapR/inst/pictures/sample_images_species_dir/StationA/PBE/"
        "20251112_100312.mp4"
    )
    if not (camtrap_dir / rel).exists():
        pytest.skip("phone clip not in the sample data")
    info = video.probe(str(camtrap_dir / rel))
    assert info.created_at == datetime(2025, 11, 12, 2, 3, 13, tzinfo=UTC)  # 10:03 at UTC+8
    assert (info.width, info.height) == (1280, 720)
    assert [f.frame_number for f in video.sample_frames(str(camtrap_dir / rel))] == [0, 30]
