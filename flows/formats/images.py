"""``trapflow export images``: copies of selected images that are safe to hand on.

Plain functions, no Prefect. What a copy gets (docs/formats.md, docs/security.md):

- **People blurred** (default): every stored person box of the image (any model, any
  confidence down to ``inference_floor``, or a box a reviewer called a person: dbt's
  ``marts.fct_detections``) is pixelated and blurred with the dashboard's blur
  (``flows.access.privacy.blur_boxes``), the image re-encoded (JPEG stays JPEG at quality 95,
  anything else becomes PNG without metadata). A JPEG's EXIF goes with it minus what could
  show the person or the place: the embedded preview thumbnail, the maker note, and GPS unless
  it is kept; ``Orientation`` is reset because the pixels are stored upright; XMP is not
  carried over. An image that cannot be decoded is skipped, never copied unblurred.
- **GPS stripped** (default): the EXIF GPS IFD (and XMP packets that carry GPS) are removed
  from the JPEG's header without touching the image data, so everything else (DateTimeOriginal,
  make, model, serial, ...) stays byte for byte. With ``strip_gps=False`` GPS is kept, except
  at sites that ever recorded a sensitive species (``flows.access.privacy.sensitive_sites``), where
  it is stripped all the same.
- **Otherwise** the file is copied byte for byte.

EXIF is edited in place (:class:`ExifEditor`): a removed IFD's bytes are zeroed and nothing
else moves. Re-serialising with piexif (``load`` + ``dump``) was tried and rejected: it cuts
the last character of Make/Model on some cameras in the samples (``SY`` -> ``S``) and cannot
write tags stored with the wrong type, which cameras do.

Originals are only ever read. ``manifest.csv`` in the output lists every exported file with
the SHA-256 of its source (checked against the SHA-256 recorded at ingest, which is the
image's ``media_id``: a file that changed since is skipped) and of the exported bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from flows.access.privacy import blur_boxes, sensitive_sites
from flows.formats.common import default_setting, require_marts
from flows.pipeline.discovery import read_file
from flows.store import warehouse as _warehouse

MANIFEST = "manifest.csv"
MANIFEST_FIELDS = (
    "exported_path", "media_id", "source_sha256", "exported_sha256", "source_path", "site_id",
    "camera_id", "captured_at", "action", "people_blurred", "gps", "exif",
)  # fmt: skip
JPEG_QUALITY = 95
_SOI, _SOS = b"\xff\xd8", 0xDA
_APP1 = 0xE1
_EXIF_HEADER = b"Exif\x00\x00"
_XMP_HEADERS = (b"http://ns.adobe.com/xap/1.0/\x00", b"http://ns.adobe.com/xmp/extension/\x00")
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # markers without a length

Box = tuple[float, float, float, float]


@dataclass
class Exported:
    """One image's exported bytes and what was done to them."""

    data: bytes
    suffix: str  # "": the source's name; ".png": a non-JPEG re-encoded
    action: str  # copied / gps_stripped / blurred
    people_blurred: int
    gps: str  # none / stripped / kept / stripped (sensitive site)
    exif: str  # kept / rewritten / dropped (...) / none


@dataclass
class ImageExportResult:
    out_dir: Path
    manifest: Path
    exported: int = 0
    copied: int = 0  # byte-identical copies
    blurred: int = 0  # images with people blurred
    gps_stripped: int = 0  # images whose GPS was removed
    sensitive_gps_stripped: int = 0  # of those: kept on request but at a sensitive site
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source path, why)


# --------------------------------------------------------------------------- one image


def _jpeg_segments(data: bytes) -> tuple[list[bytes], bytes]:
    """A JPEG's header segments (each with its marker) and everything from SOS on."""
    if data[:2] != _SOI:
        raise ValueError("not a JPEG (no SOI marker)")
    pos, segments = 2, list[bytes]()
    while pos + 2 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"no JPEG marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == _SOS:
            return segments, data[pos:]
        if marker in _STANDALONE:
            segments.append(data[pos : pos + 2])
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > len(data):
            raise ValueError(f"JPEG segment at byte {pos} runs past the end of the file")
        segments.append(data[pos : pos + 2 + length])
        pos += 2 + length
    raise ValueError("the JPEG has no image data (no SOS marker)")


def _is_exif(segment: bytes) -> bool:
    return segment[1] == _APP1 and segment[4:10] == _EXIF_HEADER


