"""Opening, decoding and letterboxing: synthetic images with exact expected output."""

from __future__ import annotations

import io
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models_ml._imageops import (
    ImageRejected,
    _draft_request,
    channel_difference,
    decode_rgb,
    is_greyscale,
    letterbox,
    letterbox_offset,
    letterbox_planes,
    load_rgb,
    open_image,
)


def encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def noisy_jpeg(width: int = 256, height: int = 192) -> bytes:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels), "JPEG", quality=90)


def png_claiming(width: int, height: int) -> bytes:
    """A valid 8x8 PNG whose IHDR is patched to claim ``width`` x ``height`` (CRC fixed)."""
    data = bytearray(encode(Image.new("RGB", (8, 8)), "PNG"))
    data[16:24] = struct.pack(">II", width, height)  # IHDR data starts at 16
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def rejected(data: bytes, **kwargs: object) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        load_rgb(data, **kwargs)  # type: ignore[arg-type]
    assert info.value.reason in ImageRejected.REASONS
    assert info.value.message and info.value.reason in str(info.value)
    return info.value


# ---------------------------------------------------------------- rejections


def test_empty_file() -> None:
    assert rejected(b"").reason == "empty_file"


def test_text_named_jpg_is_not_an_image() -> None:
    err = rejected(b"hello world")
    assert err.reason == "not_an_image"
    assert "text" in err.message and "hello world" in err.message


def test_binary_garbage_is_not_an_image() -> None:
    err = rejected(bytes(range(64)))
    assert err.reason == "not_an_image"
    assert "00 01 02" in err.message


def test_video_is_not_an_image() -> None:
    mp4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(64)
    err = rejected(mp4)
    assert err.reason == "not_an_image"
    assert "video" in err.message


def test_heic_is_unsupported() -> None:
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    err = rejected(heic)
    assert err.reason == "unsupported_format"
    assert "HEIC" in err.message


def test_format_pillow_knows_but_we_refuse() -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n\n"
    err = rejected(eps)
    assert err.reason == "unsupported_format"
    assert "EPS" in err.message


def test_jpeg_cut_in_half_is_truncated() -> None:
    data = noisy_jpeg()
    assert rejected(data[: len(data) // 2]).reason == "truncated"


def test_jpeg_cut_inside_header_is_truncated() -> None:
    assert rejected(noisy_jpeg()[:40]).reason == "truncated"


def test_png_cut_in_half_is_truncated() -> None:
    rng = np.random.default_rng(1)
    data = encode(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "PNG")
    assert rejected(data[: len(data) // 2]).reason == "truncated"


def test_png_with_bad_header_checksum_is_corrupt() -> None:
    data = bytearray(encode(Image.new("RGB", (8, 8)), "PNG"))
    data[30] ^= 0xFF  # IHDR CRC
    err = rejected(bytes(data))
    assert err.reason == "corrupt"
    assert "PNG" in err.message


def test_png_claiming_huge_size_is_a_bomb_before_decoding() -> None:
    err = rejected(png_claiming(100_000, 100_000))
    assert err.reason == "decompression_bomb"


def test_max_pixels_is_checked_from_the_header() -> None:
    data = png_claiming(4000, 3000)  # Pillow itself would accept 12 MP
    with pytest.raises(ImageRejected) as info:
        open_image(data, max_pixels=10_000_000)
    assert info.value.reason == "decompression_bomb"
    assert "4000x3000" in info.value.message and "12.0 MP" in info.value.message
    img = open_image(data, max_pixels=12_000_000)  # header only: the pixels are never read
    assert img.size == (4000, 3000)


def test_rejection_pickles() -> None:
    err = pickle.loads(pickle.dumps(ImageRejected("truncated", "ends early")))  # noqa: S301
    assert (err.reason, err.message, str(err)) == (
        "truncated",
        "ends early",
        "truncated: ends early",
    )


def test_unknown_reason_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown"):
        ImageRejected("bad_luck", "x")


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("L", 100, (100, 100, 100)),
        ("LA", (100, 7), (100, 100, 100)),
        ("RGBA", (10, 20, 30, 0), (10, 20, 30)),
        ("CMYK", (0, 0, 0, 0), (255, 255, 255)),
        ("1", 1, (255, 255, 255)),
        ("I;16", 0x8000, (128, 128, 128)),
        ("I", 70000, (255, 255, 255)),
        ("F", 12.0, (12, 12, 12)),
    ],
)
def test_decode_converts_modes_to_rgb(mode: str, value: object, expected: tuple[int, ...]) -> None:
    img = decode_rgb(Image.new(mode, (4, 3), value), draft_size=None)  # type: ignore[arg-type]
    assert img.mode == "RGB"
    assert img.size == (4, 3)
    assert img.getpixel((1, 1)) == expected


def test_decode_palette_with_transparency() -> None:
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 200, 10, 20] + [0] * 762)
    img.info["transparency"] = 1
    out = load_rgb(encode(img, "PNG"))
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (200, 10, 20)


