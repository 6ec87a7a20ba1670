"""read_exif: the sample photos against exiftool's ground truth, then hostile EXIF built here."""

from __future__ import annotations

import io
import struct
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import piexif
import pytest
from PIL import Image, ImageFile, UnidentifiedImageError

from models_ml.exif import MAX_TEXT_LENGTH, read_exif

# --- the sample data (MANIFEST.csv holds exiftool's readings) --------------------------


def _readable_images(rows: list[dict[str, str]], root: Path) -> list[tuple[dict[str, str], Path]]:
    """Manifest images Pillow can open: no videos, metadata, HEIF or zero-byte files."""
    out = []
    for row in rows:
        kinds = row["kind"].split(",")
        if "video" in kinds or "metadata" in kinds:
            continue
        if row["file_type"] in ("HEIC", "") or row["bytes"] in ("", "0"):
            continue
        out.append((row, root / row["path"]))
    return out


@pytest.fixture(scope="module")
def sample_records(
    manifest_rows: list[dict[str, str]], camtrap_dir: Path
) -> list[tuple[dict[str, str], Any]]:
    return [
        (row, read_exif(path.read_bytes()))
        for row, path in _readable_images(manifest_rows, camtrap_dir)
    ]


def test_capture_time_matches_exiftool_for_every_sample(
    sample_records: list[tuple[dict[str, str], Any]],
) -> None:
    checked, mismatches = 0, []
    for row, rec in sample_records:
        if not row["exif_datetime"]:
            continue
        checked += 1
        got = rec.captured_at.strftime("%Y:%m:%d %H:%M:%S") if rec.captured_at else None
        if got != row["exif_datetime"]:
            want = row["exif_datetime"]
            mismatches.append(
                f"{row['path']}: {got} ({rec.timestamp_tag}) != {want}; {rec.warnings}"
            )
    assert checked >= 140, f"only {checked} manifest rows with a DateTimeOriginal were checked"
    assert not mismatches, f"{len(mismatches)} of {checked} differ:\n" + "\n".join(mismatches)


def test_reconyx_maker_note_time_and_serial(
    sample_records: list[tuple[dict[str, str], Any]],
) -> None:
    """Older HyperFire firmware writes no EXIF date and no Make: the maker note has both."""
    by_name = {row["path"].rsplit("/", 1)[-1]: rec for row, rec in sample_records}
    rec = by_name["american_black_bear.jpg"]
    assert rec.timestamp_tag == "Reconyx:DateTimeOriginal"
    assert rec.captured_at == datetime(2010, 11, 6, 4, 4, 0)
    assert rec.serial == "P800BD05003063"
    assert by_name["idaho-camera-traps.jpg"].serial == "UXR6BI02004234"  # UltraFire layout
    assert by_name["RCNX0863.JPG"].serial == "HLPXEL09019291"  # HyperFire 2 layout


def test_make_and_model_match_exiftool(sample_records: list[tuple[dict[str, str], Any]]) -> None:
    mismatches = [
        f"{row['path']}: {rec.make!r}/{rec.model!r} != {row['camera_make']}/{row['camera_model']}"
        for row, rec in sample_records
        if ((rec.make or ""), (rec.model or "")) != (row["camera_make"], row["camera_model"])
    ]
    assert not mismatches, "\n".join(mismatches)
    # camtrapR's Cuddebacks have Make and Model swapped; the manifest (and we) keep them verbatim.
    assert any(rec.make == "G4" and rec.model == "CUDDEBACK" for _, rec in sample_records)


def test_gps_matches_exiftool(sample_records: list[tuple[dict[str, str], Any]]) -> None:
    with_gps = 0
    for row, rec in sample_records:
        if row["exif_gps"] != "yes":
            assert rec.latitude is None and rec.longitude is None, row["path"]
            continue
        with_gps += 1
        lat, lon = (float(x) for x in row["gps_value"].split(" ", 1)[0].split(","))
        assert rec.latitude == pytest.approx(lat, abs=1e-6), row["path"]
        assert rec.longitude == pytest.approx(lon, abs=1e-6), row["path"]
    assert with_gps >= 11