def _is_gps_xmp(segment: bytes) -> bool:
    return (
        segment[1] == _APP1
        and any(segment[4:].startswith(h) for h in _XMP_HEADERS)
        and b"GPS" in segment
    )


def _app1(payload: bytes) -> bytes:
    return b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload


def _with_header(data: bytes, exif: bytes | None, drop_gps_xmp: bool) -> bytes:
    """The JPEG with every EXIF segment replaced by ``exif`` (none: no EXIF) and, with
    ``drop_gps_xmp``, XMP packets mentioning GPS removed; the image data is untouched."""
    segments, rest = _jpeg_segments(data)
    kept = [s for s in segments if not _is_exif(s) and not (drop_gps_xmp and _is_gps_xmp(s))]
    if exif:
        at = 1 if kept and kept[0][1] == 0xE0 else 0  # after a JFIF APP0
        kept.insert(at, _app1(exif))
    return _SOI + b"".join(kept) + rest


_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_EXIF_POINTER, _GPS_POINTER, _MAKER_NOTE, _ORIENTATION = 0x8769, 0x8825, 0x927C, 0x0112
_PREVIEW_DATA = ((0x0201, 0x0202), (0x0111, 0x0117))  # (JPEG | strip) offset, byte count

Entry = tuple[int, int, int, int, int]  # (entry offset, tag, type, count, value field as u32)


class ExifEditor:
    """In-place edits of one EXIF (TIFF) block. An entry taken out has the bytes it pointed
    to zeroed, so nothing is left to recover; every other byte stays as the camera wrote it
    (re-serialising with piexif loses characters of Make/Model on some cameras and drops
    tags of the wrong type). Raises ``ValueError`` on a structure that points outside the
    block (hostile or broken EXIF)."""

    def __init__(self, tiff: bytes) -> None:
        self.buf = bytearray(tiff)
        if bytes(self.buf[:2]) not in (b"II", b"MM"):
            raise ValueError("the EXIF block has no TIFF byte order")
        self.order: Literal["little", "big"] = "little" if self.buf[:2] == b"II" else "big"
        self.ifd0 = self._u32(4)

    def _check(self, off: int, size: int) -> None:
        if off < 0 or off + size > len(self.buf):
            raise ValueError(f"an EXIF offset ({off}) points outside the block")

    def _u16(self, off: int) -> int:
        self._check(off, 2)
        return int.from_bytes(self.buf[off : off + 2], self.order)

    def _u32(self, off: int) -> int:
        self._check(off, 4)
        return int.from_bytes(self.buf[off : off + 4], self.order)

    def _zero(self, off: int, size: int) -> None:
        end = min(len(self.buf), off + size)
        if 8 <= off < end:
            self.buf[off:end] = bytes(end - off)

    def entries(self, ifd: int) -> list[Entry]:
        if ifd < 8:  # inside the TIFF header
            raise ValueError(f"an EXIF IFD offset ({ifd}) points into the header")
        n = self._u16(ifd)
        self._check(ifd + 2, 12 * n + 4)
        return [
            (at, self._u16(at), self._u16(at + 2), self._u32(at + 4), self._u32(at + 8))
            for at in (ifd + 2 + 12 * i for i in range(n))
        ]

    def find(self, ifd: int, tag: int) -> Entry | None:
        return next((e for e in self.entries(ifd) if e[1] == tag), None)

    def _wipe_value(self, entry: Entry) -> None:
        _at, _tag, kind, count, value = entry
        size = _TYPE_SIZES.get(kind, 1) * count
        if size > 4:
            self._zero(value, size)

    def wipe_ifd(self, ifd: int) -> None:
        """Zero an IFD that nothing points to any more: its entries, their values, its link."""
        entries = self.entries(ifd)
        for entry in entries:
            self._wipe_value(entry)
        self._zero(ifd, 2 + 12 * len(entries) + 4)

    def remove(self, ifd: int, tag: int) -> Entry | None:
        """Take ``tag`` out of the IFD: its value is zeroed, the later entries and the link
        to the next IFD move up, the freed slot is zeroed. The entry as it was, or None."""
        entries = self.entries(ifd)
        for entry in entries:
            if entry[1] != tag:
                continue
            if tag not in (_EXIF_POINTER, _GPS_POINTER):  # an IFD pointer's target: wipe_ifd
                self._wipe_value(entry)
            start, end = entry[0], ifd + 2 + 12 * len(entries) + 4
            self.buf[start : end - 12] = self.buf[start + 12 : end]
            self._zero(end - 12, 12)
            self.buf[ifd : ifd + 2] = (len(entries) - 1).to_bytes(2, self.order)
            return entry
        return None

    def has_gps(self) -> bool:
        return self.find(self.ifd0, _GPS_POINTER) is not None

    def strip_gps(self) -> bool:
        """Remove the GPS IFD (the pointer, its entries and their values)."""
        entry = self.remove(self.ifd0, _GPS_POINTER)
        if entry is not None and entry[4]:
            self.wipe_ifd(entry[4])
        return entry is not None

    def drop_previews(self) -> None:
        """Remove what can hold an unblurred copy of the picture: the thumbnail IFD (IFD1)
        with its image data, and the maker note (some makers store a preview there)."""
        link = self.ifd0 + 2 + 12 * len(self.entries(self.ifd0))
        ifd1 = self._u32(link)
        if ifd1:
            for offset_tag, size_tag in _PREVIEW_DATA:
                where, size = self.find(ifd1, offset_tag), self.find(ifd1, size_tag)
                if where is not None and size is not None and where[3] == size[3] == 1:
                    self._zero(self._scalar(where), self._scalar(size))
            self.wipe_ifd(ifd1)
            self.buf[link : link + 4] = bytes(4)
        exif = self.find(self.ifd0, _EXIF_POINTER)
        if exif is not None and exif[4]:
            self.remove(exif[4], _MAKER_NOTE)

    def _scalar(self, entry: Entry) -> int:
        """The value of a one-element SHORT or LONG entry."""
        return self._u16(entry[0] + 8) if entry[2] == 3 else entry[4]

    def set_upright(self) -> None:
        """Orientation = 1 (the pixels were stored in display orientation)."""
        entry = self.find(self.ifd0, _ORIENTATION)
        if entry is not None and entry[2] == 3 and entry[3] == 1:
            self.buf[entry[0] + 8 : entry[0] + 10] = (1).to_bytes(2, self.order)

    def payload(self) -> bytes:
        """The block as an APP1 payload (``Exif\\0\\0`` + TIFF)."""
        return _EXIF_HEADER + bytes(self.buf)


