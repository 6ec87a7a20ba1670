"""Info-bar OCR: the date/time parser and DB post-processing on exact inputs, then the real
PP-OCRv4 models on the sample photos (EXIF time as ground truth where there is one)."""

from __future__ import annotations

import statistics
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models_ml import ImageRejected, load_rgb
from models_ml.ocr import (
    InfoBarReader,
    _ctc_greedy,
    _label_components,
    db_boxes,
    parse_info_bar_datetime,
)
from models_ml.registry import ExtraFile, load_manifest

DRAFT = (640, 640)  # what the pipeline decodes JPEGs at (the detectors' largest input)

# --- parse_info_bar_datetime ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        # Reconyx (ENA24, as verified by the model mirror): ISO date, 12 h clock
        (["2016-05-17 9:32:34 PM", "M 4/5", "68°F", "RECONYX"], datetime(2016, 5, 17, 21, 32, 34)),
        (["2016-05-17", "9:32:34PM"], datetime(2016, 5, 17, 21, 32, 34)),
        # 12 AM is midnight, 12 PM is noon
        (["2016-05-17 12:05:00 AM"], datetime(2016, 5, 17, 0, 5)),
        (["2016-05-17 12:05:00 PM"], datetime(2016, 5, 17, 12, 5)),
        # AM/PM split off into its own word, or run into the next word
        (["2016-01-27", "4:27:56", "PM", "M 10/10"], datetime(2016, 1, 27, 16, 27, 56)),
        (["06/15/2016 08:42AMNW104", "MOULTRIE"], datetime(2016, 6, 15, 8, 42)),
        (["2016-06-04 11:04:15 PMM 1/3"], datetime(2016, 6, 4, 23, 4, 15)),
        # Ltl Acorn (Caltech, as verified by the mirror): month.day.year, 24 h
        (
            ["Ltl Acorn 0009", "051F O11C", "12.30.2012 11:27:46"],
            datetime(2012, 12, 30, 11, 27, 46),
        ),
        (["05/17/2016 21:32:34"], datetime(2016, 5, 17, 21, 32, 34)),
        (["2021/05/27 12:47:59"], datetime(2021, 5, 27, 12, 47, 59)),
        (["17-05-2016 06:00:01"], datetime(2016, 5, 17, 6, 0, 1)),  # 17 > 12: day first
        # date and time run together, as OCR often returns them
        (["08-04-201008:43:15"], datetime(2010, 8, 4, 8, 43, 15)),
        (["2021/07/0109:19:59"], datetime(2021, 7, 1, 9, 19, 59)),
        (["2015-08-178:05:05PM"], datetime(2015, 8, 17, 20, 5, 5)),
        # time before the date; seconds missing; a lost second colon
        (["02:39:38 PM 2018/02/23", "TRAILCAM"], datetime(2018, 2, 23, 14, 39, 38)),
        (["2/4/2018", "Cuddeback", "5:41 PM"], datetime(2018, 2, 4, 17, 41)),
        (["2016-01-28 15:1445"], datetime(2016, 1, 28, 15, 14, 45)),
        # month names
        (["19 SEP 2016 07:15 am", "MOULTRIE"], datetime(2016, 9, 19, 7, 15)),
        (["Sep 19, 2016 19:15:02"], datetime(2016, 9, 19, 19, 15, 2)),
        # OCR confusions inside digit groups: O/o/D -> 0, l/I/| -> 1, S -> 5, Z -> 2, B -> 8
        (["2O16-O5-l7 9:32:34 PM"], datetime(2016, 5, 17, 21, 32, 34)),
        (["I2.3O.2Ol2 1l:27:46"], datetime(2012, 12, 30, 11, 27, 46)),
        (["2016-05-1S 2l:3Z:3B"], datetime(2016, 5, 15, 21, 32, 38)),
        # full-width digits and spaced separators
        (["1\uff12/13/2015 03:14PM"], datetime(2015, 12, 13, 15, 14)),  # full-width 2
        (["2016 - 05 - 17  21 : 32 : 34"], datetime(2016, 5, 17, 21, 32, 34)),
        # a stray letter glued to the date's first digit
        (["BIGF", "03:51:32", "O05/29/2021"], datetime(2021, 5, 29, 3, 51, 32)),
    ],
)
def test_parse_formats(lines: list[str], expected: datetime) -> None:
    assert parse_info_bar_datetime(lines) == expected


