"""Read what an image's header says: capture time, GPS, camera, size, orientation.

:func:`read_exif` is pure and cheap: it reads the header only (``Image.open`` is lazy; no
pixel is decoded). Bad EXIF never raises. Every value that is present but unusable is
dropped and explained in :attr:`ExifRecord.warnings`, so a camera whose clock was reset still
yields its make, model and GPS, and the caller can fall back to the file time.
"""

from __future__ import annotations

import io
import os
import re
import struct
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, TypeVar

import piexif
from PIL import ExifTags, Image, UnidentifiedImageError

import models_ml._piexif_guard  # noqa: F401  (bounds piexif before any read: see there)
from models_ml._exif_values import (
    GPS_ALT,
    GPS_LAT,
    GPS_LAT_REF,
    GPS_LON,
    GPS_LON_REF,
    MAX_TEXT_LENGTH,
    BadValue,
    altitude_parser,
    as_text,
    degrees_parser,
    parse_orientation,
    parse_text,
    quote,
)
from models_ml._types import ExifRecord

__all__ = ["MAX_TEXT_LENGTH", "read_exif"]

_T = TypeVar("_T")

# Tag numbers (EXIF 2.32). IFD0 = the image's main directory.
_MAKE, _MODEL, _ORIENTATION, _DATETIME = 0x010F, 0x0110, 0x0112, 0x0132
_DATETIME_ORIGINAL, _DATETIME_DIGITIZED = 0x9003, 0x9004
_OFFSET_TIME, _OFFSET_TIME_ORIGINAL, _OFFSET_TIME_DIGITIZED = 0x9010, 0x9011, 0x9012
_SUBSEC_TIME, _SUBSEC_TIME_ORIGINAL, _SUBSEC_TIME_DIGITIZED = 0x9290, 0x9291, 0x9292
_BODY_SERIAL, _CAMERA_SERIAL, _ADOBE_SERIAL = 0xA431, 0xC62F, 0xFDE9
_MAKER_NOTE = 0x927C

#: EXIF capture-time tags, best first: (name, tag, its sub-second tag, its offset tag).
#: DateTimeOriginal/Digitized live in the Exif IFD, DateTime (last changed) in IFD0.
_EXIF_TIME_TAGS = (
    ("DateTimeOriginal", _DATETIME_ORIGINAL, _SUBSEC_TIME_ORIGINAL, _OFFSET_TIME_ORIGINAL),
    ("DateTimeDigitized", _DATETIME_DIGITIZED, _SUBSEC_TIME_DIGITIZED, _OFFSET_TIME_DIGITIZED),
)
#: Where the camera's serial number may be, best first: (in IFD0?, tag).
_SERIAL_TAGS = (
    (False, _BODY_SERIAL),
    (True, _CAMERA_SERIAL),
    (False, _CAMERA_SERIAL),
    (False, _ADOBE_SERIAL),
    (True, _ADOBE_SERIAL),
)
_OFFSET_TAGS = (
    ("OffsetTimeOriginal", _OFFSET_TIME_ORIGINAL),
    ("OffsetTimeDigitized", _OFFSET_TIME_DIGITIZED),
    ("OffsetTime", _OFFSET_TIME),
)
_SUBSEC_NAMES = {
    _SUBSEC_TIME_ORIGINAL: "SubSecTimeOriginal",
    _SUBSEC_TIME_DIGITIZED: "SubSecTimeDigitized",
    _SUBSEC_TIME: "SubSecTime",
}

# 'YYYY:MM:DD HH:MM:SS', 'YYYY-MM-DD HH:MM:SS', 'YYYY:MM:DD HH:MM', with optional fraction
# and zone ('2021:05:29 03:51:33.25+02:00'), as cameras and editing tools write them.
_DATETIME_RE = re.compile(
    r"(?P<y>\d{4})[:\-/.](?P<mo>\d{1,2})[:\-/.](?P<d>\d{1,2})[ T]+"
    r"(?P<h>\d{1,2}):(?P<mi>\d{1,2})(?::(?P<s>\d{1,2}))?"
    r"(?:[.,](?P<frac>\d{1,9}))?\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?"
)
_OFFSET_RE = re.compile(r"(?P<sign>[+-])(?P<h>\d{2}):?(?P<m>\d{2})")