def _editor(segments: Sequence[bytes]) -> ExifEditor | None:
    """An editor of the JPEG's (first) EXIF segment; None when there is none.
    Raises ``ValueError`` when it cannot be read."""
    first = next((s for s in segments if _is_exif(s)), None)
    return ExifEditor(first[10:]) if first is not None else None


def _decode(data: bytes, max_pixels: int) -> Any:
    from models_ml import decode_rgb, open_image

    return decode_rgb(open_image(data, max_pixels=max_pixels), draft_size=None)


def privatise(
    data: bytes,
    image_format: str,
    people: Sequence[Box],
    *,
    blur: bool,
    strip_gps: bool,
    max_pixels: int,
) -> Exported:
    """The bytes to export for one image (see the module's docstring); raises
    ``models_ml.ImageRejected`` when an image that must be blurred cannot be decoded and
    ``ValueError`` when a JPEG's header cannot be rewritten."""
    is_jpeg = image_format.upper() in ("JPEG", "MPO") or data[:2] == _SOI
    if is_jpeg:
        return _privatise_jpeg(data, people, blur=blur, strip_gps=strip_gps, max_pixels=max_pixels)
    return _privatise_other(data, people, blur=blur, strip_gps=strip_gps, max_pixels=max_pixels)


def _privatise_jpeg(
    data: bytes, people: Sequence[Box], *, blur: bool, strip_gps: bool, max_pixels: int
) -> Exported:
    segments, _rest = _jpeg_segments(data)
    exif_segments = sum(_is_exif(s) for s in segments)
    gps_xmp = any(_is_gps_xmp(s) for s in segments)
    try:
        editor = _editor(segments)
        has_gps = gps_xmp or exif_segments > 1 or (editor is not None and editor.has_gps())
    except ValueError:  # unreadable EXIF: cannot tell what it holds, assume the worst
        editor, has_gps = None, True
    gps = "none" if not has_gps else ("stripped" if strip_gps else "kept")
    note = "none" if not exif_segments else "dropped (unreadable)"
    header = None
    if editor is not None:
        try:
            if strip_gps:
                editor.strip_gps()
            if blur and people:  # the pixels change: previews go, orientation is upright
                editor.drop_previews()
                editor.set_upright()
            header = editor.payload()
            dropped = ["GPS"] if strip_gps and has_gps else []
            if blur and people:
                dropped.append("previews")
            note = f"kept (without {' and '.join(dropped)})" if dropped else "kept"
        except ValueError:
            header = None
    if exif_segments > 1 and header is not None:
        note += ", 1 of several EXIF segments"
    if has_gps and not strip_gps and header is None and exif_segments:
        gps = "stripped (EXIF unreadable)"
    if blur and people:
        rgb = blur_boxes(_decode(data, max_pixels), people)
        out = io.BytesIO()  # Pillow writes no XMP and no EXIF but the one given
        rgb.save(
            out, format="JPEG", quality=JPEG_QUALITY, exif=header or b"",
            icc_profile=rgb.info.get("icc_profile"),
        )  # fmt: skip
        return Exported(out.getvalue(), "", "blurred", len(people), gps, note)
    if not (strip_gps and has_gps):
        return Exported(data, "", "copied", 0, gps, "kept" if exif_segments else "none")
    stripped = _with_header(data, header, drop_gps_xmp=True)
    return Exported(stripped, "", "gps_stripped", 0, gps, note)


