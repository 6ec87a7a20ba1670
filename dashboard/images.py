"""Pure image helpers for the pages: draw boxes with labels, blur people. Bytes in, JPEG out."""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageOps

from flows.access.privacy import blur_boxes

COLOURS = {"animal": "#ffb000", "person": "#ff3030", "vehicle": "#30a0ff"}
MAX_SIDE = 1280


@dataclass(frozen=True)
class Box:
    """A normalised [x, y, w, h] box with what to write on it."""

    x: float
    y: float
    w: float
    h: float
    category: str
    caption: str
    is_false_positive: bool = False
    is_drawn: bool = True  # False: only blurred (a person box below the reviewer's cut-off)


def render(
    data: bytes, boxes: Iterable[Box], *, blur_people: bool = True, max_side: int = MAX_SIDE
) -> bytes:
    """The image with every person box blurred (unless ``blur_people`` is False) and the boxes
    with ``is_drawn`` outlined and captioned; false positives in grey. Returns JPEG bytes."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale, fast
        img = ImageOps.exif_transpose(opened).convert("RGB")
    img.thumbnail((max_side, max_side))
    width, height = img.size
    items = list(boxes)
    if blur_people:  # the same blur as alerts and exports (flows/access/privacy.py)
        blur_boxes(img, ((b.x, b.y, b.w, b.h) for b in items if b.category == "person"))
    draw = ImageDraw.Draw(img)
    line = max(2, min(width, height) // 300)
    for box in (b for b in items if b.is_drawn):
        x0, y0, x1, y1 = _pixels(box, width, height)
        colour = "#aaaaaa" if box.is_false_positive else COLOURS.get(box.category, "#ffffff")
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=line)
        text_y = max(0, y0 - 14)
        draw.rectangle((x0, text_y, x0 + 7 * len(box.caption) + 6, text_y + 14), fill=colour)
        draw.text((x0 + 3, text_y + 1), box.caption, fill="#000000")
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=85)
    return out.getvalue()


def _pixels(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    x0 = int(max(0.0, box.x) * width)
    y0 = int(max(0.0, box.y) * height)
    x1 = int(min(1.0, box.x + box.w) * width)
    y1 = int(min(1.0, box.y + box.h) * height)
    return x0, y0, x1, y1


def crop(
    data: bytes, box: Box, people: Iterable[Box] = (), *, blur_people: bool = True,
    side: int = 160, context: float = 0.1,
) -> bytes:  # fmt: skip
    """A square-ish thumbnail of ``box`` (plus ``context`` each side), the photo's ``people``
    blurred first unless ``blur_people`` is False (the same blur as :func:`render`). JPEG."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.draft("RGB", (side * 8, side * 8))
        img = ImageOps.exif_transpose(opened).convert("RGB")
    if blur_people:
        blur_boxes(img, ((b.x, b.y, b.w, b.h) for b in people))
    width, height = img.size
    x0 = max(0.0, box.x - context * box.w) * width
    y0 = max(0.0, box.y - context * box.h) * height
    x1 = min(1.0, box.x + box.w * (1 + context)) * width
    y1 = min(1.0, box.y + box.h * (1 + context)) * height
    out_img = img.crop((int(x0), int(y0), max(int(x1), int(x0) + 1), max(int(y1), int(y0) + 1)))
    out_img.thumbnail((side, side))
    out = io.BytesIO()
    out_img.save(out, format="JPEG", quality=85)
    return out.getvalue()
