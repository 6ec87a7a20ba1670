"""One EXIF value made usable, or refused with a reason: GPS rationals, text, orientation.

Every parser here takes ``(value, warnings, name)``, appends to ``warnings`` what it had to
change and raises :class:`BadValue` (a plain-words message) for what it cannot use;
:mod:`models_ml.exif` drops such a value and records why.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

#: Longest make/model/serial kept; longer values are cut (a 100 kB Make is garbage anyway).
MAX_TEXT_LENGTH = 128

_SHOWN = 40  # characters of a bad value quoted in a warning
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

# GPS IFD tag numbers (EXIF 2.32).
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON = 1, 2, 3, 4
GPS_ALT_REF, GPS_ALT = 5, 6


class BadValue(ValueError):
    """A tag's value cannot be used; the message says why (in plain words)."""


def degrees_parser(
    gps: Mapping[int, Any], ref_tag: int, refs: str
) -> Callable[[Any, list[str], str], float | None]:
    axis = "GPSLatitude" if refs == "NS" else "GPSLongitude"

    def parse(value: Any, warnings: list[str], _name: str) -> float:
        parts = _rationals(value)
        if not 1 <= len(parts) <= 3:
            raise BadValue(f"has {len(parts)} values (expected degrees, minutes, seconds)")
        nums = [_ratio(n, d, warnings, axis) for n, d in parts]
        degrees = abs(nums[0]) + sum(abs(x) / 60.0**i for i, x in enumerate(nums[1:], start=1))
        sign = -1.0 if nums[0] < 0 else 1.0
        ref = as_text(gps.get(ref_tag, "")).upper()[:1]
        if ref == refs[1]:
            sign = -1.0
        elif ref != refs[0]:
            what = f"is {quote(ref)}" if ref else "is missing"
            assumed = "north" if refs == "NS" else "east"
            warnings.append(
                f"{axis}Ref {what} (expected {refs[0]} or {refs[1]}); assuming {assumed}"
            )
        if not math.isfinite(degrees):
            raise BadValue("is not a finite number")
        return sign * degrees if degrees else 0.0

    return parse


def altitude_parser(gps: Mapping[int, Any]) -> Callable[[Any, list[str], str], float | None]:
    def parse(value: Any, warnings: list[str], _name: str) -> float:
        parts = _rationals(value)
        if len(parts) != 1:
            raise BadValue(f"has {len(parts)} values (expected one)")
        metres = _ratio(*parts[0], warnings, "GPSAltitude")
        ref = gps.get(GPS_ALT_REF, 0)
        if isinstance(ref, bytes | str):
            ref = ref[:1]
            ref = ref[0] if isinstance(ref, bytes) and ref else ref
            ref = int(ref) if isinstance(ref, str) and ref.isdigit() else ref
        if ref == 1 and metres > 0:
            metres = -metres
        elif ref not in (0, 1, b"", ""):
            warnings.append(f"GPSAltitudeRef {ref!r} is not 0 or 1; assuming above sea level")
        if not math.isfinite(metres) or abs(metres) > 100_000:
            raise BadValue(f"{metres} m is not a plausible altitude")
        return metres

    return parse


def _rationals(value: Any) -> list[tuple[float, float]]:
    """GPS rationals as (numerator, denominator) pairs, from Pillow or piexif values."""
    if _is_rational(value):
        return [_pair(value)]
    if isinstance(value, tuple | list):
        if len(value) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in value):
            return [(value[0], value[1])]  # piexif's single RATIONAL
        if all(_is_rational(x) for x in value):
            return [_pair(x) for x in value]
    raise BadValue(f"has unexpected type {type(value).__name__} ({shorten(repr(value))})")


def _is_rational(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, int | float):
        return True
    if hasattr(x, "numerator") and hasattr(x, "denominator"):
        return True
    return (
        isinstance(x, tuple)
        and len(x) == 2
        and all(isinstance(y, int) and not isinstance(y, bool) for y in x)
    )


def _pair(x: Any) -> tuple[float, float]:
    if isinstance(x, tuple):
        return float(x[0]), float(x[1])
    if isinstance(x, float):
        return x, 1.0
    return float(x.numerator), float(x.denominator)


def _ratio(num: float, den: float, warnings: list[str], name: str) -> float:
    if den == 0:
        if num == 0:  # 0/0: "not recorded"; some cameras write it for unused seconds
            warnings.append(f"{name} has a 0/0 component; treated as 0")
            return 0.0
        raise BadValue(f"has a zero denominator ({num:g}/0)")
    return num / den


def parse_orientation(value: Any, _warnings: list[str], _name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 8:
        return value
    raise BadValue(f"{shorten(repr(value))} is not one of 1..8")


def parse_text(value: Any, warnings: list[str], name: str) -> str | None:
    """A printable string: cut at the first NUL, stripped, at most MAX_TEXT_LENGTH long."""
    if not isinstance(value, str | bytes):
        raise BadValue(f"has unexpected type {type(value).__name__} (expected text)")
    text = as_text(value)
    if len(text) > MAX_TEXT_LENGTH:
        shown = quote(text)
        warnings.append(f"{name} {shown} is {len(text)} characters long; cut to {MAX_TEXT_LENGTH}")
        text = text[:MAX_TEXT_LENGTH].rstrip()
    return text or None


def as_text(value: Any) -> str:
    """Tag text without NUL padding, control characters or surrounding whitespace."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            value = value.decode("latin-1")
    elif not isinstance(value, str):
        raise BadValue(f"has unexpected type {type(value).__name__} (expected text)")
    value = value.split("\x00", 1)[0]
    return _CONTROL_RE.sub("", value).strip()


def quote(text: str) -> str:
    return f"'{shorten(text)}'"


def shorten(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
