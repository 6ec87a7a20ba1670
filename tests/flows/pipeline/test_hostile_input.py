"""A hostile card, generated here: every file gets a clear outcome, nothing escapes the root."""

from __future__ import annotations

import io
import os
from pathlib import Path

import piexif
import pytest
from PIL import Image

from tests.conftest import query

pytestmark = pytest.mark.slow

GOOD = "agentmorris__MegaDetector/images/idaho-camera-traps.jpg"


def _jpeg(exif: bytes | None = None, size: tuple[int, int] = (160, 120)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (70, 90, 40)).save(buf, "JPEG", **({"exif": exif} if exif else {}))
    return buf.getvalue()


def _exif(**ifds: dict[int, object]) -> bytes:
    return piexif.dump({"0th": {}, "Exif": {}, "GPS": {}, "1st": {}, **ifds})


def _corpus(root: Path, outside: Path, camtrap_dir: Path) -> dict[str, str | None]:
    """path -> expected quarantine reason (None: processed cleanly)."""
    good = (camtrap_dir / GOOD).read_bytes()
    names = {
        "site/..hidden.jpg": None,
        "site/new\nline.jpg": None,
        "site/ünïcödé fox.JPG": None,
        "site/$(touch PWNED); rm -rf ~.jpg": None,
        "site/`id` | tee x.jpg": None,
    }
    expected: dict[str, str | None] = {}
    for i, name in enumerate(names):
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(good + bytes([i]))  # distinct bytes after the JPEG end marker
        expected[name] = None
    files = {
        "bad/zero.jpg": (b"", "empty_file"),
        "bad/truncated.jpg": (good[: len(good) // 3], "truncated"),
        "bad/text.jpg": (b"#!/bin/sh\necho not a photo\n", "not_an_image"),
        "bad/renamed_png.jpg": (_png(), "wrong_extension"),
        "bad/gps_out_of_range.jpg": (_jpeg(_exif(GPS={
            piexif.GPSIFD.GPSLatitudeRef: b"N",
            piexif.GPSIFD.GPSLatitude: ((95, 1), (0, 1), (0, 1)),
            piexif.GPSIFD.GPSLongitudeRef: b"E",
            piexif.GPSIFD.GPSLongitude: ((200, 1), (0, 1), (0, 1)),
        })), "exif_invalid"),
        "bad/year_1900.jpg": (_jpeg(_exif(Exif={
            piexif.ExifIFD.DateTimeOriginal: b"1900:01:01 00:00:00"})), "exif_invalid"),
        "bad/year_2100.jpg": (_jpeg(_exif(Exif={
            piexif.ExifIFD.DateTimeOriginal: b"2100:06:01 12:00:00"})), "exif_invalid"),
        "bad/huge_make.jpg": (_jpeg(_exif(**{"0th": {piexif.ImageIFD.Make: b"M" * 60000}})),
                              "exif_invalid"),
        "bad/absurd_offset.jpg": (_absurd_offset(), "exif_invalid"),
    }  # fmt: skip
    for name, (data, reason) in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        expected[name] = reason
    bomb = io.BytesIO()
    Image.new("1", (12000, 9000)).save(bomb, "PNG")  # 108 MP in a few kB
    (root / "bad" / "bomb.png").write_bytes(bomb.getvalue())
    expected["bad/bomb.png"] = "decompression_bomb"
    secret = outside / "ranger_notes.jpg"
    secret.write_bytes(good)
    (root / "links").mkdir()
    (root / "links" / "escape.jpg").symlink_to(secret)
    (root / "links" / "dotdot.jpg").symlink_to(Path("..") / ".." / outside.name / secret.name)
    expected["links/escape.jpg"] = "outside_source"
    expected["links/dotdot.jpg"] = "outside_source"
    return expected


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48)).save(buf, "PNG")
    return buf.getvalue()


def _absurd_offset() -> bytes:
    """A JPEG whose EXIF IFD0 points 4 GB past the end of the block."""
    data = bytearray(_jpeg(_exif(**{"0th": {piexif.ImageIFD.Make: b"Trap"}})))
    tiff = data.index(b"MM\x00\x2a") if b"MM\x00\x2a" in data else data.index(b"II\x2a\x00")
    order = "big" if data[tiff : tiff + 2] == b"MM" else "little"
    data[tiff + 4 : tiff + 8] = (0xFFFFFFF0).to_bytes(4, order)
    return bytes(data)


def test_a_hostile_card(prefect_harness, trapflow_env, camtrap_dir, tmp_path):
    from flows.ingest import ingest

    root, outside = tmp_path / "card", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    expected = _corpus(root, outside, camtrap_dir)
    wh = tmp_path / "w.duckdb"
    summary = ingest(source=str(root), warehouse=str(wh), build=False)

    reasons = {p: r for p, r in query(wh, "select file_path, reason from raw.quarantine")}
    media = {p for (p,) in query(wh, "select file_path from raw.media")}
    for path, reason in expected.items():
        if reason is None:
            assert path in media and path not in reasons, path
        else:
            assert reasons.get(path) == reason, (path, reasons.get(path))
    assert set(reasons) <= set(expected)  # nothing else went wrong
    assert summary.stats.images == len(media)
    # nothing outside the root was read or hashed, and no name was ever run as a command
    assert not query(wh, "select count(*) from raw.media where file_path like '%ranger_notes%'")[0][
        0
    ]
    assert not (Path.cwd() / "PWNED").exists() and not (root / "site" / "PWNED").exists()
    errors = [e for (e,) in query(wh, "select error from raw.quarantine")]
    assert all(len(e) > 30 for e in errors)
    assert os.path.exists(outside / "ranger_notes.jpg")