def test_ambiguous_day_month_uses_the_hint_else_month_first() -> None:
    line = ["03/04/2016 10:00:00"]
    assert parse_info_bar_datetime(line) == datetime(2016, 3, 4, 10)
    assert parse_info_bar_datetime(line, dayfirst=False) == datetime(2016, 3, 4, 10)
    assert parse_info_bar_datetime(line, dayfirst=True) == datetime(2016, 4, 3, 10)
    # a number above 12 overrules the hint
    assert parse_info_bar_datetime(["05/17/2016 10:00"], dayfirst=True) == datetime(2016, 5, 17, 10)
    assert parse_info_bar_datetime(["17/05/2016 10:00"], dayfirst=False) == datetime(
        2016, 5, 17, 10
    )


@pytest.mark.parametrize(
    "lines",
    [
        [],
        [""],
        ["RECONYX", "PC850 PROFESSIONAL", "NRC136"],  # no date at all
        ["M 4/5", "68°F", "1004"],
        ["2016-05-17"],  # a date without a time of day is not enough
        ["9:32:34 PM"],  # a time without a date
        ["2016-13-45 10:00:00"],  # impossible date
        ["2016-02-30 10:00:00"],
        ["31/31/2016 10:00:00"],
        ["1850-05-17 10:00:00"],  # a misread year outside any camera's life
        ["2016-05-17 25:61:00"],  # impossible time
        ["2016-05-17 13:05:00 PM"],  # 13 PM
        ["19-07-16 23:21:20"],  # two-digit year: ambiguous, refused (truncated ISO date?)
        ["##$%^&*", "\x00\x01", "日本語のテキスト"],
    ],
)
def test_parse_refuses_garbage_and_impossible_values(lines: list[str]) -> None:
    assert parse_info_bar_datetime(lines) is None


# --- DB post-processing and CTC on exact numbers --------------------------------------------


def test_label_components_is_8_connected() -> None:
    mask = np.array(
        [
            [1, 1, 0, 0, 0, 1],
            [0, 0, 1, 0, 0, 1],
            [0, 0, 0, 0, 0, 0],
            [1, 0, 1, 1, 0, 0],
        ],
        bool,
    )
    labels, count = _label_components(mask)
    assert count == 4
    assert labels[0, 0] == labels[0, 1] == labels[1, 2]  # diagonal neighbours join
    assert labels[0, 5] == labels[1, 5] != labels[0, 0]
    assert labels[3, 2] == labels[3, 3] not in (labels[3, 0], labels[0, 0])
    assert (labels > 0).sum() == mask.sum() and not labels[~mask].any()


def test_label_components_joins_a_u_shape_through_a_later_row() -> None:
    mask = np.array([[1, 0, 1], [1, 0, 1], [1, 1, 1]], bool)
    labels, count = _label_components(mask)
    assert count == 1 and (labels[mask] == 1).all()


def test_db_boxes_threshold_score_and_unclip() -> None:
    prob = np.zeros((40, 100), np.float32)
    prob[10:20, 10:50] = 0.9  # a word: 40 x 10
    prob[30:34, 70:90] = 0.4  # above thresh 0.3 but box score 0.4 < 0.5: dropped
    prob[2:4, 95:97] = 0.9  # 2 px: smaller than min_size
    boxes = db_boxes(prob, thresh=0.3, box_thresh=0.5, unclip_ratio=1.6)
    assert len(boxes) == 1
    d = 40 * 10 * 1.6 / (2 * (40 + 10))  # the polygon offset of the original: 6.4 px
    assert boxes[0] == pytest.approx((10 - d, 10 - d, 50 + d, 20 + d))
    # unclip is clipped to the map
    prob2 = np.zeros((12, 30), np.float32)
    prob2[1:11, 0:30] = 0.95
    assert db_boxes(prob2) == [(0.0, 0.0, 30.0, 12.0)]