def test_decode_applies_exif_orientation() -> None:
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    out = load_rgb(encode(stored, "PNG", exif=exif.tobytes()))
    assert out.size == (20, 40)
    top, bottom = out.getpixel((10, 5)), out.getpixel((10, 35))
    assert top == (255, 0, 0)
    assert bottom == (0, 0, 255)


def test_jpeg_draft_decodes_at_reduced_scale() -> None:
    data = noisy_jpeg(2000, 1000)
    assert load_rgb(data).size == (2000, 1000)
    # letterboxed into 640x640 the photo is 640x320: 1/2 scale (1000x500) is the smallest >= that
    assert load_rgb(data, draft_size=(640, 640)).size == (1000, 500)
    assert load_rgb(data, draft_size=(250, 250)).size == (250, 125)  # 1/8
    # not a JPEG: draft does nothing
    png = encode(Image.open(io.BytesIO(data)), "PNG")
    assert load_rgb(png, draft_size=(640, 640)).size == (2000, 1000)


def test_jpeg_draft_respects_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = Image.open(io.BytesIO(noisy_jpeg(1000, 2000)))
    data = encode(stored, "JPEG", exif=exif.tobytes())
    assert load_rgb(data, draft_size=(640, 640)).size == (1000, 500)


def test_draft_request() -> None:
    assert _draft_request((4000, 3000), (640, 640), 1) == (640, 480)
    assert _draft_request((3000, 4000), (640, 640), 6) == (480, 640)  # stored orientation
    assert _draft_request((640, 480), (640, 640), 1) is None
    assert _draft_request((100, 75), (640, 640), 1) is None


def test_truncated_detected_even_with_draft() -> None:
    data = noisy_jpeg(1024, 768)
    with pytest.raises(ImageRejected) as info:
        load_rgb(data[: len(data) * 3 // 4], draft_size=(128, 128))
    assert info.value.reason == "truncated"


# ---------------------------------------------------------------- letterbox


def test_letterbox_downscale_top_left() -> None:
    img = Image.new("RGB", (200, 100), (10, 20, 30))
    canvas, ratio = letterbox(img, (64, 64), pad_value=114)
    assert canvas.shape == (64, 64, 3)
    assert canvas.dtype == np.uint8
    assert ratio == pytest.approx(0.32)
    assert (canvas[:32, :64] == (10, 20, 30)).all()
    assert (canvas[32:, :] == 114).all()


def test_letterbox_upscales_small_images() -> None:
    img = Image.new("RGB", (10, 20), (1, 2, 3))
    canvas, ratio = letterbox(img, (64, 64), pad_value=0)
    assert ratio == pytest.approx(3.2)
    assert (canvas[:, :32] == (1, 2, 3)).all()
    assert (canvas[:, 32:] == 0).all()


def test_letterbox_non_square_target_and_exact_fit() -> None:
    img = Image.new("RGB", (640, 480), (5, 5, 5))
    canvas, ratio = letterbox(img, (320, 240), pad_value=0)
    assert canvas.shape == (240, 320, 3)
    assert ratio == 0.5
    assert (canvas == 5).all()


def test_letterbox_keeps_pixels_in_place() -> None:
    arr = np.zeros((4, 8, 3), dtype=np.uint8)
    arr[0, 0] = (255, 0, 0)
    canvas, ratio = letterbox(Image.fromarray(arr), (8, 8), pad_value=7)
    assert ratio == 1.0
    assert tuple(canvas[0, 0]) == (255, 0, 0)
    assert (canvas[4:] == 7).all()


def test_letterbox_rejects_other_placements_and_modes() -> None:
    with pytest.raises(ValueError, match="placement"):
        letterbox(Image.new("RGB", (8, 8)), (4, 4), 0, placement="center")
    with pytest.raises(ValueError, match="RGB"):
        letterbox(Image.new("L", (8, 8)), (4, 4), 0)


# ---------------------------------------------------------------- real odd files


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("conservationtechlab__animl-py/examples/Southwest/error_img.JPG", "empty_file"),
        ("google__cameratrapai/test_data/african_elephants_truncated_file.jpg", "truncated"),
        ("ianare__exif-samples/heic/samplefilehub.heif", "unsupported_format"),
        ("drivendataorg__zamba/tests/assets/images/ena24_small/labels.csv", "not_an_image"),
    ],
)
def test_real_odd_files_are_rejected(camtrap_dir: Path, path: str, reason: str) -> None:
    assert rejected((camtrap_dir / path).read_bytes()).reason == reason