def test_size_is_the_header_size(sample_records: list[tuple[dict[str, str], Any]]) -> None:
    for row, rec in sample_records:
        assert f"{rec.width}x{rec.height}" == row["dimensions"], row["path"]


def test_header_only_no_pixel_decode(camtrap_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decode(self: Any) -> None:
        raise AssertionError("read_exif decoded pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    truncated = camtrap_dir / "google__cameratrapai/test_data/african_elephants_truncated_file.jpg"
    rec = read_exif(truncated)  # a path works too; the truncated pixels are never touched
    assert rec.captured_at == datetime(2010, 8, 4, 8, 43, 15)
    rotated = (
        camtrap_dir / "google__cameratrapai/test_data/african_elephants_with_exif_orientation.jpg"
    )
    with rotated.open("rb") as fh:
        assert read_exif(fh).orientation == 6


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x00" * 64])
def test_not_an_image_raises(data: bytes) -> None:
    with pytest.raises(UnidentifiedImageError):
        read_exif(data)


# --- synthetic images --------------------------------------------------------------------


def _image(exif: bytes | None = None, fmt: str = "JPEG", size: tuple[int, int] = (16, 12)) -> bytes:
    buf = io.BytesIO()
    kwargs = {"exif": exif} if exif is not None else {}
    Image.new("RGB", size, (90, 120, 60)).save(buf, fmt, **kwargs)
    return buf.getvalue()


def _dump(
    zeroth: dict[int, Any] | None = None,
    exif: dict[int, Any] | None = None,
    gps: dict[int, Any] | None = None,
) -> bytes:
    return bytes(piexif.dump({"0th": zeroth or {}, "Exif": exif or {}, "GPS": gps or {}}))


def _dms(value: float) -> tuple[tuple[int, int], ...]:
    value = abs(value)
    d = int(value)
    m = int((value - d) * 60)
    s = round((value - d - m / 60) * 3600 * 10000)
    return ((d, 1), (m, 1), (s, 10000))


_DTO = piexif.ExifIFD.DateTimeOriginal
_DTD = piexif.ExifIFD.DateTimeDigitized
_G = piexif.GPSIFD


def _gps(lat: float, lon: float, lat_ref: bytes = b"N", lon_ref: bytes = b"E") -> dict[int, Any]:
    return {
        _G.GPSLatitudeRef: lat_ref,
        _G.GPSLatitude: _dms(lat),
        _G.GPSLongitudeRef: lon_ref,
        _G.GPSLongitude: _dms(lon),
    }


def test_plain_record() -> None:
    data = _image(
        _dump(
            {
                piexif.ImageIFD.Make: b"RECONYX\x00\x00  ",
                piexif.ImageIFD.Model: b"  HF2 PRO COVERT ",
                piexif.ImageIFD.Orientation: 1,
            },
            {_DTO: b"2021:06:22 04:17:07", piexif.ExifIFD.BodySerialNumber: b"HLPXEL09018058"},
        )
    )
    rec = read_exif(data)
    assert (rec.make, rec.model, rec.serial, rec.orientation) == (
        "RECONYX",
        "HF2 PRO COVERT",
        "HLPXEL09018058",
        1,
    )
    assert rec.captured_at == datetime(2021, 6, 22, 4, 17, 7)
    assert (rec.timestamp_tag, rec.width, rec.height, rec.warnings) == (
        "DateTimeOriginal",
        16,
        12,
        (),
    )


def test_no_exif_is_a_warning_not_an_error() -> None:
    rec = read_exif(_image(fmt="PNG"))
    assert rec.captured_at is None and (rec.width, rec.height) == (16, 12)
    assert rec.warnings and "no EXIF" in rec.warnings[0]


def test_south_and_west_are_negative_and_below_sea_level() -> None:
    gps = _gps(33.4489, 70.6693, b"S", b"W") | {_G.GPSAltitudeRef: 1, _G.GPSAltitude: (4230, 10)}
    rec = read_exif(_image(_dump(gps=gps)))
    assert rec.latitude == pytest.approx(-33.4489, abs=1e-6)
    assert rec.longitude == pytest.approx(-70.6693, abs=1e-6)
    assert rec.altitude == pytest.approx(-423.0)


def test_north_east_above_sea_level() -> None:
    gps = _gps(43.4674483, 11.8851267) | {_G.GPSAltitudeRef: 0, _G.GPSAltitude: (3520, 100)}
    rec = read_exif(_image(_dump(gps=gps)))
    assert (rec.latitude, rec.longitude) == (
        pytest.approx(43.4674483, abs=1e-6),
        pytest.approx(11.8851267, abs=1e-6),
    )
    assert rec.altitude == pytest.approx(35.2)
    assert len(rec.warnings) == 1 and rec.warnings[0].startswith("no EXIF capture time")


def test_subseconds_and_utc_offset() -> None:
    exif = {
        _DTO: b"2024:03:05 06:07:08",
        piexif.ExifIFD.SubSecTimeOriginal: b"25",
        piexif.ExifIFD.OffsetTimeOriginal: b"+02:00",
        _DTD: b"2024:03:05 06:07:09",
        piexif.ExifIFD.SubSecTimeDigitized: b"999",
    }
    rec = read_exif(_image(_dump(exif=exif)))
    assert rec.captured_at == datetime(2024, 3, 5, 6, 7, 8, 250000)
    assert (rec.utc_offset, rec.timestamp_tag, rec.warnings) == ("+02:00", "DateTimeOriginal", ())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"2024:03:05 06:07:08", datetime(2024, 3, 5, 6, 7, 8)),
        (b"2024-03-05 06:07:08", datetime(2024, 3, 5, 6, 7, 8)),
        (b"2024:03:05 06:07", datetime(2024, 3, 5, 6, 7)),
        (b" 2024:03:05 06:07:08\x00\x00garbage", datetime(2024, 3, 5, 6, 7, 8)),
        (b"2024:03:05 06:07:08.5", datetime(2024, 3, 5, 6, 7, 8, 500000)),
    ],
)
def test_tolerated_date_forms(raw: bytes, expected: datetime) -> None:
    rec = read_exif(_image(_dump(exif={_DTO: raw})))
    assert rec.captured_at == expected and rec.warnings == ()


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"0000:00:00 00:00:00", "is not a date"),
        (b"2100:13:45 99:99:99", "is not a valid date"),
        (b"1900:01:01 00:00:00", "before 1970"),
        (f"{datetime.now().year + 2}:01:01 00:00:00".encode(), "after"),
        (b"", "is blank"),
        (b"    :  :     :  :  ", "is blank"),
        (b"yesterday", "is not a date"),
    ],
)
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")  # the zero-length string
def test_garbage_dates_fall_back_with_a_warning(raw: bytes, why: str) -> None:
    # Alone: no capture time, and the caller is told to use the file time.
    rec = read_exif(_image(_dump({piexif.ImageIFD.Make: b"CUDDEBACK"}, {_DTO: raw})))
    assert rec.captured_at is None and rec.make == "CUDDEBACK"
    assert len(rec.warnings) == 1
    assert rec.warnings[0].startswith("DateTimeOriginal") and why in rec.warnings[0]
    assert "use the file time" in rec.warnings[0]
    # With a good DateTimeDigitized (and DateTime) behind it: that one is used.
    rec = read_exif(
        _image(
            _dump(
                {piexif.ImageIFD.DateTime: b"2020:01:01 00:00:00"},
                {_DTO: raw, _DTD: b"2019:07:16 18:03:25"},
            )
        )
    )
    assert (rec.captured_at, rec.timestamp_tag) == (
        datetime(2019, 7, 16, 18, 3, 25),
        "DateTimeDigitized",
    )
    assert len(rec.warnings) == 1 and "using DateTimeDigitized" in rec.warnings[0]