@dataclass
class _Ifds:
    """The three EXIF directories this module reads, tag number -> value."""

    ifd0: dict[int, Any] = field(default_factory=dict)
    exif: dict[int, Any] = field(default_factory=dict)
    gps: dict[int, Any] = field(default_factory=dict)
    endian: str = "<"  # byte order of the EXIF block ("<" little, ">" big)
    raw_size: int = 0  # bytes of the EXIF block, when one was found

    def empty(self) -> bool:
        return not (self.ifd0 or self.exif or self.gps)


def read_exif(source: bytes | BinaryIO | str | os.PathLike[str]) -> ExifRecord:
    """What the header of one image says (see :class:`ExifRecord`).

    ``source`` is the file's bytes, a binary file object positioned at the start of the
    image, or a path. Only the header is read.

    Raises:
        PIL.UnidentifiedImageError: the data is not an image Pillow recognises (e.g. an empty
            file, a video, HEIF without a plugin). Any other failure of Pillow's (a
            decompression bomb, a JPEG whose EXIF breaks ``Image.open``) becomes a warning,
            and the EXIF is then read with piexif.
    """
    warnings: list[str] = []
    fp: BinaryIO | str | os.PathLike[str]
    fp = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    try:
        img = Image.open(fp)
    except Exception as exc:
        # Not an image (raise), or an image whose header Pillow rejects: a bomb, or a JPEG
        # whose EXIF breaks Pillow's open (then piexif still reads the EXIF).
        raw = _read_head(source)
        if isinstance(exc, UnidentifiedImageError) and not raw.startswith(b"\xff\xd8\xff"):
            raise
        why = "header not recognised" if isinstance(exc, UnidentifiedImageError) else _describe(exc)
        app1, size = _scan_jpeg(raw)
        warnings.append(f"Pillow could not open the image ({why}); header read directly")
        ifds = _load_with_piexif(app1, warnings, _Ifds(), ("ifd0", "exif", "gps"))
        return _build(ifds, size, warnings)
    with img:
        ifds = _load_with_pillow(img, warnings)
        return _build(ifds, img.size, warnings)


# --- loading ----------------------------------------------------------------------------


def _load_with_pillow(img: Image.Image, warnings: list[str]) -> _Ifds:
    ifds = _Ifds()
    raw = img.info.get("exif")
    raw = raw if isinstance(raw, bytes) else b""
    ifds.raw_size = len(raw)
    failed: list[str] = []
    try:
        exif = img.getexif()
    except Exception as exc:  # Pillow's parser: struct errors, recursion, absurd offsets...
        warnings.append(f"Pillow could not parse the EXIF block ({_describe(exc)})")
        failed = ["ifd0", "exif", "gps"]
    else:
        ifds.endian = ">" if exif.endian == ">" else "<"
        for tag in list(exif):
            try:
                ifds.ifd0[tag] = exif[tag]
            except Exception as exc:
                warnings.append(f"EXIF tag {_tag_name(tag)} is unreadable ({_describe(exc)})")
        for attr, ifd in (("exif", ExifTags.IFD.Exif), ("gps", ExifTags.IFD.GPSInfo)):
            if ifd not in ifds.ifd0:
                continue
            try:
                setattr(ifds, attr, dict(exif.get_ifd(ifd)))
            except Exception as exc:
                warnings.append(f"Pillow could not read the {ifd.name} IFD ({_describe(exc)})")
                failed.append(attr)
            else:
                if not getattr(ifds, attr):  # Pillow skips an IFD at an absurd offset
                    failed.append(attr)
    if failed and raw:
        _load_with_piexif(raw, warnings, ifds, failed)
    for attr, ifd in (("exif", ExifTags.IFD.Exif), ("gps", ExifTags.IFD.GPSInfo)):
        if attr in failed and not getattr(ifds, attr) and ifd in ifds.ifd0:
            where = ifds.ifd0[ifd]
            warnings.append(f"the {ifd.name} IFD (at offset {where!r}) is unreadable or empty")
    return ifds