@pytest.mark.parametrize(
    "name",
    ["african_elephants_cmyk.jpg", "african_elephants_bw.jpg", "african_elephants.jpg"],
)
def test_real_odd_modes_decode_to_rgb(camtrap_dir: Path, name: str) -> None:
    data = (camtrap_dir / "google__cameratrapai/test_data" / name).read_bytes()
    img = load_rgb(data, draft_size=(640, 640))
    assert img.mode == "RGB"
    assert img.size == (1024, 768)


def test_real_exif_orientation_is_applied(camtrap_dir: Path) -> None:
    data = (
        camtrap_dir / "google__cameratrapai/test_data/african_elephants_with_exif_orientation.jpg"
    )
    assert Image.open(data).size == (1536, 2048)  # stored portrait, EXIF orientation 6
    assert load_rgb(data.read_bytes()).size == (2048, 1536)


@pytest.mark.parametrize("placement", ["top-left", "center"])
@pytest.mark.parametrize("channels", ["RGB", "BGR"])
@pytest.mark.parametrize("size", [(97, 61), (640, 480), (30, 200)])
def test_letterbox_planes_is_the_canvas_as_model_input(
    placement: str, channels: str, size: tuple[int, int]
) -> None:
    """The detectors' fast path (planes straight to float32 CHW) equals the HWC canvas,
    transposed, for downscales, upscales, both placements and both channel orders."""
    rng = np.random.default_rng(sum(size))
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    canvas, ratio, pad = letterbox_offset(Image.fromarray(pixels), (64, 48), 114, placement)
    planes, ratio2, pad2 = letterbox_planes(pixels, (64, 48), 114, placement, channels)
    expected = canvas[:, :, ::-1] if channels == "BGR" else canvas
    assert planes.dtype == np.float32 and planes.shape == (3, 48, 64)
    np.testing.assert_array_equal(planes, expected.transpose(2, 0, 1).astype(np.float32))
    assert (ratio2, pad2) == (ratio, pad)


# ------------------------------------------------------------------ greyscale (IR night) photos

_NIGHT_IR = [
    "agentmorris__MegaDetector/images/channel-islands-thumb.jpg",  # Reconyx IR, 20:26
    "agentmorris__MegaDetector/images/mike_folder/beaver_20241016221147_46.jpg",  # IR, 22:11
    "google__cameratrapai/test_data/american_black_bear.jpg",
]
_DAY_COLOUR = [
    "agentmorris__MegaDetector/images/idaho-camera-traps.jpg",  # 15:14
    "jniedballa__camtrapR/inst/pictures/sample_images_species_tag/StationB/"
    "StationB__2009-04-15__07-21-00(1).JPG",
    "ianare__exif-samples/jpg/Reconyx_HC500_Hyperfire.jpg",
    # camtrapR's Cuddeback flash photos are colour at night: colour says nothing about the hour
    "jniedballa__camtrapR/inst/pictures/sample_images_species_tag/StationC/"
    "StationC__2009-04-18__22-57-00(1).JPG",
]


@pytest.mark.parametrize("path", _NIGHT_IR)
def test_real_ir_night_photos_are_greyscale(camtrap_dir: Path, path: str) -> None:
    img = load_rgb((camtrap_dir / path).read_bytes(), draft_size=(640, 640))
    assert channel_difference(img) < 2.5
    assert is_greyscale(img)


@pytest.mark.parametrize("path", _DAY_COLOUR)
def test_real_colour_photos_are_not_greyscale(camtrap_dir: Path, path: str) -> None:
    img = load_rgb((camtrap_dir / path).read_bytes(), draft_size=(640, 640))
    assert channel_difference(img) > 3.5
    assert not is_greyscale(img)


def test_greyscale_agrees_with_the_manifest_guess(
    manifest_rows: list[dict[str, str]], camtrap_dir: Path
) -> None:
    """Every sample photo the manifest calls (near) greyscale is, and no colour one is."""
    checked = 0
    for row in manifest_rows:
        if row["kind"] != "image" or row["file_type"] != "JPEG" or not row["greyscale_ir_guess"]:
            continue
        img = load_rgb((camtrap_dir / row["path"]).read_bytes(), draft_size=(640, 640))
        assert is_greyscale(img) == (row["greyscale_ir_guess"] == "yes"), row["path"]
        checked += 1
    assert checked > 100
