"""Opening, decoding and letterboxing photos for the detectors (Pillow, OpenCV, numpy).

Every way a file can fail to be a usable photo ends in :class:`ImageRejected` with a short
``reason`` code, so a batch can record the failure as data and go on with the next file.
"""

from __future__ import annotations

import contextlib
import io
import math
import string

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

# Callers decode and letterbox several photos side by side; OpenCV's own thread pool would
# only compete with them (and with onnxruntime) for the same cores.
cv2.setNumThreads(1)

#: Formats we decode. Anything else Pillow recognises (EPS, PSD, PDF, ...) is refused:
#: some of those plugins call external programs, and none of them are camera-trap photos.
SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "TIFF", "WEBP", "BMP", "GIF", "AVIF")

#: A sane default for :func:`open_image` (80 MP: bigger than any camera-trap sensor, and below
#: Pillow's own DecompressionBombWarning threshold of ~89.5 MP).
DEFAULT_MAX_PIXELS = 80_000_000

# EXIF orientations that swap width and height (transpose, rotate 90/270, transverse).
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION_TAG = 0x0112

# Leading bytes of formats people point a camera-trap pipeline at by mistake (or that Pillow
# cannot decode here). Checked only after Pillow has failed, to word the error message.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF8", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
    (b"%PDF", "PDF document"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"\x1f\x8b", "gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "7z archive"),
    (b"Rar!", "RAR archive"),
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "ASF/WMV video"),
    (b"\x1a\x45\xdf\xa3", "Matroska/WebM video"),
    (b"\x00\x00\x01\xba", "MPEG-PS video"),
    (b"FLV\x01", "FLV video"),
    (b"ID3", "MP3 audio"),
    (b"SQLite format 3\x00", "SQLite database"),
)
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_TEXT_BYTES = frozenset(string.printable.encode("ascii"))


class ImageRejected(Exception):
    """A file that cannot be used as a photo.

    ``reason`` is one of ``empty_file``, ``not_an_image``, ``unsupported_format``,
    ``decompression_bomb``, ``truncated``, ``corrupt``; ``message`` says what went wrong and
    what to do about it.
    """

    REASONS = frozenset(
        {
            "empty_file",
            "not_an_image",
            "unsupported_format",
            "decompression_bomb",
            "truncated",
            "corrupt",
        }
    )

    def __init__(self, reason: str, message: str) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown ImageRejected reason {reason!r}")
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

    def __reduce__(self) -> tuple[type[ImageRejected], tuple[str, str]]:
        # picklable (process pools, task results): rebuild from both fields, not from args
        return type(self), (self.reason, self.message)


