"""Time from the info bar: OCR of the date and time that trail cameras print on each photo.

Used only when EXIF has no ``DateTimeOriginal``. The info bar sits in the top and/or bottom
strip of the frame, so only those strips are read (:data:`STRIP_FRACTION` of the height each):
PP-OCRv4 text detection (DB post-processing, done here with numpy: threshold, connected
components, bounding rectangles, unclip) finds the words, PP-OCRv4 recognition reads them with
greedy CTC, and :func:`parse_info_bar_datetime` turns the words into a datetime.

:func:`parse_info_bar_datetime` is pure and tolerant of what OCR gets wrong on these bars:
``O``/``o``/``D``/``Q`` for 0, ``I``/``l``/``|``/``i`` for 1, ``S``/``s`` for 5, ``Z`` for 2 and
``B`` for 8 inside groups that hold a digit, spaces around separators, a dropped degree sign.
Day/month order for ``a/b/yyyy``: a number above 12 decides it; when both are 12 or less the
``dayfirst`` hint decides, and without a hint month-first is taken (the bars of the US brands
that dominate camera trapping, Reconyx, Bushnell, Browning, Moultrie, Cuddeback, are
month-first). ``yyyy-mm-dd`` is read year-month-day unless only year-day-month is a valid date.
Two-digit years are refused (a cut-off ``2019-07-16`` reads ``19-07-16``), and so is a date
without a time of day. A time with no AM/PM read is taken as 24 h.

Measured on the sample photos decoded as the pipeline decodes them (JPEG draft, ~1000 px):
59 of the 61 photos with an EXIF time and a bar read the EXIF time to the minute (the two
misses are 300 x 169 thumbnails), none read a wrong time; ~0.07 s CPU per photo on one thread
(median; up to ~0.25 s when the second, finer pass runs).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from .registry import ModelSpec, load_manifest
from .session import create_session

__all__ = [
    "DEFAULT_OCR_MODEL",
    "STRIP_FRACTION",
    "InfoBarReader",
    "InfoBarReading",
    "TextLine",
    "db_boxes",
    "parse_info_bar_datetime",
]

DEFAULT_OCR_MODEL = "ppocrv4_ocr"
#: Height of the top and bottom strips read, as a fraction of the image height.
STRIP_FRACTION = 0.12
#: Strips are detected at most this wide, and small ones enlarged to the minimum (pixels).
DET_WIDTH, MIN_DET_WIDTH = 960, 640
#: Width of the second, finer detection pass, run only when the first found no time.
RETRY_DET_WIDTH, MIN_RETRY_IMAGE_WIDTH = 1600, 600
#: Earliest and latest plausible years on an info bar (a misread year is rejected).
MIN_YEAR, MAX_YEAR = 1995, 2099

# --- parsing (pure) ----------------------------------------------------------------------

_CONFUSABLE = str.maketrans(
    {"O": "0", "o": "0", "D": "0", "Q": "0", "I": "1", "l": "1", "|": "1", "i": "1",
     "S": "5", "s": "5", "Z": "2", "z": "2", "B": "8"}
)  # fmt: skip
# a run of digits and look-alikes that holds at least one real digit
_DIGITISH = re.compile(r"[0-9OoDQIl|iSsZzB]*[0-9][0-9OoDQIl|iSsZzB]*")
_SEP = r"\s*[-/.]\s*"
# a date's last group may run straight into the time ("05/29/202103:51:32"): a 2-digit day
# or a 4-digit year may be followed by a digit, a 1-digit day may not
_YMD = re.compile(rf"(?<!\d)(\d{{4}}){_SEP}(\d{{1,2}}){_SEP}(\d{{2}}|\d(?!\d))")
_XXY = re.compile(rf"(\d{{1,2}}){_SEP}(\d{{1,2}}){_SEP}(\d{{4}})")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MON = r"(JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)[A-Z]*\.?"
_DMONY = re.compile(rf"(?<!\d)(\d{{1,2}})\s*[-/. ]?\s*{_MON}\s*[-/. ,]?\s*(\d{{4}})", re.I)
_MONDY = re.compile(rf"\b{_MON}\s*[-/. ]?\s*(\d{{1,2}})\s*[-/. ,]\s*(\d{{4}})", re.I)
_TIME = re.compile(
    # the second colon is sometimes lost ("15:1445"); AM/PM may run into the next word
    r"(?<!\d)(\d{1,2})\s*[:;]\s*(\d{2})(?:\s*[:;]?\s*(\d{2}))?(?!\d)(?:\s*([AaPp])\.?\s*[Mm])?"
)


def _digitise(text: str) -> str:
    """Map look-alike letters to digits, but only inside runs that already hold a digit."""
    return _DIGITISH.sub(lambda m: m.group(0).translate(_CONFUSABLE), text)


def _valid_date(year: int, month: int, day: int) -> bool:
    if not MIN_YEAR <= year <= MAX_YEAR:
        return False
    try:
        datetime(year, month, day)
    except ValueError:
        return False
    return True


def _order_day_month(a: int, b: int, dayfirst: bool | None) -> tuple[int, int] | None:
    """(month, day) for a date written ``a/b``: a number above 12 decides, then the hint."""
    month_first, day_first = (a, b), (b, a)
    if a > 12 >= b:
        return day_first
    if b > 12 >= a:
        return month_first
    if a > 12 and b > 12:
        return None
    return day_first if dayfirst else month_first


def _find_date(text: str, dayfirst: bool | None) -> tuple[int, int, int, tuple[int, int]] | None:
    """(year, month, day, span) of the first valid date in ``text``."""
    for m in _YMD.finditer(text):
        y, a, b = (int(g) for g in m.groups())
        for month, day in ((a, b), (b, a)):  # ISO order first; y-d-m only when it alone is valid
            if _valid_date(y, month, day):
                return y, month, day, m.span()
    for m in _XXY.finditer(text):
        a, b, y = (int(g) for g in m.groups())
        order = _order_day_month(a, b, dayfirst)
        if order and _valid_date(y, *order):
            return y, order[0], order[1], m.span()
    for m in _DMONY.finditer(text):
        day, month, y = int(m.group(1)), _MONTHS.index(m.group(2).upper()) + 1, int(m.group(3))
        if _valid_date(y, month, day):
            return y, month, day, m.span()
    for m in _MONDY.finditer(text):
        month, day, y = _MONTHS.index(m.group(1).upper()) + 1, int(m.group(2)), int(m.group(3))
        if _valid_date(y, month, day):
            return y, month, day, m.span()
    return None


def _find_time(text: str) -> tuple[int, int, int] | None:
    """(hour, minute, second) of the first valid time in ``text`` (12 h with AM/PM, or 24 h)."""
    for m in _TIME.finditer(text):
        hour, minute = int(m.group(1)), int(m.group(2))
        second = int(m.group(3)) if m.group(3) else 0
        meridiem = (m.group(4) or "").upper()
        if minute > 59 or second > 59:
            continue
        if meridiem:
            if not 1 <= hour <= 12:
                continue
            hour = hour % 12 + (12 if meridiem == "P" else 0)
        elif hour > 23:
            continue
        return hour, minute, second
    return None


def parse_info_bar_datetime(lines: Sequence[str], dayfirst: bool | None = None) -> datetime | None:
    """The date and time printed on an info bar, from its OCR'd text lines; None if not found.

    Both a date and a time of day must be found (a date alone would invent a midnight). The
    lines are read as one text, in order: date, time and AM/PM are often separate words.
    The result is naive: info bars carry no time zone. See the module doc for the rules.
    """
    text = " ".join(_digitise(unicodedata.normalize("NFKC", ln)) for ln in lines if ln.strip())
    date = _find_date(text, dayfirst)
    if date is None:
        return None
    year, month, day, (start, end) = date
    # the time is searched outside the date, so "12.30.2012" cannot be read as a time
    clock = _find_time(text[end:]) or _find_time(text[:start])
    if clock is None:
        return None
    return datetime(year, month, day, *clock)


# --- DB post-processing (pure numpy) -----------------------------------------------------


def _label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a boolean mask: (labels, count), labels 1..count, 0 = off.

    Run-length based: the runs of each row are unioned with the overlapping runs of the row
    above (union-find), so the Python loop is over runs, not pixels.
    """
    height, width = mask.shape
    padded = np.zeros((height, width + 2), np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    run_rows, run_starts, run_ends = [], [], []  # end exclusive
    for y in range(height):
        starts = np.flatnonzero(edges[y] == 1)
        ends = np.flatnonzero(edges[y] == -1)
        run_rows.extend([y] * len(starts))
        run_starts.extend(starts.tolist())
        run_ends.extend(ends.tolist())
    parent = list(range(len(run_rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    prev: list[int] = []  # run indices of the previous row
    row_start = 0
    for i in range(len(run_rows) + 1):
        if i == len(run_rows) or (i > row_start and run_rows[i] != run_rows[row_start]):
            current = list(range(row_start, i))
            if current and prev and run_rows[prev[0]] == run_rows[current[0]] - 1:
                for r in current:
                    for p in prev:  # 8-connectivity: touching diagonally counts
                        if run_starts[p] <= run_ends[r] and run_starts[r] <= run_ends[p]:
                            parent[find(r)] = find(p)
            prev, row_start = current, i
    labels = np.zeros((height, width), np.int32)
    roots: dict[int, int] = {}
    for i, (y, x0, x1) in enumerate(zip(run_rows, run_starts, run_ends, strict=True)):
        label = roots.setdefault(find(i), len(roots) + 1)
        labels[y, x0:x1] = label
    return labels, len(roots)


def db_boxes(
    prob: np.ndarray,
    thresh: float = 0.3,
    box_thresh: float = 0.5,
    unclip_ratio: float = 1.6,
    min_size: float = 3.0,
) -> list[tuple[float, float, float, float]]:
    """Axis-aligned text boxes ``(x0, y0, x1, y1)`` (map pixels) from a DB probability map.

    DBNet's post-processing with rectangles for polygons (info bars are horizontal):
    pixels above ``thresh``, connected components, each component's bounding rectangle kept
    when the mean probability inside is at least ``box_thresh``, then grown on every side by
    ``area x unclip_ratio / perimeter`` (the polygon offset of the original).
    """
    labels, count = _label_components(prob > thresh)
    height, width = prob.shape
    boxes = []
    for label in range(1, count + 1):
        ys, xs = np.nonzero(labels == label)
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        w, h = float(x1 - x0), float(y1 - y0)
        if min(w, h) < min_size:
            continue
        if float(prob[y0:y1, x0:x1].mean()) < box_thresh:
            continue
        d = w * h * unclip_ratio / (2 * (w + h))
        boxes.append(
            (
                max(0.0, x0 - d),
                max(0.0, y0 - d),
                min(float(width), x1 + d),
                min(float(height), y1 + d),
            )
        )
    return boxes


def _ctc_greedy(probs: np.ndarray, charset: Sequence[str]) -> tuple[str, float]:
    """Best path of one [T, C] softmax: collapse repeats, drop blanks (index 0)."""
    best = probs.argmax(axis=1)
    scores = probs.max(axis=1)
    keep = best != 0
    keep[1:] &= best[1:] != best[:-1]
    text = "".join(charset[i] for i in best[keep])
    return text, float(scores[keep].mean()) if keep.any() else 0.0


# --- the reader --------------------------------------------------------------------------


@dataclass(frozen=True)
class TextLine:
    """One recognised word or line: its text, mean character confidence, and where it was."""

    text: str
    confidence: float
    strip: str  # "top" or "bottom"
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels


@dataclass(frozen=True)
class InfoBarReading:
    """What :meth:`InfoBarReader.read` found: the time (or None), the words, and any doubts."""

    captured_at: datetime | None
    text: list[str]
    confidence: float  # mean confidence of the words; 0.0 when nothing was read
    warnings: list[str] = field(default_factory=list)
    lines: list[TextLine] = field(default_factory=list)


def _normalise(arr: np.ndarray) -> np.ndarray:
    """uint8 HWC RGB -> float32 CHW BGR in [-1, 1] (the PaddleOCR models were trained on BGR)."""
    x = arr[:, :, ::-1].astype(np.float32) / 127.5 - 1.0
    return x.transpose(2, 0, 1)


class InfoBarReader:
    """PP-OCRv4 over the top and bottom strips of a photo (see the module doc)."""

    def __init__(
        self,
        det: ort.InferenceSession,
        rec: ort.InferenceSession,
        charset: Sequence[str],
        spec: ModelSpec,
        cls: ort.InferenceSession | None = None,
        rec_height: int = 48,
        det_thresh: float = 0.3,
        box_thresh: float = 0.5,
        unclip_ratio: float = 1.6,
    ):
        self.det, self.rec, self.cls, self.spec = det, rec, cls, spec
        # CTC classes: 0 = blank, then the key file's lines, then the space
        self.charset: tuple[str, ...] = ("", *charset, " ")
        n_classes = rec.get_outputs()[0].shape[-1]
        if isinstance(n_classes, int) and n_classes != len(self.charset):
            raise ValueError(
                f"{spec.model_id}: the key file has {len(charset)} characters but the "
                f"recognition model has {n_classes} classes (expected keys + 2); "
                f"re-pull the model with `trapflow models pull {spec.name}`"
            )
        self.rec_height = rec_height
        self.det_thresh, self.box_thresh, self.unclip_ratio = det_thresh, box_thresh, unclip_ratio

    @classmethod
    def from_models_dir(
        cls,
        model_dir: Path,
        manifest: Mapping[str, ModelSpec] | None = None,
        model: str = DEFAULT_OCR_MODEL,
        use_cls: bool = False,
        intra_op_threads: int | None = None,
        providers: Sequence[str] | None = None,
    ) -> InfoBarReader:
        """Load the three networks of ``model`` from ``model_dir`` (as laid out by a pull).

        The manifest's ``file`` is the recognition model; the detector and the direction
        classifier are the extra files whose names hold ``_det_`` / ``_cls_``, the character
        list is ``labels_file``.
        """
        specs = manifest if manifest is not None else load_manifest()
        spec = specs[model]
        if spec.kind != "ocr" or not spec.labels_file:
            raise ValueError(f"model {model!r} must be an ocr model with a labels_file (keys)")
        extras = [e.file for e in spec.extra_files if e.file.endswith(".onnx")]
        det_file = next((f for f in extras if "_det_" in Path(f).name), None)
        cls_file = next((f for f in extras if "_cls_" in Path(f).name), None)
        if det_file is None:
            raise ValueError(f"model {model!r} lists no detection model (*_det_*.onnx)")
        root = Path(model_dir)

        def session(file: str) -> ort.InferenceSession:
            return create_session(
                root / file, providers=providers, intra_op_threads=intra_op_threads
            )

        keys = (root / spec.labels_file).read_text(encoding="utf-8").splitlines()
        return cls(
            det=session(det_file),
            rec=session(spec.file),
            charset=keys,
            spec=spec,
            cls=session(cls_file) if use_cls and cls_file else None,
        )

    @property
    def model_id(self) -> str:
        return self.spec.model_id

    # -- steps --

    def strips(self, img: Image.Image) -> list[tuple[str, int, Image.Image]]:
        """(name, top offset, crop) of the top and bottom strips."""
        width, height = img.size
        h = max(8, round(height * STRIP_FRACTION))
        return [
            ("top", 0, img.crop((0, 0, width, h))),
            ("bottom", height - h, img.crop((0, height - h, width, height))),
        ]

    def detect(
        self, strip: Image.Image, det_width: int = DET_WIDTH
    ) -> list[tuple[int, int, int, int]]:
        """Text boxes in ``strip`` pixels, by row then left to right."""
        width, height = strip.size
        # Bars are flush with the frame edge and DB misses text that touches the border:
        # detect on the strip framed by a black margin (the colour of most bars).
        pad = max(4, height // 4)
        framed = Image.new("RGB", (width + 2 * pad, height + 2 * pad))
        framed.paste(strip, (pad, pad))
        # never wider than DET_WIDTH, and small frames are enlarged to MIN_DET_WIDTH only
        det_w = min(det_width, max(MIN_DET_WIDTH, math.ceil(framed.width / 32) * 32))
        det_h = max(32, math.ceil(framed.height * det_w / framed.width / 32) * 32)
        resized = framed.resize((det_w, det_h), Image.Resampling.BILINEAR)
        x = _normalise(np.asarray(resized))[None]
        prob = np.asarray(self.det.run(None, {self.det.get_inputs()[0].name: x})[0])[0, 0]
        sx, sy = framed.width / det_w, framed.height / det_h
        boxes = []
        for x0, y0, x1, y1 in db_boxes(prob, self.det_thresh, self.box_thresh, self.unclip_ratio):
            box = (
                max(0, int(x0 * sx) - pad),
                max(0, int(y0 * sy) - pad),
                min(width, math.ceil(x1 * sx) - pad),
                min(height, math.ceil(y1 * sy) - pad),
            )
            if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
                boxes.append(box)
        return sorted(boxes, key=lambda b: (round(b[1] / max(1, b[3] - b[1])), b[0]))

    def _line_batch(self, crops: Sequence[Image.Image], width: int | None = None) -> np.ndarray:
        """Crops resized to height 48 (aspect kept), right-padded with 0 to a common width."""
        resized = [
            c.resize(
                (max(1, round(c.width * self.rec_height / max(1, c.height))), self.rec_height),
                Image.Resampling.BILINEAR,
            )
            for c in crops
        ]
        if width is not None:
            resized = [r.crop((0, 0, min(r.width, width), r.height)) for r in resized]
        target = width or max(r.width for r in resized)
        batch = np.zeros((len(resized), 3, self.rec_height, target), np.float32)
        for i, r in enumerate(resized):
            batch[i, :, :, : r.width] = _normalise(np.asarray(r))
        return batch

    def orient(self, crops: list[Image.Image], min_prob: float = 0.9) -> list[Image.Image]:
        """Turn crops the direction classifier finds upside down (if it was loaded)."""
        if self.cls is None or not crops:
            return crops
        probs = np.asarray(
            self.cls.run(None, {self.cls.get_inputs()[0].name: self._line_batch(crops, 192)})[0]
        )
        return [c.rotate(180) if p[1] > min_prob else c for c, p in zip(crops, probs, strict=True)]

    def recognise(self, crops: Sequence[Image.Image]) -> list[tuple[str, float]]:
        """(text, confidence) for each text-line crop."""
        widths = [c.width * self.rec_height / max(1, c.height) for c in crops]
        order = sorted(range(len(crops)), key=widths.__getitem__)
        results: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        # batches of similar width: padding a short word to the long date line wastes most
        # of the recognition time
        batches: list[list[int]] = []
        for i in order:
            if batches and widths[i] <= 1.5 * widths[batches[-1][0]]:
                batches[-1].append(i)
            else:
                batches.append([i])
        name = self.rec.get_inputs()[0].name
        for batch in batches:
            x = self._line_batch([crops[i] for i in batch])
            out = np.asarray(self.rec.run(None, {name: x})[0])
            for i, probs in zip(batch, out, strict=True):
                results[i] = _ctc_greedy(probs, self.charset)
        return results

    def _read_strips(self, img: Image.Image, det_width: int) -> list[TextLine]:
        lines: list[TextLine] = []
        for name, offset, strip in self.strips(img):
            boxes = self.detect(strip, det_width)
            crops = self.orient([strip.crop(b) for b in boxes])
            for (x0, y0, x1, y1), (text, conf) in zip(boxes, self.recognise(crops), strict=True):
                if text.strip():
                    lines.append(TextLine(text, conf, name, (x0, y0 + offset, x1, y1 + offset)))
        return lines

    def read(self, img: Image.Image, dayfirst: bool | None = None) -> InfoBarReading:
        """The date and time printed in the top or bottom strip of an RGB image.

        A first pass detects text at :data:`DET_WIDTH`; when it yields no date and time and
        the image is not a thumbnail, a second pass detects at :data:`RETRY_DET_WIDTH`
        (enlarging if need be: some bar fonts next to a bright sky are only found at a finer
        scale). Images decoded at reduced size (JPEG draft) work: bars are read from ~1000 px.
        """
        if img.mode != "RGB":
            img = img.convert("RGB")
        lines: list[TextLine] = []
        captured_at: datetime | None = None
        chosen: list[TextLine] = []
        warnings: list[str] = []
        for det_width in (DET_WIDTH, RETRY_DET_WIDTH):
            if det_width > DET_WIDTH and img.width < MIN_RETRY_IMAGE_WIDTH:
                break  # thumbnails: enlarging further shows nothing new
            lines = self._read_strips(img, det_width)
            warnings = []
            for name in ("bottom", "top"):
                in_strip = [ln for ln in lines if ln.strip == name]
                when = parse_info_bar_datetime([ln.text for ln in in_strip], dayfirst=dayfirst)
                if when is None:
                    continue
                if captured_at is None:
                    captured_at, chosen = when, in_strip
                elif when != captured_at:
                    warnings.append(
                        f"the top and bottom bars disagree ({captured_at} vs {when}); "
                        "took the bottom one"
                    )
            if captured_at is not None:
                break
        if not lines:
            warnings.append("no text found in the top or bottom strip (no info bar?)")
        elif captured_at is None:
            warnings.append(
                "text found but no date and time in it: " + " | ".join(ln.text for ln in lines)
            )
        # confidence of the words that carry digits in the bar that gave the time
        scored = [ln for ln in chosen if any(c.isdigit() for c in ln.text)] or chosen or lines
        confidence = float(np.mean([ln.confidence for ln in scored])) if scored else 0.0
        if captured_at is not None and confidence < 0.8:
            warnings.append(f"low OCR confidence {confidence:.2f}: check the time by eye")
        return InfoBarReading(
            captured_at=captured_at,
            text=[ln.text for ln in lines],
            confidence=confidence,
            warnings=warnings,
            lines=lines,
        )