def _privatise_other(
    data: bytes, people: Sequence[Box], *, blur: bool, strip_gps: bool, max_pixels: int
) -> Exported:
    """PNG, TIFF, ...: copied as they are, or re-encoded as PNG without any metadata."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            tags = img.getexif()
            has_exif = bool(tags)
            has_gps = _GPS_POINTER in tags or b"GPS" in _xmp_of(img.info)
    except Exception:  # unreadable header metadata: assume the worst
        has_exif = has_gps = True
    must_blur = blur and bool(people)
    if not must_blur and not (strip_gps and has_gps):
        gps = "kept" if has_gps else "none"
        return Exported(data, "", "copied", 0, gps, "kept" if has_exif else "none")
    rgb = _decode(data, max_pixels)
    if must_blur:
        blur_boxes(rgb, people)
    out = io.BytesIO()
    rgb.save(out, format="PNG")
    return Exported(
        out.getvalue(), ".png", "blurred" if must_blur else "gps_stripped",
        len(people) if must_blur else 0, "stripped" if has_gps else "none",
        "dropped (re-encoded as PNG)",
    )  # fmt: skip


def _xmp_of(info: Mapping[Any, Any]) -> bytes:
    value = info.get("xmp") or info.get("XML:com.adobe.xmp") or b""
    return value.encode() if isinstance(value, str) else bytes(value)


# --------------------------------------------------------------------------- selection


def safe_relative(path: str) -> PurePosixPath:
    """A relative output path for a stored source path: no root, no '..', no empty parts."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    clean = ["_" if p == ".." else p for p in parts] or ["image"]
    return PurePosixPath(*clean)


_SELECT = """
select m.media_id, m.site_id, m.camera_id, m.captured_at, m.source_uri, m.file_path,
       r.media_type, coalesce(r.image_format, '') as image_format
from marts.dim_media m join raw.media r using (media_id)
where (len($sites) = 0 or m.site_id in (select unnest($sites)))
  and (len($species) = 0 or m.media_id in (
        select media_id from intermediate.int_observations_per_image
        where lower(label) in (select unnest($species))))
order by m.site_id, m.captured_at, m.media_id
"""

#: Every box of a still that shows a person by its detector or by its review (any model,
#: any confidence, false positives too: blurring too much is the safe side).
_PEOPLE = """
select media_id, bbox_x, bbox_y, bbox_w, bbox_h
from marts.fct_detections
where (category = 'person' or detector_category = 'person')
  and frame_number is null and bbox_x is not null and media_id in (select unnest(?))
order by media_id, detection_id
"""


def find_people(con: Any, media_ids: Sequence[str]) -> dict[str, list[Box]]:
    """media_id -> the person boxes to blur in the image (:data:`_PEOPLE`)."""
    people: dict[str, list[Box]] = {}
    if not media_ids:
        return people
    for media_id, x, y, w, h in con.execute(_PEOPLE, [list(media_ids)]).fetchall():
        people.setdefault(str(media_id), []).append((float(x), float(y), float(w), float(h)))
    return people