def test_bad_subsec_and_offset_are_dropped() -> None:
    exif = {
        _DTO: b"2024:03:05 06:07:08",
        piexif.ExifIFD.SubSecTimeOriginal: b"ab",
        piexif.ExifIFD.OffsetTimeOriginal: b"+25:00",
    }
    rec = read_exif(_image(_dump(exif=exif)))
    assert rec.captured_at == datetime(2024, 3, 5, 6, 7, 8) and rec.utc_offset is None
    assert any(w.startswith("SubSecTimeOriginal 'ab'") for w in rec.warnings)
    assert any(w.startswith("OffsetTimeOriginal '+25:00'") for w in rec.warnings)


@pytest.mark.parametrize(
    ("gps", "why"),
    [
        (_gps(95.0, 10.0), "GPSLatitude 95.000000 is out of range"),
        (_gps(10.0, 181.5, b"N", b"W"), "GPSLongitude -181.500000 is out of range"),
        ({**_gps(10.0, 10.0), _G.GPSLatitude: ((10, 0), (0, 1), (0, 1))}, "zero denominator"),
    ],
)
def test_unusable_gps_is_dropped(gps: dict[int, Any], why: str) -> None:
    rec = read_exif(_image(_dump(gps=gps)))
    assert rec.latitude is None and rec.longitude is None
    assert any(why in w for w in rec.warnings), rec.warnings
    assert any("GPS position ignored" in w for w in rec.warnings)