def test_ctc_greedy_collapses_repeats_and_drops_blanks() -> None:
    charset = ["", "2", "0", "1", "6", " "]
    path = [1, 1, 0, 2, 0, 2, 3, 3, 0, 4, 5, 0]  # "2" "0" "0" "1" "6" " "
    probs = np.full((len(path), len(charset)), 0.01, np.float32)
    for t, c in enumerate(path):
        probs[t, c] = 0.9
    text, conf = _ctc_greedy(probs, charset)
    assert text == "20016 " and conf == pytest.approx(0.9)
    assert _ctc_greedy(np.eye(len(charset), dtype=np.float32)[[0, 0]], charset) == ("", 0.0)


# --- the manifest entry ---------------------------------------------------------------------


def test_manifest_entry_names_all_three_networks_and_the_keys() -> None:
    spec = load_manifest()["ppocrv4_ocr"]
    assert spec.kind == "ocr" and spec.file.endswith("_rec_infer.onnx")
    assert spec.labels_file == "ppocrv4_ocr/ppocr_keys_v1.txt"
    hashed = {e.file: e.sha256 for e in spec.extra_files}
    assert hashed[spec.labels_file] and hashed["ppocrv4_ocr/ch_PP-OCRv4_det_infer.onnx"]
    assert hashed["ppocrv4_ocr/ch_ppocr_mobile_v2.0_cls_infer.onnx"]
    assert ExtraFile("ppocrv4_ocr/LICENSE-Apache-2.0.txt") in spec.extra_files


def test_a_key_file_that_does_not_fit_the_model_is_refused(
    model_mirror: Path, tmp_path: Path
) -> None:
    spec = load_manifest()["ppocrv4_ocr"]
    for extra in (spec.file, *(e.file for e in spec.extra_files)):
        (tmp_path / extra).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / extra).symlink_to(model_mirror / extra)
    keys = tmp_path / "ppocrv4_ocr" / "short_keys.txt"
    keys.write_text("a\nb\n", encoding="utf-8")
    from dataclasses import replace

    bad = {"ppocrv4_ocr": replace(spec, labels_file="ppocrv4_ocr/short_keys.txt")}
    with pytest.raises(ValueError, match=r"key file has 2 characters.*models pull ppocrv4_ocr"):
        InfoBarReader.from_models_dir(tmp_path, manifest=bad)


# --- the real models on the sample photos ---------------------------------------------------

#: Photos with a timestamp in EXIF but no info bar (an ordinary camera).
NO_BAR = {"ianare__exif-samples/jpg/gps/DSCN0010.jpg"}
#: Photos without EXIF time whose bar was read by eye.
_ENA24 = "drivendataorg__zamba/tests/assets/images/ena24_small/"
BY_EYE = {
    _ENA24 + "2480.jpg": datetime(2016, 5, 17, 21, 32, 34),
    _ENA24 + "422.jpg": datetime(2016, 1, 27, 16, 27, 56),
    "jniedballa__camtrapR/inst/pictures/full_size_for_ocr/StationA/mousedeer.JPG": datetime(
        2018, 10, 19, 22, 35, 9
    ),
    "conservationtechlab__animl-py/examples/Southwest/B013_IMG_0005_empty.jpeg": datetime(
        2023, 5, 18, 18, 56
    ),
    "microsoft__CameraTraps/demo/static/gallery/S1_F10_R1_PICT0104.JPG": datetime(
        2010, 10, 2, 15, 33, 24
    ),
}


@pytest.fixture(scope="module")
def reader(model_mirror: Path) -> InfoBarReader:
    return InfoBarReader.from_models_dir(model_mirror, intra_op_threads=1)


def _photo(camtrap_dir: Path, path: str, draft: bool = True) -> Image.Image:
    return load_rgb((camtrap_dir / path).read_bytes(), draft_size=DRAFT if draft else None)