def export_images(
    warehouse: Path,
    out_dir: Path,
    *,
    sites: Sequence[str] = (),
    species: Sequence[str] = (),
    blur: bool = True,
    strip_gps: bool = True,
    sensitive: Sequence[str] = (),
    thresholds: Mapping[str, float] | None = None,
    classification_threshold: float | None = None,
    max_image_pixels: int | None = None,
) -> ImageExportResult:
    """Copy the selected images (``sites``; ``species``: lower-case labels of the counted
    observations, as the marts have them) into ``out_dir`` with people blurred and GPS
    stripped unless turned off, and write ``manifest.csv`` there. Clips are listed as skipped.
    Which sites are sensitive is ``sensitive_sites``'s (dbt's relations); an unset
    ``max_image_pixels`` is the setting's default.
    """
    require_marts(warehouse)
    if max_image_pixels is None:
        max_image_pixels = int(default_setting("max_image_pixels"))
    with _warehouse.connect(warehouse, read_only=True) as con:
        cur = con.execute(
            _SELECT,
            {"sites": list(sites), "species": [s.lower() for s in species]},
        )
        names = [d[0] for d in cur.description]
        media = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        people = find_people(con, [m["media_id"] for m in media]) if blur else {}
        risky = (
            sensitive_sites(con, sensitive, thresholds, classification_threshold)
            if not strip_gps
            else set()
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    root = out_dir.resolve()
    result = ImageExportResult(out_dir=out_dir, manifest=out_dir / MANIFEST)
    rows: list[dict[str, Any]] = []
    taken: set[Path] = set()
    for m in media:
        source = m["file_path"]
        if m["media_type"] != "image":
            result.skipped.append((source, "a clip: only images are exported"))
            continue
        try:
            data = read_file(m["source_uri"], source)
        except OSError as exc:
            result.skipped.append((source, f"cannot read it ({exc}): is the source reachable?"))
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest != m["media_id"]:
            result.skipped.append(
                (source, "the file changed since it was ingested (SHA-256 differs): run "
                 "'trapflow run' on the source again, then export"),
            )  # fmt: skip
            continue
        at_risk = m["site_id"] in risky
        try:
            out = privatise(
                data, m["image_format"], people.get(m["media_id"], []), blur=blur,
                strip_gps=strip_gps or at_risk, max_pixels=max_image_pixels,
            )  # fmt: skip
        except Exception as exc:  # ImageRejected, a broken header: never copy it unblurred
            result.skipped.append((source, f"cannot be made safe to export ({exc})"))
            continue
        if at_risk and out.gps == "stripped":
            out.gps = "stripped (sensitive site)"
            result.sensitive_gps_stripped += 1
        target = _target(root, source, out.suffix, m["media_id"], taken)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(out.data)
        result.exported += 1
        result.copied += out.action == "copied"
        result.blurred += out.action == "blurred"
        result.gps_stripped += out.gps.startswith("stripped")
        rows.append(
            {
                "exported_path": target.relative_to(root).as_posix(),
                "media_id": m["media_id"], "source_sha256": digest,
                "exported_sha256": hashlib.sha256(out.data).hexdigest(),
                "source_path": source, "site_id": m["site_id"], "camera_id": m["camera_id"],
                "captured_at": _iso(m["captured_at"]), "action": out.action,
                "people_blurred": out.people_blurred, "gps": out.gps, "exif": out.exif,
            }
        )  # fmt: skip
    with result.manifest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return result


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _target(root: Path, source: str, suffix: str, media_id: str, taken: set[Path]) -> Path:
    """Where one image goes under ``root``: its source path (made safe), a new suffix when
    it was re-encoded, and the start of its SHA-256 when two sources share a path."""
    rel = safe_relative(source)
    if suffix and rel.suffix.lower() != suffix:
        rel = rel.with_suffix(suffix)
    target = (root / rel).resolve()
    if target in taken or target.name == MANIFEST:
        target = target.with_name(f"{target.stem}-{media_id[:12]}{target.suffix}")
    if not target.is_relative_to(root):  # a link inside the output folder: refuse to follow
        target = root / f"{media_id}{rel.suffix}"
    taken.add(target)
    return target


__all__ = [
    "MANIFEST",
    "MANIFEST_FIELDS",
    "Exported",
    "ImageExportResult",
    "export_images",
    "find_people",
    "privatise",
    "safe_relative",
]