def test_zero_over_zero_seconds_count_as_zero() -> None:
    gps = {**_gps(10.0, 20.0), _G.GPSLatitude: ((10, 1), (30, 1), (0, 0))}
    rec = read_exif(_image(_dump(gps=gps)))
    assert (rec.latitude, rec.longitude) == (pytest.approx(10.5), pytest.approx(20.0))
    assert any("0/0" in w for w in rec.warnings)


def test_huge_make_is_cut() -> None:
    # 100 kB does not fit a JPEG APP1 segment (64 kB); PNG's eXIf chunk takes it.
    zeroth = {piexif.ImageIFD.Make: b"A" * 100_000, piexif.ImageIFD.Model: b"X"}
    rec = read_exif(_image(_dump(zeroth, {_DTO: b"2022:01:02 03:04:05"}), fmt="PNG"))
    assert rec.make == "A" * MAX_TEXT_LENGTH and rec.model == "X"
    assert rec.captured_at == datetime(2022, 1, 2, 3, 4, 5)
    assert rec.warnings == (
        f"Make '{'A' * 37}...' is 100000 characters long; cut to {MAX_TEXT_LENGTH}",
    )


# Raw TIFF/EXIF blocks for what piexif refuses to write: wrong types, absurd offsets.
_ASCII, _SHORT, _LONG, _RATIONAL = 2, 3, 4, 5
_EXIF_PTR, _GPS_PTR = 0x8769, 0x8825


def _ascii(tag: int, text: str) -> tuple[int, int, int, bytes]:
    b = text.encode() + b"\0"
    return (tag, _ASCII, len(b), b)


def _raw_exif(
    ifd0: list[Any],
    exif: list[Any] | None = None,
    gps: list[Any] | None = None,
    pointers: dict[int, int] | None = None,
) -> bytes:
    """b'Exif\\0\\0' + a little-endian TIFF: IFD0, then the Exif and GPS IFDs, then the data.

    Entries are (tag, type, count, payload); ``pointers`` overrides sub-IFD offsets.
    """
    ifd0 = list(ifd0)
    subs = [(tag, sub) for tag, sub in ((_EXIF_PTR, exif), (_GPS_PTR, gps)) if sub is not None]
    ifd0 += [(tag, _LONG, 1, b"\0\0\0\0") for tag, _ in subs]
    ifds = [ifd0] + [sub for _, sub in subs]
    offsets = [8]
    for ifd in ifds[:-1]:
        offsets.append(offsets[-1] + 6 + 12 * len(ifd))
    data_at = offsets[-1] + 6 + 12 * len(ifds[-1])
    where = {tag: off for (tag, _), off in zip(subs, offsets[1:], strict=True)} | (pointers or {})
    out, data = bytearray(b"II*\0" + struct.pack("<I", 8)), bytearray()
    for ifd in ifds:
        out += struct.pack("<H", len(ifd))
        for tag, typ, count, payload in sorted(ifd, key=lambda e: e[0]):
            if ifd is ifd0 and tag in where:
                payload = struct.pack("<I", where[tag])
            if len(payload) <= 4:
                out += struct.pack("<HHI", tag, typ, count) + payload.ljust(4, b"\0")
            else:
                out += struct.pack("<HHII", tag, typ, count, data_at + len(data))
                data += payload + b"\0" * (len(payload) % 2)
        out += b"\0\0\0\0"
    return b"Exif\0\0" + bytes(out + data)