def _sniff(head: bytes) -> str | None:
    """Name the format of ``head`` (first bytes of a file) when it is one we know."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return "HEIC/HEIF"
        if brand in _AVIF_BRANDS:
            return "AVIF"
        return "MP4/MOV video"
    if head[:4] == b"RIFF" and len(head) >= 12:
        kind = head[8:12]
        if kind == b"WEBP":
            return "WEBP"
        if kind == b"AVI ":
            return "AVI video"
        return "RIFF container"
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return name
    return None


def sniff_clip(head: bytes) -> str | None:
    """The container a file's first bytes (16 are enough) say it is, when it is a video clip
    (MP4/MOV, AVI, ASF/WMV, Matroska/WebM, MPEG-PS, FLV), else None. Cheap: no decoding."""
    name = _sniff(head)
    return name if name is not None and name.endswith(" video") else None


def _describe_bytes(head: bytes) -> str:
    """Say what the first bytes of a non-image look like, for the error message."""
    sample = head[:32]
    stripped = sample.lstrip(b"\xef\xbb\xbf")  # UTF-8 BOM
    if stripped and all(b in _TEXT_BYTES for b in stripped):
        text = stripped.decode("ascii").strip()
        kind = "HTML/XML" if text.startswith("<") else "text"
        return f"it looks like {kind}: {text[:24]!r}"
    return f"it starts with bytes {sample[:12].hex(' ')}"


def _pixels(n: int) -> str:
    return f"{n / 1e6:,.1f} MP" if n >= 100_000 else f"{n:,} pixels"


def _bomb(width: int, height: int, max_pixels: int) -> ImageRejected:
    gib = width * height * 3 / 2**30
    return ImageRejected(
        "decompression_bomb",
        f"the header says {width}x{height} ({_pixels(width * height)}), over the limit of "
        f"{_pixels(max_pixels)}; decoding it would need ~{gib:,.2f} GiB. "
        "If this is a genuine photo, raise max_pixels; otherwise skip the file.",
    )


def _is_truncation(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "truncated" in text or "broken data stream" in text


def _unidentified(data: bytes) -> ImageRejected:
    """Word the rejection of bytes that no supported Pillow plugin would open."""
    head = data[:32]
    sniffed = _sniff(head)
    try:
        with Image.open(io.BytesIO(data)) as other:  # identify only: no pixels are decoded
            other_format = other.format
    except Exception:  # any failure here (bomb included) just means "not identified"
        other_format = None
    if other_format is not None:
        return ImageRejected(
            "unsupported_format",
            f"Pillow reads it as {other_format}, which trapflow does not decode "
            f"(supported: {', '.join(SUPPORTED_FORMATS)}); convert it to JPEG or PNG.",
        )
    if sniffed in ("HEIC/HEIF", "AVIF"):
        return ImageRejected(
            "unsupported_format",
            f"it is a {sniffed} photo and no {sniffed} decoder is installed; "
            "convert it to JPEG (or set the camera/phone to save JPEG).",
        )
    if sniffed in SUPPORTED_FORMATS:
        return ImageRejected(
            "corrupt",
            f"it starts like a {sniffed} file but its header cannot be read "
            "(truncated or damaged); copy it from the card again.",
        )
    if sniffed is not None:
        hint = "; clips are read as videos, not as photos" if "video" in sniffed else ""
        return ImageRejected("not_an_image", f"not a photo: the file is {sniffed} data{hint}.")
    return ImageRejected(
        "not_an_image",
        f"no image format recognised; {_describe_bytes(head)}. Check that the file is a photo.",
    )


def _openable_formats() -> list[str]:
    """The supported formats that have an opener here (MPO comes through the JPEG opener)."""
    Image.init()
    return [f for f in SUPPORTED_FORMATS if f in Image.OPEN]


def open_image(data: bytes, *, max_pixels: int) -> Image.Image:
    """Open ``data`` lazily and check its header (format, size) without decoding pixels.

    Raises :class:`ImageRejected` (``empty_file``, ``not_an_image``, ``unsupported_format``,
    ``decompression_bomb``, ``truncated``, ``corrupt``).
    """
    if not data:
        raise ImageRejected(
            "empty_file",
            "the file is 0 bytes: the copy from the card failed or was interrupted; copy it "
            "again from the card",
        )
    try:
        img = Image.open(io.BytesIO(data), formats=_openable_formats())
    except Image.DecompressionBombError as exc:
        # Pillow refuses > 2 * Image.MAX_IMAGE_PIXELS while reading the header.
        raise ImageRejected(
            "decompression_bomb",
            f"the header claims a size over Pillow's hard limit ({exc}); skip the file.",
        ) from exc
    except UnidentifiedImageError as exc:
        raise _unidentified(data) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if _is_truncation(exc) or isinstance(exc, EOFError):
            raise ImageRejected(
                "truncated",
                f"the file ends inside its header ({exc}); copy it from the card again.",
            ) from exc
        raise ImageRejected(
            "corrupt", f"the header cannot be read ({exc}); the file is damaged."
        ) from exc
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageRejected("corrupt", f"the header gives an empty size {width}x{height}.")
    if width * height > max_pixels:
        img.close()
        raise _bomb(width, height, max_pixels)
    return img


def _exif_orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(_EXIF_ORIENTATION_TAG, 1)
        return int(value)
    except Exception:  # malformed EXIF must not reject a decodable photo
        return 1


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any decoded mode to 8-bit RGB."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I;16"):
        high = np.asarray(img, dtype=np.uint16) >> 8
        return Image.fromarray(high.astype(np.uint8), "L").convert("RGB")
    if mode in ("I", "F"):
        values = np.asarray(img, dtype=np.float64)
        peak = float(values.max()) if values.size else 0.0
        if peak > 255.0:
            values = values * (255.0 / peak)
        return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "P" or mode == "PA":
        img = img.convert("RGBA")  # palette transparency must go through RGBA
    if mode in ("LAB", "HSV"):
        return Image.fromarray(np.asarray(img.convert("RGB")), "RGB")
    return img.convert("RGB")


def _draft_request(
    stored_size: tuple[int, int], target: tuple[int, int], orientation: int
) -> tuple[int, int] | None:
    """The smallest (stored-orientation) size that still fills ``target`` after letterboxing.

    Letterboxing scales by ``min(W/w, H/h)``, so only the fitted size must be covered, not
    the whole target box. None when the photo is already smaller than that (no draft).
    """
    swap = orientation in _SWAPPING_ORIENTATIONS
    w, h = stored_size[::-1] if swap else stored_size
    ratio = min(target[0] / w, target[1] / h)
    if ratio >= 1:
        return None
    fit = (max(1, math.ceil(w * ratio)), max(1, math.ceil(h * ratio)))
    return (fit[1], fit[0]) if swap else fit


def decode_rgb(img: Image.Image, *, draft_size: tuple[int, int] | None) -> Image.Image:
    """Decode ``img`` (from :func:`open_image`) to an RGB image in display orientation.

    For JPEG, ``draft_size`` (width, height; the largest model input) lets libjpeg decode at
    1/2, 1/4 or 1/8 scale while staying at least as large as the photo letterboxed into
    ``draft_size`` (in display orientation), which is several times faster on big photos.
    The whole file is decoded, so truncation is detected (``ImageFile.LOAD_TRUNCATED_IMAGES``
    is left alone). ``img`` is consumed.
    """
    orientation = _exif_orientation(img)
    if draft_size is not None and img.format in ("JPEG", "MPO"):
        request = _draft_request(img.size, draft_size, orientation)
        if request is not None:
            img.draft("RGB", request)
    try:
        img.load()
    except Image.DecompressionBombError as exc:
        raise ImageRejected("decompression_bomb", str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if _is_truncation(exc) or isinstance(exc, EOFError):
            raise ImageRejected(
                "truncated",
                f"the image data ends early ({exc}); the copy is incomplete, copy it again.",
            ) from exc
        raise ImageRejected(
            "corrupt", f"the image data cannot be decoded ({exc}); the file is damaged."
        ) from exc
    rgb = _to_rgb(img)
    if orientation != 1:
        # Unusable EXIF: keep the stored orientation rather than reject a decodable photo.
        with contextlib.suppress(Exception):
            ImageOps.exif_transpose(rgb, in_place=True)
    return rgb


def load_rgb(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """:func:`open_image` then :func:`decode_rgb`: bytes to an RGB image in display orientation."""
    return decode_rgb(open_image(data, max_pixels=max_pixels), draft_size=draft_size)


def letterbox(
    img: Image.Image | npt.NDArray[np.uint8],
    size: tuple[int, int],
    pad_value: int,
    placement: str = "top-left",
) -> tuple[npt.NDArray[np.uint8], float]:
    """Resize ``img`` (RGB) to fit ``size`` (width, height) keeping aspect ratio, and pad.

    Returns the ``[H, W, 3]`` uint8 canvas and the ratio ``r = min(W/w, H/h)`` (input pixels =
    original pixels * r). The resized photo sits at the top-left, as YOLOX was trained.
    """
    if placement != "top-left":
        raise ValueError(f"unsupported letterbox placement {placement!r}; only 'top-left'")
    canvas, ratio, _ = letterbox_offset(img, size, pad_value, placement)
    return canvas, ratio


def letterbox_offset(
    img: Image.Image | npt.NDArray[np.uint8],
    size: tuple[int, int],
    pad_value: int,
    placement: str = "top-left",
) -> tuple[npt.NDArray[np.uint8], float, tuple[int, int]]:
    """:func:`letterbox` with ``placement`` "top-left" (YOLOX) or "center" (YOLOv5/MegaDetector).

    ``img`` is an RGB image or its ``[H, W, 3]`` uint8 array (convert once when several models
    letterbox the same photo). The resize is OpenCV's bilinear (``INTER_LINEAR``), the one
    YOLOX and YOLOv5 (MegaDetector) were trained with. Also returns the (left, top) padding in
    input pixels: input px = original px * r + pad.
    """
    pixels, (new_w, new_h), ratio, (left, top) = _letterbox_geometry(img, size, placement)
    target_w, target_h = size
    canvas = np.full((target_h, target_w, 3), pad_value, dtype=np.uint8)
    canvas[top : top + new_h, left : left + new_w] = _resized(pixels, new_w, new_h)
    return canvas, ratio, (left, top)


def letterbox_planes(
    img: Image.Image | npt.NDArray[np.uint8],
    size: tuple[int, int],
    pad_value: int,
    placement: str = "top-left",
    channels: str = "RGB",
) -> tuple[npt.NDArray[np.float32], float, tuple[int, int]]:
    """:func:`letterbox_offset` straight to a model input: float32 ``[3, H, W]`` (0-255) in
    ``channels`` order, one plane at a time (no HWC canvas, no strided transpose)."""
    pixels, (new_w, new_h), ratio, (left, top) = _letterbox_geometry(img, size, placement)
    target_w, target_h = size
    out = np.empty((3, target_h, target_w), dtype=np.float32)
    out[:, :top, :] = pad_value
    out[:, top + new_h :, :] = pad_value
    out[:, top : top + new_h, :left] = pad_value
    out[:, top : top + new_h, left + new_w :] = pad_value
    planes = cv2.split(_resized(pixels, new_w, new_h))
    if channels == "BGR":
        planes = planes[::-1]
    for plane, value in zip(out, planes, strict=True):
        plane[top : top + new_h, left : left + new_w] = value
    return out, ratio, (left, top)


def _resized(pixels: npt.NDArray[np.uint8], width: int, height: int) -> npt.NDArray[np.uint8]:
    if pixels.shape[1::-1] == (width, height):
        return pixels
    return np.asarray(cv2.resize(pixels, (width, height), interpolation=cv2.INTER_LINEAR))


def _letterbox_geometry(
    img: Image.Image | npt.NDArray[np.uint8], size: tuple[int, int], placement: str
) -> tuple[npt.NDArray[np.uint8], tuple[int, int], float, tuple[int, int]]:
    """The pixels, the resized (width, height), the ratio and the (left, top) padding."""
    if placement not in ("top-left", "center"):
        raise ValueError(f"unsupported letterbox placement {placement!r}; 'top-left' or 'center'")
    if isinstance(img, Image.Image):
        if img.mode != "RGB":
            raise ValueError(f"letterbox expects an RGB image, got mode {img.mode!r}")
        pixels = np.asarray(img, dtype=np.uint8)
    else:
        pixels = img
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"letterbox expects RGB pixels [H, W, 3], got shape {pixels.shape}")
    target_w, target_h = size
    h, w = pixels.shape[:2]
    ratio = min(target_w / w, target_h / h)
    new_w = min(target_w, max(1, round(w * ratio)))
    new_h = min(target_h, max(1, round(h * ratio)))
    left, top = (0, 0)
    if placement == "center":
        left, top = (target_w - new_w) // 2, (target_h - new_h) // 2
    return pixels, (new_w, new_h), ratio, (left, top)


#: A photo whose mean absolute difference between its colour channels (0-255, on a copy at most
#: 128 px wide) is below this is greyscale: an infrared night photo. Measured on the shared
#: samples: IR/greyscale frames 0.0-2.0, the least colourful day or flash photo 3.8.
GREYSCALE_MAX_CHANNEL_DIFF = 2.5


def channel_difference(img: Image.Image) -> float:
    """Mean absolute difference between the R, G and B channels of a small copy of ``img``."""
    small = img.convert("RGB")
    small.thumbnail((128, 128))
    pixels = np.asarray(small, dtype=np.int16)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return float((np.abs(r - g) + np.abs(g - b) + np.abs(r - b)).mean() / 3.0)


def is_greyscale(img: Image.Image, max_difference: float = GREYSCALE_MAX_CHANNEL_DIFF) -> bool:
    """Whether a decoded photo has (almost) no colour: what an infrared night photo looks like."""
    return channel_difference(img) < max_difference