def _load_with_piexif(
    raw: bytes, warnings: list[str], ifds: _Ifds, which: Collection[str]
) -> _Ifds:
    """Fill the directories named in ``which`` from piexif (the fallback parser)."""
    # piexif treats anything it does not recognise as a *file name*: only hand it EXIF.
    if not raw.startswith((b"\xff\xd8", b"Exif", b"II*\x00", b"MM\x00*")):
        return ifds
    tiff = raw[6:] if raw.startswith(b"Exif") else raw
    if tiff.startswith(b"MM"):
        ifds.endian = ">"
    ifds.raw_size = ifds.raw_size or len(raw)
    try:
        loaded = piexif.load(raw)
    except Exception as exc:
        warnings.append(f"piexif could not parse the EXIF block either ({_describe(exc)})")
        return ifds
    for attr, key in (("ifd0", "0th"), ("exif", "Exif"), ("gps", "GPS")):
        part = loaded.get(key)
        if attr in which and isinstance(part, dict):
            getattr(ifds, attr).update(part)
    return ifds


def _scan_jpeg(raw: bytes) -> tuple[bytes, tuple[int, int] | None]:
    """A JPEG's EXIF APP1 payload (b'Exif\\0\\0...') and its frame size, from its markers.

    Data that is not a JPEG is returned unchanged (for piexif to judge), with no size.
    """
    if not raw.startswith(b"\xff\xd8"):
        return raw, None
    app1, size = b"", None
    pos = 2
    while pos + 4 <= len(raw) and raw[pos] == 0xFF:
        marker = raw[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no EXIF before it
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        length = int.from_bytes(raw[pos + 2 : pos + 4], "big")
        segment = raw[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and segment.startswith(b"Exif\x00\x00") and not app1:
            app1 = segment
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and len(segment) >= 5:
            height, width = struct.unpack(">HH", segment[1:5])  # SOFn: precision, height, width
            size = (width, height) if width and height else None
        pos += 2 + max(length, 2)
    return app1, size


def _read_head(source: bytes | BinaryIO | str | os.PathLike[str], limit: int = 1 << 20) -> bytes:
    """The first ``limit`` bytes (enough for any APP1 segment); b'' if they cannot be read."""
    try:
        if isinstance(source, bytes | bytearray):
            return bytes(source[:limit])
        if isinstance(source, str | os.PathLike):
            with open(source, "rb") as fh:
                return fh.read(limit)
        source.seek(0)
        return source.read(limit)
    except (OSError, ValueError):
        return b""


# --- building the record ----------------------------------------------------------------


def _build(ifds: _Ifds, size: tuple[int, int] | None, warnings: list[str]) -> ExifRecord:
    if ifds.empty():
        if ifds.raw_size > 6:
            what = f"the EXIF block ({ifds.raw_size} bytes) has no readable tags (corrupt?)"
            warnings.append(f"{what}; no capture time (use the file time)")
        else:
            warnings.append("no EXIF metadata in this image; no capture time (use the file time)")
        return ExifRecord(
            width=size[0] if size else None,
            height=size[1] if size else None,
            warnings=tuple(warnings),
        )
    make = _field(ifds.ifd0, _MAKE, "Make", parse_text, warnings)
    maker_time, maker_serial = _reconyx_maker_note(ifds, make)
    captured_at, tag_name, utc_offset = _capture_time(ifds, maker_time, warnings)
    latitude, longitude = _coordinates(ifds.gps, warnings)
    serial = None
    for in_ifd0, tag in _SERIAL_TAGS:
        serial = _field(
            ifds.ifd0 if in_ifd0 else ifds.exif, tag, _name_of(tag), parse_text, warnings
        )
        if serial:
            break
    serial = serial or maker_serial
    return ExifRecord(
        captured_at=captured_at,
        utc_offset=utc_offset,
        timestamp_tag=tag_name,
        latitude=latitude,
        longitude=longitude,
        altitude=_field(ifds.gps, GPS_ALT, "GPSAltitude", altitude_parser(ifds.gps), warnings),
        make=make,
        model=_field(ifds.ifd0, _MODEL, "Model", parse_text, warnings),
        serial=serial,
        width=size[0] if size else None,
        height=size[1] if size else None,
        orientation=_field(ifds.ifd0, _ORIENTATION, "Orientation", parse_orientation, warnings),
        warnings=tuple(warnings),
    )


def _field(
    ifd: Mapping[int, Any],
    tag: int,
    name: str,
    parse: Callable[[Any, list[str], str], _T | None],
    warnings: list[str],
) -> _T | None:
    """``parse(ifd[tag])``; None when absent, or with a warning when unusable."""
    if tag not in ifd:
        return None
    try:
        return parse(ifd[tag], warnings, name)
    except BadValue as exc:
        warnings.append(f"{name} {exc}; ignored")
    except Exception as exc:  # a parser bug must not lose the rest of the record
        warnings.append(f"{name} could not be read ({_describe(exc)}); ignored")
    return None


def _capture_time(
    ifds: _Ifds, maker_time: str | None, warnings: list[str]
) -> tuple[datetime | None, str | None, str | None]:
    # (name, raw value, sub-second tag, offset tag), best first. A Reconyx maker note's time
    # ranks above IFD0 DateTime, which editing software rewrites.
    candidates: list[tuple[str, Any, int | None, int | None]] = [
        (name, ifds.exif[tag], subsec, offset)
        for name, tag, subsec, offset in _EXIF_TIME_TAGS
        if tag in ifds.exif
    ]
    if maker_time is not None:
        candidates.append(("Reconyx:DateTimeOriginal", maker_time, None, None))
    if _DATETIME in ifds.ifd0:
        candidates.append(("DateTime", ifds.ifd0[_DATETIME], _SUBSEC_TIME, _OFFSET_TIME))
    rejected: list[str] = []
    chosen: tuple[datetime, str, int | None, int | None] | None = None
    for name, value, subsec_tag, offset_tag in candidates:
        try:
            when = _parse_datetime(value)
        except BadValue as exc:
            rejected.append(f"{name} {exc}")
            continue
        chosen = (when, name, subsec_tag, offset_tag)
        break
    if chosen is None:
        if not rejected:
            tags = "DateTimeOriginal, DateTimeDigitized or DateTime"
            warnings.append(f"no EXIF capture time (no {tags} tag); use the file time")
        warnings.extend(f"{why}; no usable EXIF timestamp, use the file time" for why in rejected)
        return None, None, None
    when, name, subsec_tag, offset_tag = chosen
    warnings.extend(f"{why}; using {name}" for why in rejected)

    micros = None
    if subsec_tag is not None:
        micros = _field(ifds.exif, subsec_tag, _SUBSEC_NAMES[subsec_tag], _subsec, warnings)
    if micros is not None:
        when = when.replace(microsecond=micros)
    offset = None
    matching = [(n, t) for n, t in _OFFSET_TAGS if t == offset_tag]
    for offset_name, tag in matching + [(n, t) for n, t in _OFFSET_TAGS if t != offset_tag]:
        offset = _field(ifds.exif, tag, offset_name, _utc_offset, warnings)
        if offset:
            break
    if offset is None and when.tzinfo is not None:  # a zone written into the date string
        offset = _format_offset(when)
    return when.replace(tzinfo=None), name, offset


def _reconyx_maker_note(ifds: _Ifds, make: str | None) -> tuple[str | None, str | None]:
    """Capture time ('YYYY:MM:DD HH:MM:SS') and serial number from a Reconyx maker note.

    Reconyx HyperFire, UltraFire and HyperFire 2 cameras keep the time (and the serial) in
    their maker note; some firmware writes no EXIF DateTimeOriginal, and even no Make.
    Layouts as documented in exiftool's Reconyx.pm.
    """
    note = ifds.exif.get(_MAKER_NOTE)
    if not isinstance(note, bytes):
        return None, None
    try:
        if note.startswith(b"RECONYXUF\x00") and len(note) >= 0x5A:  # UltraFire: bytes
            sec, mi, hour, day, month, year_lo, year_hi = note[0x3B:0x42]
            year = year_lo + 256 * year_hi
            serial = note[0x4B:0x5A].decode("ascii", "replace")
        elif note.startswith(b"RECONYXH2\x00") and len(note) >= 0x9C:  # HyperFire 2
            sec, mi, hour, day, month, year = struct.unpack(ifds.endian + "6H", note[0x3E:0x4A])
            utf16 = "utf-16-le" if ifds.endian == "<" else "utf-16-be"
            serial = note[0x7E:0x9C].decode(utf16, "replace")
        elif (
            note.startswith(b"\x01\xf1")  # HyperFire (version 0xf101, little-endian)
            and len(note) >= 72
            and (not make or make.upper().startswith("RECONYX"))
        ):
            words = struct.unpack("<6H", note[22:34])
            if words[0] & 0xFF00 and not words[0] & 0xFF:  # some firmware: big-endian here
                words = tuple(((w >> 8) | (w << 8)) & 0xFFFF for w in words)
            sec, mi, hour, month, day, year = words
            serial = note[42:72].decode("utf-16-le", "replace")
        else:
            return None, None
    except (struct.error, ValueError):
        return None, None
    when = f"{year:04d}:{month:02d}:{day:02d} {hour:02d}:{mi:02d}:{sec:02d}"
    return when, as_text(serial)[:MAX_TEXT_LENGTH] or None


def _parse_datetime(value: Any) -> datetime:
    text = as_text(value)
    shown = quote(text)
    if not text.replace(":", "").strip():  # '    :  :     :  :  ' = clock not set
        raise BadValue("is blank")
    m = _DATETIME_RE.fullmatch(text)
    if m is None:
        raise BadValue(f"{shown} is not a date (expected 'YYYY:MM:DD HH:MM:SS')")
    year = int(m["y"])
    if year == 0:
        raise BadValue(f"{shown} is not a date (camera clock never set?)")
    frac = m["frac"] or ""
    try:
        when = datetime(
            year,
            int(m["mo"]),
            int(m["d"]),
            int(m["h"]),
            int(m["mi"]),
            int(m["s"] or 0),
            int(frac[:6].ljust(6, "0")),
        )
    except ValueError as exc:
        raise BadValue(f"{shown} is not a valid date ({exc})") from None
    max_year = datetime.now().year + 1
    if year < 1970:
        raise BadValue(f"{shown} is before 1970 (camera clock reset?)")
    if year > max_year:
        raise BadValue(f"{shown} is after {max_year} (camera clock wrong?)")
    if m["tz"]:
        offset = "+00:00" if m["tz"] == "Z" else _utc_offset(m["tz"], [], "")
        if offset:
            when = datetime.fromisoformat(when.isoformat() + offset)
    return when


def _subsec(value: Any, _warnings: list[str], _name: str) -> int | None:
    text = as_text(value)
    if not text:
        return None
    if not text.isdigit() or not text.isascii():
        raise BadValue(f"{quote(text)} is not a fraction of a second")
    return int(text[:6].ljust(6, "0"))


def _utc_offset(value: Any, _warnings: list[str], _name: str) -> str | None:
    text = as_text(value)
    if not text or text.replace(":", "").strip() == "":  # '   :  ' = not set
        return None
    m = _OFFSET_RE.fullmatch(text)
    if m is None or int(m["h"]) > 14 or int(m["m"]) >= 60:
        raise BadValue(f"{quote(text)} is not a UTC offset (expected '+HH:MM')")
    return f"{m['sign']}{m['h']}:{m['m']}"


def _format_offset(when: datetime) -> str | None:
    delta = when.utcoffset()
    if delta is None:
        return None
    minutes = int(delta.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _coordinates(gps: Mapping[int, Any], warnings: list[str]) -> tuple[float | None, float | None]:
    if GPS_LAT not in gps and GPS_LON not in gps:
        return None, None
    lat = _field(gps, GPS_LAT, "GPSLatitude", degrees_parser(gps, GPS_LAT_REF, "NS"), warnings)
    lon = _field(gps, GPS_LON, "GPSLongitude", degrees_parser(gps, GPS_LON_REF, "EW"), warnings)
    if lat is not None and abs(lat) > 90:
        warnings.append(f"GPSLatitude {lat:.6f} is out of range (|latitude| <= 90); ignored")
        lat = None
    if lon is not None and abs(lon) > 180:
        warnings.append(f"GPSLongitude {lon:.6f} is out of range (|longitude| <= 180); ignored")
        lon = None
    if (lat is None) != (lon is None):
        have, missing = ("GPSLatitude", "GPSLongitude")
        if lat is None:
            have, missing = missing, have
        warnings.append(f"{have} without a usable {missing}; GPS position ignored")
        return None, None
    return lat, lon


def _describe(exc: BaseException) -> str:
    msg = str(exc).replace(";", ",")
    if len(msg) > 120:
        msg = msg[:117] + "..."
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _name_of(tag: int) -> str:
    names = {_ADOBE_SERIAL: "SerialNumber"}
    return names.get(tag) or ExifTags.TAGS.get(tag, f"0x{tag:04X}")


def _tag_name(tag: int) -> str:
    return f"{_name_of(tag)} (0x{tag:04X})"