def test_wrong_types_are_dropped_with_warnings() -> None:
    ifd0 = [
        (0x010F, _SHORT, 3, struct.pack("<3H", 1, 2, 3)),
        _ascii(0x0110, "HC600"),
        (0x0112, _ASCII, 4, b"up\0\0"),
    ]
    exif = [(0x9003, _LONG, 1, struct.pack("<I", 12345)), _ascii(0x9004, "2021:06:01 12:00:00")]
    gps = [_ascii(1, "N"), _ascii(2, "12.5"), _ascii(3, "E"), _ascii(4, "3.5")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's own "tag 271 had too many entries"
        rec = read_exif(_image(_raw_exif(ifd0, exif, gps)))
    assert rec.model == "HC600"
    assert (rec.captured_at, rec.timestamp_tag) == (datetime(2021, 6, 1, 12), "DateTimeDigitized")
    assert rec.make is None and rec.orientation is None and rec.latitude is None
    joined = "\n".join(rec.warnings)
    for expected in (
        "Make has unexpected type",
        "DateTimeOriginal has unexpected type",
        "Orientation",
        "GPSLatitude has unexpected type str",
    ):
        assert expected in joined


@pytest.mark.parametrize("as_errors", [False, True], ids=["warnings-ignored", "warnings-as-errors"])
def test_corrupt_structure_keeps_what_is_readable(as_errors: bool) -> None:
    ifd0 = [_ascii(0x010F, "RECONYX"), _ascii(0x0110, "HC600")]
    exif = [_ascii(0x9003, "2021:06:01 12:00:00")]
    cases = {
        "absurd Exif offset": _raw_exif(ifd0, exif, pointers={_EXIF_PTR: 0x7FFFFFF0}),
        "absurd GPS offset": _raw_exif(
            ifd0, exif, gps=[_ascii(1, "N")], pointers={_GPS_PTR: 0xFFFFFF00}
        ),
        "Exif IFD pointing at IFD0": _raw_exif(ifd0, exif, pointers={_EXIF_PTR: 8}),
        "huge count": _raw_exif([*ifd0, (0x0131, _ASCII, 0x7FFFFFFF, b"\0" * 8)], exif),
        "unknown type": _raw_exif([*ifd0, (0x0131, 99, 4, b"abcd")], exif),
    }
    for name, block in cases.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error" if as_errors else "ignore")
            rec = read_exif(_image(block))
        assert rec.width == 16, name
        if "Exif" in name:
            assert rec.captured_at is None and rec.warnings, name
        else:
            assert rec.captured_at == datetime(2021, 6, 1, 12), name
        if not as_errors or "Exif" in name:
            assert (rec.make, rec.model) == ("RECONYX", "HC600"), name


@pytest.mark.filterwarnings("ignore:Truncated File Read:UserWarning")
def test_truncated_exif_block() -> None:
    rec = read_exif(
        _image(_raw_exif([_ascii(0x010F, "RECONYX")], [_ascii(0x9003, "2021:06:01 12:00:00")])[:40])
    )
    assert rec.captured_at is None and rec.width == 16
    assert any("no readable tags" in w for w in rec.warnings)


def test_jpeg_pillow_cannot_open_still_gives_exif() -> None:
    block = _raw_exif([_ascii(0x010F, "RECONYX")], [_ascii(0x9003, "2021:06:01 12:00:00")])
    app1 = b"\xff\xe1" + struct.pack(">H", len(block) + 2) + block
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 8, 8, 75, 100, 0)  # 100x75, no components
    rec = read_exif(b"\xff\xd8" + app1 + sof + b"\xff\xd9")
    assert rec.make == "RECONYX" and rec.captured_at == datetime(2021, 6, 1, 12)
    assert (rec.width, rec.height) == (100, 75)
    assert "Pillow could not open the image" in rec.warnings[0]
