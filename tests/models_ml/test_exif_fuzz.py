"""Fuzzing the EXIF reader with hypothesis: damaged headers never crash it (bounded time)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import piexif
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, UnidentifiedImageError

from models_ml import ExifRecord, read_exif

SAMPLE = "ianare__exif-samples/jpg/tests/67-0_length_string.jpg"


def _camera_jpeg() -> bytes:
    """A small JPEG with a full camera-like EXIF block (dates, GPS, maker strings)."""
    exif = piexif.dump({
        "0th": {piexif.ImageIFD.Make: b"RECONYX", piexif.ImageIFD.Model: b"HC500 HYPERFIRE",
                piexif.ImageIFD.DateTime: b"2021:05:27 12:47:59"},
        "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2021:05:27 12:47:59",
                 piexif.ExifIFD.SubSecTimeOriginal: b"25",
                 piexif.ExifIFD.OffsetTimeOriginal: b"+02:00",
                 piexif.ExifIFD.BodySerialNumber: b"H500-123"},
        "GPS": {piexif.GPSIFD.GPSLatitudeRef: b"S",
                piexif.GPSIFD.GPSLatitude: ((24, 1), (59, 1), (1234, 100)),
                piexif.GPSIFD.GPSLongitudeRef: b"E",
                piexif.GPSIFD.GPSLongitude: ((31, 1), (35, 1), (2800, 100))},
    })  # fmt: skip
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (50, 60, 70)).save(buf, "JPEG", exif=exif)
    return buf.getvalue()


BASE = _camera_jpeg()
APP1 = BASE.index(b"Exif\x00\x00")  # the mutations land in the EXIF block


def _check(data: bytes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            record = read_exif(data)
        except UnidentifiedImageError:
            return  # not an image any more: the pipeline quarantines it as not_an_image
    assert isinstance(record, ExifRecord)
    if record.latitude is not None:
        assert -90 <= record.latitude <= 90
    if record.longitude is not None:
        assert -180 <= record.longitude <= 180
    for text in (record.make, record.model, record.serial):
        assert text is None or len(text) <= 128


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 700), st.integers(0, 255)), min_size=1, max_size=12))
def test_flipped_bytes_in_the_exif_block(flips: list[tuple[int, int]]) -> None:
    data = bytearray(BASE)
    for offset, value in flips:
        position = APP1 + offset
        if position < len(data):
            data[position] = value
    _check(bytes(data))


@settings(max_examples=150, deadline=None)
@given(st.integers(APP1, len(BASE)), st.binary(min_size=0, max_size=64))
def test_spliced_and_cut_headers(cut: int, junk: bytes) -> None:
    _check(BASE[:cut] + junk + BASE[cut:][: len(BASE) // 2])


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=0, max_size=2048))
def test_random_bytes_after_a_jpeg_marker(payload: bytes) -> None:
    _check(b"\xff\xd8\xff\xe1" + len(payload).to_bytes(2, "big") + payload + b"\xff\xd9")


def test_a_real_malformed_sample(camtrap_dir: Path) -> None:
    _check((camtrap_dir / SAMPLE).read_bytes())


def test_an_entry_claiming_billions_of_values_costs_no_memory() -> None:
    """A damaged count (4,000,000,000 BYTE values in a 300-byte block) once made piexif build a
    4 GB format string: one photo could take a worker's memory (models_ml/_piexif_guard.py)."""
    import struct
    import tracemalloc

    tiff = BASE[APP1 + 6 :]
    endian = "<" if tiff[:2] == b"II" else ">"
    ifd0 = struct.unpack(endian + "L", tiff[4:8])[0]
    entry = ifd0 + 2  # the first entry of IFD0: tag, type, count, value
    patched = bytearray(BASE)
    at = APP1 + 6 + entry
    patched[at + 2 : at + 8] = struct.pack(endian + "HL", 1, 4_000_000_000)
    tracemalloc.start()
    try:
        _check(bytes(patched))
        loaded = piexif.load(bytes(patched))  # the fallback parser itself, as read_exif calls it
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000
    assert loaded["0th"][piexif.ImageIFD.Model] == b"HC500 HYPERFIRE"  # its neighbours still read