@pytest.mark.slow
def test_ocr_time_equals_exif_time_on_photos_with_a_bar(
    reader: InfoBarReader, camtrap_dir: Path, manifest_rows: list[dict[str, str]]
) -> None:
    """Every photo with EXIF time and a readable size (>= 300 px wide; the 100 x 75 camtrapR
    thumbnails are not): OCR must never give a wrong time, and must read >= 90 % of them."""
    rows = [
        r
        for r in manifest_rows
        if r["kind"].startswith("image")
        and r["exif_datetime"]
        and int((r["dimensions"] or "0x0").split("x")[0]) >= 300
        and r["path"] not in NO_BAR
    ]
    assert len(rows) >= 55, len(rows)
    hits, misses, wrong, cpu = [], [], [], []
    undecodable = []
    for r in rows:
        try:
            img = _photo(camtrap_dir, r["path"])
        except ImageRejected:  # the truncated sample: the pipeline quarantines it
            undecodable.append(r["path"])
            continue
        start = time.process_time()
        reading = reader.read(img)
        cpu.append(time.process_time() - start)
        exif = datetime.strptime(r["exif_datetime"], "%Y:%m:%d %H:%M:%S")
        if reading.captured_at is None:
            misses.append((r["path"], reading.text))
        elif abs(reading.captured_at - exif) <= timedelta(seconds=60):
            hits.append(r["path"])
        else:
            wrong.append((r["path"], reading.captured_at, exif, reading.text))
    read = len(rows) - len(undecodable)
    rate = len(hits) / read
    print(f"\nOCR = EXIF (+-60 s) on {len(hits)}/{read} = {rate:.1%}; misses {misses}")
    print(f"CPU s/photo (1 thread): median {statistics.median(cpu):.3f} max {max(cpu):.3f}")
    assert wrong == []
    assert rate >= 0.9, misses
    assert statistics.median(cpu) < 0.3


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(BY_EYE))
def test_photos_without_exif_time_read_as_seen(
    reader: InfoBarReader, camtrap_dir: Path, manifest_rows: list[dict[str, str]], path: str
) -> None:
    row = next(r for r in manifest_rows if r["path"] == path)
    assert row["exif_datetime"] == ""  # the bar is the only source of the time
    reading = reader.read(_photo(camtrap_dir, path))
    assert reading.captured_at == BY_EYE[path], reading
    assert reading.confidence > 0.5 and reading.text


@pytest.mark.slow
def test_full_resolution_and_draft_agree(reader: InfoBarReader, camtrap_dir: Path) -> None:
    path = _ENA24 + "2480.jpg"
    full = reader.read(_photo(camtrap_dir, path, draft=False))
    assert full.captured_at == BY_EYE[path]
    assert any(line.strip == "top" for line in full.lines)


@pytest.mark.slow
def test_no_bar_gives_none_and_says_why(reader: InfoBarReader, camtrap_dir: Path) -> None:
    reading = reader.read(_photo(camtrap_dir, "ianare__exif-samples/jpg/gps/DSCN0010.jpg"))
    assert reading.captured_at is None
    assert reading.warnings and "no info bar" in reading.warnings[0]
    # tiny, flat and non-RGB images do not break it
    for img in (Image.new("RGB", (16, 12)), Image.new("L", (640, 480), 128)):
        assert reader.read(img).captured_at is None


@pytest.mark.slow
def test_direction_classifier_turns_an_upside_down_bar(
    model_mirror: Path, camtrap_dir: Path
) -> None:
    path = _ENA24 + "2480.jpg"
    with_cls = InfoBarReader.from_models_dir(model_mirror, use_cls=True, intra_op_threads=1)
    assert with_cls.cls is not None
    img = _photo(camtrap_dir, path)
    _, _, top = with_cls.strips(img)[0]
    box = with_cls.detect(top)[0]
    line = top.crop(box)
    upright, flipped = with_cls.orient([line, line.rotate(180)])
    texts = [t for t, _ in with_cls.recognise([upright, flipped])]
    assert texts[0] == texts[1] and parse_info_bar_datetime(texts) == BY_EYE[path], texts
